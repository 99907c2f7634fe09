// The NVFP4 checkpoint forms that are not ModelOpt's export: ModelOpt's fake-quant save (BF16 + _amax, quantized
// here while loading, tensor by tensor, bit-exact with what ModelOpt's export would write) and compressed-tensors'
// nvfp4-pack-quantized (mapped; gate/up re-interleaved). See docs/nvfp4.md.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel_for.h"
#include "model/weight_decode.h"
#include "model/weights_internal.h"
#include "numeric/nvfp4.h"

namespace oss4::detail {

namespace {

// a 0-d (or [1]) amax buffer as save_pretrained leaves it (BF16, or F32), as f32.
Result<float> load_amax(const TensorStore& st, const std::string& name) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(name));
  if (t->numel() != 1 || t->shape.size() > 1) {
    return error(*t->path + ": tensor '" + name + "' has shape " + shape_str(t->shape) +
                 "; oss4 reads per-tensor NVFP4 amax only (a 0-d tensor)");
  }
  OSS4_ASSIGN_OR_RETURN(std::vector<float> v, load_vector(st, name, t->shape));
  if (!std::isfinite(v[0]) || v[0] <= 0.0f) return error(*t->path + ": tensor '" + name + "' = " + std::to_string(v[0]) + " is not a positive amax");
  return v[0];
}

// quantizes a dense weight (either orientation) with amax into an owned row-major NVFP4 buffer
// [n_out, n_in/2] packed followed by [n_out, n_in/16] scales.
Result<LinearWeight> quantize_owned(const LinearWeight& dense, float amax, std::vector<std::vector<uint8_t>>* owned) {
  const int64_t n_out = dense.n_out, n_in = dense.n_in;
  if (n_in % kNvfp4Block != 0) return error("tensor '" + dense.name + "': the input dim " + std::to_string(n_in) + " is not a multiple of 16");
  std::vector<float> w(static_cast<size_t>(n_out * n_in));  // [n_out, n_in] f32
  decode_weight_f32(dense, w.data());
  std::vector<uint8_t> buf(static_cast<size_t>(n_out * n_in / 2 + n_out * n_in / kNvfp4Block));
  LinearWeight q;
  q.type = WeightType::kNvfp4;
  q.n_out = n_out;
  q.n_in = n_in;
  q.name = dense.name;
  OSS4_TRY(nvfp4_quantize_ref(w.data(), n_out, n_in, amax, buf.data(), buf.data() + n_out * n_in / 2, &q.scale2, dense.name));
  owned->push_back(std::move(buf));
  q.data = owned->back().data();
  q.scales = q.data + n_out * n_in / 2;
  return q;
}

}  // namespace

bool has_fakequant_attention(const TensorStore& st, int64_t layer) {
  return st.has(lname(layer, "self_attn.q_proj.weight_quantizer._amax"));
}

Status load_fakequant_attention(const TensorStore& st, const ModelConfig& c, int64_t l, LayerWeights* L,
                                std::vector<std::vector<uint8_t>>* owned) {
  const int64_t H = c.n_embd;
  float qkv_amax = 0.0f;
  for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
    OSS4_ASSIGN_OR_RETURN(float a, load_amax(st, lname(l, std::string("self_attn.") + p + ".weight_quantizer._amax")));
    qkv_amax = std::max(qkv_amax, a);
  }
  struct Item {
    const char* proj;
    int64_t n_out, n_in;
    LinearWeight* dst;
  } items[] = {{"q_proj", c.q_dim(), H, &L->wq}, {"k_proj", c.kv_dim(), H, &L->wk}, {"v_proj", c.kv_dim(), H, &L->wv}, {"o_proj", H, c.q_dim(), &L->wo}};
  for (const Item& it : items) {
    const std::string base = lname(l, std::string("self_attn.") + it.proj);
    OSS4_ASSIGN_OR_RETURN(LinearWeight dense, load_dense(st, base + ".weight", it.n_out, it.n_in));
    float amax = qkv_amax;
    if (std::string(it.proj) == "o_proj") {
      OSS4_ASSIGN_OR_RETURN(amax, load_amax(st, base + ".weight_quantizer._amax"));
    }
    OSS4_ASSIGN_OR_RETURN(*it.dst, quantize_owned(dense, amax, owned));
    OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(base + ".weight"));
    st.release(*t);  // the BF16 pages are no longer needed: memory stays near the 4-bit size
  }
  return ok_status();
}

