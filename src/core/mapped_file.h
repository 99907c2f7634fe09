// Read-only memory map of a whole file (weights are used in place, never copied wholesale).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "oss4/status.h"

namespace oss4 {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  static Result<MappedFile> open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // tells the kernel the byte range [offset, offset+n) is no longer needed (page cache stays warm).
  void release(size_t offset, size_t n) const;

 private:
  void reset();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// reads a whole (small) text file, e.g. config.json.
Result<std::string> read_text_file(const std::string& path);

// creates the missing folders above path (as `mkdir -p "$(dirname path)"`); every writer below calls it, so an
// output may name a folder that does not exist yet.
Status make_parent_dirs(const std::string& path);

// writes a file atomically: path.tmp.<pid> then rename over path; missing parent folders are created.
Status write_file_atomic(const std::string& path, const void* data, size_t n);

// builds a directory atomically: fill(tmp) writes into out_dir.tmp.<pid>, which is renamed to out_dir only when
// fill succeeds (else removed); missing parent folders are created. out_dir must not exist, or be an empty directory: nothing is ever overwritten.
Status write_directory_atomic(const std::string& out_dir, const std::function<Status(const std::string& tmp_dir)>& fill);
// copies a small file atomically (configs, tokenizer files).
Status copy_file_atomic(const std::string& from, const std::string& to);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace oss4
