// Writes a checkpoint's tensors as HF does: one model.safetensors, or shards of at most shard_bytes plus
// model.safetensors.index.json. Each tensor's bytes come from a callback that streams them, so nothing is held whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/safetensors.h"

namespace oss4 {

struct TensorPlan {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  // writes exactly bytes() through w (in any number of chunks).
  std::function<Status(SafetensorsWriter& w)> write;
  uint64_t bytes() const;
};

// shard files are named as the gpt-oss release names them (zero-based, "-of-" the last index); a single shard is
// model.safetensors. progress(done_bytes, total_bytes) is called as tensors complete.
Status write_checkpoint_tensors(const std::string& dir, const std::vector<TensorPlan>& plan, uint64_t shard_bytes,
                                const std::function<void(int64_t, int64_t)>& progress);

}  // namespace oss4
