// The weight table of a loaded gpt-oss checkpoint. Matrices stay where the checkpoint keeps them (mmap'd,
// 4-bit MXFP4 experts stay 4-bit) and are decoded inside the kernels; small vectors are widened to f32.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "model/config.h"
#include "model/rope.h"
#include "numeric/weight_view.h"

namespace oss4 {

// a weight matrix of the checkpoint: the plain view the kernels take (numeric/weight_view.h) and the tensor it came from
struct LinearWeight : WeightView {
  std::string name;  // checkpoint tensor it came from, for errors
};

struct LayerWeights {
  std::vector<float> attn_norm;  // [n_embd]
  LinearWeight wq, wk, wv, wo;   // [q_dim, n_embd], [kv_dim, n_embd] x2, [n_embd, q_dim]
  std::vector<float> bq, bk, bv, bo;  // [q_dim], [kv_dim], [kv_dim], [n_embd]
  std::vector<float> sinks;      // [n_heads]
  std::vector<float> mlp_norm;   // [n_embd]
  LinearWeight router;           // [n_experts, n_embd]
  std::vector<float> router_bias;    // [n_experts]
  std::vector<LinearWeight> gate_up; // per expert [2 * n_ff, n_embd]; rows interleaved gate_j = 2j, up_j = 2j+1
  std::vector<LinearWeight> down;    // per expert [n_embd, n_ff]
  std::vector<float> gate_up_bias;   // [n_experts, 2 * n_ff]
  std::vector<float> down_bias;      // [n_experts, n_embd]
  LayerKind kind = LayerKind::kFull;
};

// the form a checkpoint's experts (and attention) came in, as load_model recognised it.
enum class CheckpointKind {
  kMxfp4,                      // HF release: MXFP4 experts, BF16 attention
  kBf16,                       // BF16 experts and attention
  kNvfp4Export,                // ModelOpt's exported NVFP4
  kNvfp4FakeQuant,             // ModelOpt fake-quant save, quantized to NVFP4 at load
  kNvfp4CompressedTensors,     // compressed-tensors nvfp4-pack-quantized
  kBf16ExpertsNvfp4Attention,  // BF16 experts, ModelOpt fake-quant attention quantized to NVFP4 at load
  kBf16FakeQuantKept,          // ModelOpt fake-quant save loaded with quantize_fakequant = false: BF16 as stored
};

// the display name `oss4 info` and `oss4 bench` print: "mxfp4", "bf16", "nvfp4", "nvfp4 (compressed-tensors)", ...
const char* checkpoint_kind_name(CheckpointKind k);
// true for the kinds whose experts are NVFP4 (the names that start with "nvfp4").
bool checkpoint_kind_is_nvfp4(CheckpointKind k);

struct ModelWeights {
  ModelConfig cfg;
  RopeTable rope;
  TensorStore store;          // owns the mappings every LinearWeight points into
  LinearWeight embed;         // [n_vocab, n_embd] (rows gathered, never multiplied)
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [n_embd]
  LinearWeight lm_head;       // [n_vocab, n_embd]
  CheckpointKind checkpoint_kind = CheckpointKind::kBf16;  // checkpoint_kind_name() for display
  // weights built at load (ModelOpt fake-quant quantized to NVFP4, compressed-tensors gate/up interleaved, a
  // requantized lm_head); the LinearWeights point into these buffers, which a move of ModelWeights keeps in place.
  std::vector<std::vector<uint8_t>> owned;

  size_t weight_bytes_per_token() const;  // bytes one decoded token reads (active experts only)
};

using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// loads config.json and the weights of a checkpoint directory: HF MXFP4 or BF16, ModelOpt's NVFP4 export, ModelOpt's
// fake-quant save (quantized to NVFP4 here) or compressed-tensors nvfp4-pack-quantized.
struct LoadOptions {
  // ModelOpt fake-quant checkpoints: quantize to NVFP4 at load (to run them), or keep the BF16 weights as they are
  // (for `oss4 quantize`, which reads the _amax buffers itself).
  bool quantize_fakequant = true;
};
Result<ModelWeights> load_model(const std::string& dir, const ProgressFn& progress = nullptr, const LoadOptions& opt = {});

}  // namespace oss4