Status load_fakequant_experts(const TensorStore& st, const std::string& name, int64_t n_exp, int64_t n_out, int64_t n_in,
                              std::vector<std::vector<uint8_t>>* owned, std::vector<LinearWeight>* out) {
  OSS4_ASSIGN_OR_RETURN(float amax, load_amax(st, name + "_weight_quantizer._amax"));
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(name));
  if (t->shape != std::vector<int64_t>{n_exp, n_in, n_out} || (t->dtype != DType::kBF16 && t->dtype != DType::kF32)) {
    return error(*t->path + ": tensor '" + name + "' is " + shape_str(t->shape) + " " + dtype_name(t->dtype) + ", expected " +
                 shape_str({n_exp, n_in, n_out}) + " BF16 or F32 (experts stored [experts, in, out])");
  }
  const size_t esize = t->dtype == DType::kBF16 ? 2 : 4;
  // experts in parallel, each into its own buffer; appended to `owned` in order afterwards
  std::vector<std::vector<std::vector<uint8_t>>> bufs(static_cast<size_t>(n_exp));
  std::vector<LinearWeight> qs(static_cast<size_t>(n_exp));
  OSS4_TRY(parallel_for(n_exp, default_thread_count(), [&](int64_t e, int) -> Status {
    LinearWeight dense;
    dense.type = t->dtype == DType::kBF16 ? WeightType::kBF16 : WeightType::kF32;
    dense.n_out = n_out;
    dense.n_in = n_in;
    dense.set_in_major(true);
    dense.data = t->data + static_cast<size_t>(e * n_in * n_out) * esize;
    dense.name = name + "[" + std::to_string(e) + "]";
    OSS4_ASSIGN_OR_RETURN(qs[static_cast<size_t>(e)], quantize_owned(dense, amax, &bufs[static_cast<size_t>(e)]));
    return ok_status();
  }));
  for (int64_t e = 0; e < n_exp; ++e) {
    owned->push_back(std::move(bufs[static_cast<size_t>(e)].front()));  // the pointers stay: the heap block moves along
    out->push_back(qs[static_cast<size_t>(e)]);
  }
  st.release(*t);
  return ok_status();
}

Result<LinearWeight> load_ct_linear(const TensorStore& st, const std::string& base, int64_t n_out, int64_t n_in) {
  // compressed-tensors stores the reciprocal of ModelOpt's weight_scale_2
  return load_rowmajor_nvfp4(st, base + ".weight_packed", base + ".weight_scale", base + ".weight_global_scale", true, n_out, n_in);
}

Status load_ct_experts(const TensorStore& st, const ModelConfig& c, int64_t l, LayerWeights* L,
                       std::vector<std::vector<uint8_t>>* owned) {
  const int64_t H = c.n_embd, F = c.n_ff, E = c.n_experts;
  L->gate_up_bias.assign(static_cast<size_t>(E * 2 * F), 0.0f);
  L->down_bias.assign(static_cast<size_t>(E * H), 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const std::string base = lname(l, "mlp.experts.experts." + std::to_string(e) + ".");
    OSS4_ASSIGN_OR_RETURN(LinearWeight gate, load_ct_linear(st, base + "gate_proj", F, H));
    OSS4_ASSIGN_OR_RETURN(LinearWeight up, load_ct_linear(st, base + "up_proj", F, H));
    if (gate.scale2 != up.scale2) {
      return error("tensor '" + base + "gate_proj.weight_global_scale' differs from '" + base +
                   "up_proj.weight_global_scale': oss4 runs gate and up as one interleaved gate_up matrix with one "
                   "global scale (llm-compressor fuses them; re-quantize with fused gate/up global scales)");
    }
    // gate_up [2F, H]: row 2j = gate row j, row 2j+1 = up row j; packed [2F, H/2] then scales [2F, H/16]
    std::vector<uint8_t> buf(static_cast<size_t>(2 * F * H / 2 + 2 * F * H / 16));
    uint8_t* packed = buf.data();
    uint8_t* scales = buf.data() + 2 * F * H / 2;
    for (int64_t j = 0; j < F; ++j) {
      std::memcpy(packed + (2 * j) * (H / 2), gate.data + j * (H / 2), static_cast<size_t>(H / 2));
      std::memcpy(packed + (2 * j + 1) * (H / 2), up.data + j * (H / 2), static_cast<size_t>(H / 2));
      std::memcpy(scales + (2 * j) * (H / 16), gate.scales + j * (H / 16), static_cast<size_t>(H / 16));
      std::memcpy(scales + (2 * j + 1) * (H / 16), up.scales + j * (H / 16), static_cast<size_t>(H / 16));
    }
    owned->push_back(std::move(buf));
    LinearWeight gu = gate;
    gu.n_out = 2 * F;
    gu.data = owned->back().data();
    gu.scales = gu.data + 2 * F * H / 2;
    gu.name = base + "{gate,up}_proj.weight_packed";
    L->gate_up.push_back(gu);
    OSS4_ASSIGN_OR_RETURN(LinearWeight down, load_ct_linear(st, base + "down_proj", H, F));
    L->down.push_back(down);
    OSS4_ASSIGN_OR_RETURN(std::vector<float> gb, load_vector(st, base + "gate_proj.bias", {F}));
    OSS4_ASSIGN_OR_RETURN(std::vector<float> ub, load_vector(st, base + "up_proj.bias", {F}));
    OSS4_ASSIGN_OR_RETURN(std::vector<float> db, load_vector(st, base + "down_proj.bias", {H}));
    for (int64_t j = 0; j < F; ++j) {
      L->gate_up_bias[static_cast<size_t>(e * 2 * F + 2 * j)] = gb[static_cast<size_t>(j)];
      L->gate_up_bias[static_cast<size_t>(e * 2 * F + 2 * j + 1)] = ub[static_cast<size_t>(j)];
    }
    std::copy(db.begin(), db.end(), L->down_bias.begin() + e * H);
  }
  return ok_status();
}

}  // namespace oss4::detail
