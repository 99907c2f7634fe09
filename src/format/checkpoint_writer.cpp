#include "format/checkpoint_writer.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace oss4 {

uint64_t TensorPlan::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

Status write_checkpoint_tensors(const std::string& dir, const std::vector<TensorPlan>& plan, uint64_t shard_bytes,
                                const std::function<void(int64_t, int64_t)>& progress) {
  // shards in order, each up to shard_bytes (a tensor never splits)
  std::vector<std::vector<const TensorPlan*>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& t : plan) {
    if (in_shard > 0 && in_shard + t.bytes() > shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(&t);
    in_shard += t.bytes();
    total += t.bytes();
  }
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t done = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char fname[64];
    // the converter's zero-based naming, as the released gpt-oss files have it (3 files "-of-00002").
    std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s, shards.size() - 1);
    const std::string file = shards.size() == 1 ? "model.safetensors" : fname;
    SafetensorsWriter w(dir + "/" + file);
    w.set_metadata("format", "pt");
    for (const TensorPlan* t : shards[s]) {
      w.declare(t->name, t->dtype, t->shape);
      weight_map[t->name] = file;
    }
    OSS4_TRY(w.begin());
    for (const TensorPlan* t : shards[s]) {
      const uint64_t before = w.bytes_written();
      OSS4_TRY(t->write(w).with_context(t->name));
      if (w.bytes_written() - before != t->bytes()) {
        return error(t->name + ": wrote " + std::to_string(w.bytes_written() - before) + " bytes, declared " + std::to_string(t->bytes()));
      }
      done += static_cast<int64_t>(t->bytes());
      if (progress) progress(done, static_cast<int64_t>(total));
    }
    OSS4_TRY(w.finish());
  }
  if (shards.size() > 1) {
    nlohmann::json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::string text = idx.dump(2) + "\n";
    OSS4_TRY(write_file_atomic(dir + "/model.safetensors.index.json", text.data(), text.size()));
  }
  return ok_status();
}

}  // namespace oss4
