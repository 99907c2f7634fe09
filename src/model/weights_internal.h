// Pieces of the checkpoint loader shared by weights.cpp (HF MXFP4 / BF16, ModelOpt export) and weights_forms.cpp
// (ModelOpt fake-quant, compressed-tensors). Not part of the public API.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "model/weights.h"

namespace oss4::detail {

std::string lname(int64_t l, const std::string& rest);  // "model.layers.<l>.<rest>"
// a BF16/F16/F32 tensor of exactly this shape, widened to f32.
Result<std::vector<float>> load_vector(const TensorStore& st, const std::string& name, const std::vector<int64_t>& shape);
// a dense [n_out, n_in] matrix in BF16 or F32, mapped.
Result<LinearWeight> load_dense(const TensorStore& st, const std::string& name, int64_t n_out, int64_t n_in);
// an f32 scalar stored as [] or [1], or per expert [n_per] when n_per > 0; positive and finite.
Result<std::vector<float>> load_scale2(const TensorStore& st, const std::string& name, int64_t n_per);
// E4M3 block scales: NaN bytes (0x7f, 0xff) or negative scales mean a broken file.
Status check_e4m3_scales(const TensorView& t);
// a mapped row-major NVFP4 linear: packed U8 [n_out, n_in/2], scales F8_E4M3 [n_out, n_in/16], an f32 tensor scale
// (or its reciprocal, as compressed-tensors stores it).
Result<LinearWeight> load_rowmajor_nvfp4(const TensorStore& st, const std::string& packed, const std::string& scales,
                                         const std::string& scale2, bool reciprocal, int64_t n_out, int64_t n_in);

// ModelOpt fake-quant (mtq.quantize + save_pretrained): BF16 weights and `<module>.weight_quantizer._amax`.
// Attention: q/k/v quantized with one amax, the max of theirs (ModelOpt's export fuses them), o with its own.
bool has_fakequant_attention(const TensorStore& st, int64_t layer);
Status load_fakequant_attention(const TensorStore& st, const ModelConfig& c, int64_t layer, LayerWeights* L,
                                std::vector<std::vector<uint8_t>>* owned);
// experts name [E, n_in, n_out] BF16 with name_weight_quantizer._amax: one amax across all experts.
Status load_fakequant_experts(const TensorStore& st, const std::string& name, int64_t n_exp, int64_t n_out, int64_t n_in,
                              std::vector<std::vector<uint8_t>>* owned, std::vector<LinearWeight>* out);

// compressed-tensors nvfp4-pack-quantized: base.weight_packed U8 [n_out, n_in/2], base.weight_scale F8_E4M3
// [n_out, n_in/16], base.weight_global_scale F32 [1] (the reciprocal of ModelOpt's weight_scale_2).
Result<LinearWeight> load_ct_linear(const TensorStore& st, const std::string& base, int64_t n_out, int64_t n_in);
// llm-compressor's linearized experts `mlp.experts.experts.<e>.{gate,up,down}_proj` with biases: gate and up are
// interleaved back into gate_up rows (gate 2j, up 2j+1), which needs their global scales equal.
Status load_ct_experts(const TensorStore& st, const ModelConfig& c, int64_t layer, LayerWeights* L,
                       std::vector<std::vector<uint8_t>>* owned);

}  // namespace oss4::detail
