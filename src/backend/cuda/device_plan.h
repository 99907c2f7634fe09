// The device memory the CUDA backend will take for a model, computed from the loaded weights without a GPU: what
// `oss4 info --device cuda` prints, and what the GPU test holds the backend's real allocations to. Weights (FP4 tiles
// with their padding, BF16 matrices, f32 vectors, the embedding table, the RoPE table), the K/V pages of n_seq
// sequences of ctx positions (whole slabs), and the step scratch for chunks of max_chunk rows (with the 25% growth
// slack the backend's buffers keep). The CUDA context itself (a few hundred MB) is not counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/options.h"
#include "model/weights.h"

namespace oss4::cuda {

struct DevicePlanItem {
  std::string what;
  size_t bytes = 0;
};

struct DevicePlan {
  std::vector<DevicePlanItem> items;  // weights first, then K/V, then scratch
  size_t weight_bytes = 0, kv_bytes = 0, scratch_bytes = 0;
  size_t total() const { return weight_bytes + kv_bytes + scratch_bytes; }
};

// the device bytes of the weights as cuda_prepare_weights lays them out (the same errors for what it refuses)
Result<size_t> device_weight_bytes(const ModelWeights& m, LmHeadType lm, std::vector<DevicePlanItem>* items = nullptr);

Result<DevicePlan> plan_device_memory(const ModelWeights& m, LmHeadType lm, int64_t ctx, int64_t max_chunk, int64_t n_seq);

}  // namespace oss4::cuda
