// Read-only memory map of a whole file (weights are used in place, never copied wholesale).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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

// the temporary a writer of path fills before renaming it over path: path.oss4-tmp.<pid>. The pid lets a later run
// tell the temporaries of processes that died (SIGKILL, power loss) from those of processes still writing.
std::string temp_path_for(const std::string& path);

// removes, in the folder that holds path, every temporary (NAME.oss4-tmp.<pid>, and path.tmp.<pid> of older
// versions) whose process is no longer running, with one line on stderr for each; returns the paths removed.
// Every writer below calls it first. A pid is taken as running when kill(pid, 0) finds it (ours, or a live process
// that reused the number: that temporary waits for a later run).
std::vector<std::string> remove_stale_temps(const std::string& path);

// writes a file atomically: temp_path_for(path), then rename over path; missing parent folders are created;
// a failed write (a full disk) removes the temporary and names path and the reason.
Status write_file_atomic(const std::string& path, const void* data, size_t n);

// builds a directory atomically: fill(tmp) writes into temp_path_for(out_dir), which is renamed to out_dir only when
// fill succeeds (else removed); missing parent folders are created. out_dir must not exist, or be an empty directory: nothing is ever overwritten.
Status write_directory_atomic(const std::string& out_dir, const std::function<Status(const std::string& tmp_dir)>& fill);
// copies a small file atomically (configs, tokenizer files).
Status copy_file_atomic(const std::string& from, const std::string& to);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace oss4
