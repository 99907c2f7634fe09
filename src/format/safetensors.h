// safetensors: a validated, mmap'd reader for one file and for sharded checkpoints
// (model.safetensors.index.json), and a streaming, atomic writer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "format/dtype.h"
#include "oss4/status.h"

namespace oss4 {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  size_t file_offset = 0;         // absolute offset of data in its file
  const std::string* path = nullptr;  // file it lives in

  int64_t numel() const;
  std::string describe() const;  // "name [a, b] BF16"
};

std::string shape_str(const std::vector<int64_t>& shape);

// parsed and validated header of one safetensors file (no I/O: the fuzz target drives this).
struct SafetensorsHeader {
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;  // relative to the start of the data region
  };
  std::vector<Entry> entries;  // sorted by begin
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// validates the whole header against a file of file_size bytes; bytes = the first min(file_size, ...) bytes.
Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* bytes, size_t n_bytes, uint64_t file_size);

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorView* find(const std::string& name) const;
  const MappedFile& file() const { return file_; }

 private:
  MappedFile file_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// every tensor of a checkpoint directory: model.safetensors.index.json when present, else model.safetensors,
// else every *.safetensors file of the directory.
class TensorStore {
 public:
  static Result<TensorStore> open_dir(const std::string& dir);
  static Result<TensorStore> open_file(const std::string& path);

  const TensorView* find(const std::string& name) const;
  bool has(const std::string& name) const { return find(name) != nullptr; }
  // the tensor, checked for dtype and shape; the error names file, tensor, expected and actual.
  Result<const TensorView*> require(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const;
  Result<const TensorView*> require(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }
  size_t total_bytes() const;
  // drops the pages of one tensor from this process (after it was converted and is no longer read).
  void release(const TensorView& t) const;
  // the same for n bytes at p inside one of the mapped files (a part of a tensor: one expert); nothing otherwise.
  void release_bytes(const uint8_t* p, size_t n) const;
  // the tensors no require() has asked for (find/has are probes and do not count), sorted: what a load left
  // unconsumed (src/backend/cuda/repack.h check_checkpoint_consumed).
  std::vector<std::string> names_not_required() const;

 private:
  struct RequiredLog;  // names require() was asked for; shared so a moved store keeps it
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> by_name_;
  std::shared_ptr<RequiredLog> required_;
};

// streaming writer: declare every tensor, then write their bytes in declaration order (in chunks if wanted),
// then finish(). Writes to temp_path_for(path) (path.oss4-tmp.<pid>) and renames over path only when complete.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path) : path_(std::move(path)) {}
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  Status begin();
  Status write(const void* data, size_t n);  // appends to the current tensor
  Status finish();
  uint64_t data_bytes() const { return total_; }
  uint64_t bytes_written() const { return written_; }

 private:
  Status write_raw(const void* data, size_t n);
  struct Decl {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::string path_, tmp_path_;
  std::vector<Decl> decls_;
  std::map<std::string, std::string> metadata_;
  uint64_t total_ = 0, written_ = 0;
  int fd_ = -1;
};

}  // namespace oss4
