#include "model/weights.h"

#include "model/weights_internal.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "numeric/float_formats.h"

namespace oss4 {

const char* checkpoint_kind_name(CheckpointKind k) {
  switch (k) {
    case CheckpointKind::kMxfp4: return "mxfp4";
    case CheckpointKind::kBf16: return "bf16";
    case CheckpointKind::kNvfp4Export: return "nvfp4";
    case CheckpointKind::kNvfp4FakeQuant: return "nvfp4 (ModelOpt fake-quant, quantized at load)";
    case CheckpointKind::kNvfp4CompressedTensors: return "nvfp4 (compressed-tensors)";
    case CheckpointKind::kBf16ExpertsNvfp4Attention: return "bf16 experts, nvfp4 attention (ModelOpt fake-quant)";
    case CheckpointKind::kBf16FakeQuantKept: return "bf16 (ModelOpt fake-quant, kept BF16)";
  }
  return "?";
}

bool checkpoint_kind_is_nvfp4(CheckpointKind k) {
  return k == CheckpointKind::kNvfp4Export || k == CheckpointKind::kNvfp4FakeQuant || k == CheckpointKind::kNvfp4CompressedTensors;
}

size_t ModelWeights::weight_bytes_per_token() const {
  size_t n = static_cast<size_t>(cfg.n_embd) * (embed.type == WeightType::kF32 ? 4 : 2) + lm_head.nbytes();
  for (const auto& l : layers) {
    n += l.wq.nbytes() + l.wk.nbytes() + l.wv.nbytes() + l.wo.nbytes() + l.router.nbytes();
    if (!l.gate_up.empty()) n += static_cast<size_t>(cfg.n_experts_used) * (l.gate_up[0].nbytes() + l.down[0].nbytes());
  }
  return n;
}

namespace detail {

std::string lname(int64_t l, const std::string& rest) { return "model.layers." + std::to_string(l) + "." + rest; }

Result<std::vector<float>> load_vector(const TensorStore& st, const std::string& name, const std::vector<int64_t>& shape) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(name));
  if (t->shape != shape)
    return error(*t->path + ": tensor '" + name + "' has shape " + shape_str(t->shape) + ", expected " + shape_str(shape));
  std::vector<float> out(static_cast<size_t>(t->numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (t->dtype) {
      case DType::kBF16: out[i] = bf16_to_f32(reinterpret_cast<const uint16_t*>(t->data)[i]); break;
      case DType::kF16: out[i] = f16_to_f32(reinterpret_cast<const uint16_t*>(t->data)[i]); break;
      case DType::kF32: out[i] = reinterpret_cast<const float*>(t->data)[i]; break;
      default:
        return error(*t->path + ": tensor '" + name + "' has dtype " + dtype_name(t->dtype) + ", expected BF16, F16 or F32");
    }
  }
  return out;
}

// a dense [n_out, n_in] matrix in BF16 or F32.
Result<LinearWeight> load_dense(const TensorStore& st, const std::string& name, int64_t n_out, int64_t n_in) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(name));
  if (t->shape != std::vector<int64_t>{n_out, n_in})
    return error(*t->path + ": tensor '" + name + "' has shape " + shape_str(t->shape) + ", expected " + shape_str({n_out, n_in}));
  LinearWeight w;
  w.n_out = n_out;
  w.n_in = n_in;
  w.data = t->data;
  w.name = name;
  if (t->dtype == DType::kBF16) {
    w.type = WeightType::kBF16;
  } else if (t->dtype == DType::kF32) {
    w.type = WeightType::kF32;
  } else {
    return error(*t->path + ": tensor '" + name + "' has dtype " + dtype_name(t->dtype) + ", expected BF16 or F32");
  }
  return w;
}

// an f32 scalar stored as [] or [1] (ModelOpt writes 0-d tensors), or per expert [n] when n > 0.
Result<std::vector<float>> load_scale2(const TensorStore& st, const std::string& name, int64_t n_per) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(name));
  const int64_t n = t->numel();
  if (t->dtype != DType::kF32 || t->shape.size() > 1 || !(n == 1 || (n_per > 0 && n == n_per)))
    return error(*t->path + ": tensor '" + name + "' is " + shape_str(t->shape) + " " + dtype_name(t->dtype) + ", expected a F32 scalar");
  std::vector<float> v(reinterpret_cast<const float*>(t->data), reinterpret_cast<const float*>(t->data) + n);
  for (float x : v)
    if (!(x > 0.0f) || !std::isfinite(x)) return error(*t->path + ": tensor '" + name + "' = " + std::to_string(x) + " is not a positive finite scale");
  return v;
}

// E4M3 block scales: NaN bytes (0x7f, 0xff) or negative scales mean a broken export.
Status check_e4m3_scales(const TensorView& t) {
  auto bad = [](uint8_t b) { return static_cast<uint8_t>(((b & 0x7f) == 0x7f) | (b >> 7)); };
  constexpr size_t kChunk = 4096;  // a branch-free pass per chunk (vectorized); the index only on a bad chunk
  for (size_t c0 = 0; c0 < t.nbytes; c0 += kChunk) {
    const size_t c1 = std::min(t.nbytes, c0 + kChunk);
    uint8_t any = 0;
    for (size_t i = c0; i < c1; ++i) any |= bad(t.data[i]);
    if (!any) continue;
    for (size_t i = c0; i < c1; ++i)
      if (bad(t.data[i])) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", t.data[i]);
        return error(*t.path + ": tensor '" + t.name + "' holds an invalid E4M3 block scale " + hex + " at element " + std::to_string(i));
      }
  }
  return ok_status();
}

Result<LinearWeight> load_rowmajor_nvfp4(const TensorStore& st, const std::string& packed, const std::string& scales,
                                         const std::string& scale2, bool reciprocal, int64_t n_out, int64_t n_in) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* w, st.require(packed, DType::kU8, {n_out, n_in / 2}));
  OSS4_ASSIGN_OR_RETURN(const TensorView* s, st.require(scales, DType::kF8E4M3, {n_out, n_in / 16}));
  OSS4_TRY(check_e4m3_scales(*s));
  OSS4_ASSIGN_OR_RETURN(std::vector<float> s2, load_scale2(st, scale2, 0));
  LinearWeight lw;
  lw.type = WeightType::kNvfp4;
  lw.n_out = n_out;
  lw.n_in = n_in;
  lw.data = w->data;
  lw.scales = s->data;
  lw.scale2 = reciprocal ? 1.0f / s2[0] : s2[0];
  lw.name = packed;
  return lw;
}

}  // namespace detail

namespace {

using namespace detail;

enum class ExpertForm { kBf16, kMxfp4, kNvfp4, kFakeQuant, kCompressedTensors };

// ModelOpt's exported NVFP4 linear: base.weight U8 [n_out, n_in/2], base.weight_scale F8_E4M3 [n_out, n_in/16],
// base.weight_scale_2 F32 []; base.input_scale is for W4A4 and not used (activations stay f32).
Result<LinearWeight> load_nvfp4_linear(const TensorStore& st, const std::string& base, int64_t n_out, int64_t n_in) {
  return load_rowmajor_nvfp4(st, base + ".weight", base + ".weight_scale", base + ".weight_scale_2", false, n_out, n_in);
}

// a linear layer in whichever form the checkpoint has: NVFP4 when base.weight_scale exists, else BF16/F32.
Result<LinearWeight> load_linear(const TensorStore& st, const std::string& base, int64_t n_out, int64_t n_in) {
  if (st.has(base + ".weight_packed")) return load_ct_linear(st, base, n_out, n_in);
  if (st.has(base + ".weight_scale")) return load_nvfp4_linear(st, base, n_out, n_in);
  return load_dense(st, base + ".weight", n_out, n_in);
}

// ModelOpt's exported NVFP4 experts (input-major, as the export transposes back): name U8 [E, n_in/2, n_out],
// name_weight_scale F8_E4M3 [E, n_in/16, n_out], name_weight_scale_2 F32 [] (one per layer, or one per expert).
Status load_nvfp4_experts(const TensorStore& st, const std::string& name, int64_t n_exp, int64_t n_out, int64_t n_in,
                          std::vector<LinearWeight>* out) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* w, st.require(name, DType::kU8, {n_exp, n_in / 2, n_out}));
  OSS4_ASSIGN_OR_RETURN(const TensorView* s, st.require(name + "_weight_scale", DType::kF8E4M3, {n_exp, n_in / 16, n_out}));
  OSS4_TRY(check_e4m3_scales(*s));
  OSS4_ASSIGN_OR_RETURN(std::vector<float> s2, load_scale2(st, name + "_weight_scale_2", n_exp));
  for (int64_t e = 0; e < n_exp; ++e) {
    LinearWeight lw;
    lw.type = WeightType::kNvfp4;
    lw.n_out = n_out;
    lw.n_in = n_in;
    lw.set_in_major(true);
    lw.data = w->data + static_cast<size_t>(e * n_in / 2 * n_out);
    lw.scales = s->data + static_cast<size_t>(e * n_in / 16 * n_out);
    lw.scale2 = s2.size() == 1 ? s2[0] : s2[static_cast<size_t>(e)];
    lw.name = name + "[" + std::to_string(e) + "]";
    out->push_back(lw);
  }
  return ok_status();
}

// HF MXFP4 experts: name_blocks [E, n_out, n_in/32, 16] U8 and name_scales [E, n_out, n_in/32] U8.
Status load_mxfp4_experts(const TensorStore& st, const std::string& name, int64_t n_exp, int64_t n_out, int64_t n_in,
                          std::vector<LinearWeight>* out) {
  const int64_t g = n_in / 32;
  OSS4_ASSIGN_OR_RETURN(const TensorView* b, st.require(name + "_blocks", DType::kU8, {n_exp, n_out, g, 16}));
  OSS4_ASSIGN_OR_RETURN(const TensorView* s, st.require(name + "_scales", DType::kU8, {n_exp, n_out, g}));
  for (size_t i = 0; i < s->nbytes; ++i) {
    if (s->data[i] == 0xff) {
      return error(*s->path + ": tensor '" + s->name + "' holds the E8M0 NaN scale (255) at element " + std::to_string(i));
    }
  }
  for (int64_t e = 0; e < n_exp; ++e) {
    LinearWeight w;
    w.type = WeightType::kMxfp4;
    w.n_out = n_out;
    w.n_in = n_in;
    w.data = b->data + static_cast<size_t>(e * n_out * g * 16);
    w.scales = s->data + static_cast<size_t>(e * n_out * g);
    w.name = name + "_blocks[" + std::to_string(e) + "]";
    out->push_back(w);
  }
  return ok_status();
}

// BF16 experts in HF's input-major layout: name [E, n_in, n_out].
Status load_bf16_experts(const TensorStore& st, const std::string& name, int64_t n_exp, int64_t n_out, int64_t n_in,
                         std::vector<LinearWeight>* out) {
  OSS4_ASSIGN_OR_RETURN(const TensorView* t, st.require(name));
  if (t->shape != std::vector<int64_t>{n_exp, n_in, n_out}) {
    return error(*t->path + ": tensor '" + name + "' has shape " + shape_str(t->shape) + ", expected " +
                 shape_str({n_exp, n_in, n_out}) + " (BF16 experts are stored [experts, in, out])");
  }
  WeightType type;
  size_t esize;
  if (t->dtype == DType::kBF16) {
    type = WeightType::kBF16;
    esize = 2;
  } else if (t->dtype == DType::kF32) {
    type = WeightType::kF32;
    esize = 4;
  } else {
    return error(*t->path + ": tensor '" + name + "' has dtype " + dtype_name(t->dtype) + ", expected BF16 or F32");
  }
  for (int64_t e = 0; e < n_exp; ++e) {
    LinearWeight w;
    w.type = type;
    w.n_out = n_out;
    w.n_in = n_in;
    w.set_in_major(true);
    w.data = t->data + static_cast<size_t>(e * n_in * n_out) * esize;
    w.name = name + "[" + std::to_string(e) + "]";
    out->push_back(w);
  }
  return ok_status();
}

Status load_layer(const TensorStore& st, const ModelConfig& c, int64_t l, ExpertForm form, bool fakequant_attention,
                  LayerWeights* L, std::vector<std::vector<uint8_t>>* owned) {
  const int64_t H = c.n_embd, E = c.n_experts, F = c.n_ff;
  L->kind = c.layer_types[static_cast<size_t>(l)];
  OSS4_ASSIGN_OR_RETURN(L->attn_norm, load_vector(st, lname(l, "input_layernorm.weight"), {H}));
  OSS4_ASSIGN_OR_RETURN(L->mlp_norm, load_vector(st, lname(l, "post_attention_layernorm.weight"), {H}));
  if (fakequant_attention && has_fakequant_attention(st, l)) {
    OSS4_TRY(load_fakequant_attention(st, c, l, L, owned));
  } else {
    OSS4_ASSIGN_OR_RETURN(L->wq, load_linear(st, lname(l, "self_attn.q_proj"), c.q_dim(), H));
    OSS4_ASSIGN_OR_RETURN(L->wk, load_linear(st, lname(l, "self_attn.k_proj"), c.kv_dim(), H));
    OSS4_ASSIGN_OR_RETURN(L->wv, load_linear(st, lname(l, "self_attn.v_proj"), c.kv_dim(), H));
    OSS4_ASSIGN_OR_RETURN(L->wo, load_linear(st, lname(l, "self_attn.o_proj"), H, c.q_dim()));
  }
  if (c.attention_bias) {
    OSS4_ASSIGN_OR_RETURN(L->bq, load_vector(st, lname(l, "self_attn.q_proj.bias"), {c.q_dim()}));
    OSS4_ASSIGN_OR_RETURN(L->bk, load_vector(st, lname(l, "self_attn.k_proj.bias"), {c.kv_dim()}));
    OSS4_ASSIGN_OR_RETURN(L->bv, load_vector(st, lname(l, "self_attn.v_proj.bias"), {c.kv_dim()}));
    OSS4_ASSIGN_OR_RETURN(L->bo, load_vector(st, lname(l, "self_attn.o_proj.bias"), {H}));
  }
  OSS4_ASSIGN_OR_RETURN(L->sinks, load_vector(st, lname(l, "self_attn.sinks"), {c.n_heads}));
  OSS4_ASSIGN_OR_RETURN(L->router, load_linear(st, lname(l, "mlp.router"), E, H));
  OSS4_ASSIGN_OR_RETURN(L->router_bias, load_vector(st, lname(l, "mlp.router.bias"), {E}));
  if (form == ExpertForm::kCompressedTensors) return load_ct_experts(st, c, l, L, owned);  // biases included
  OSS4_ASSIGN_OR_RETURN(L->gate_up_bias, load_vector(st, lname(l, "mlp.experts.gate_up_proj_bias"), {E, 2 * F}));
  OSS4_ASSIGN_OR_RETURN(L->down_bias, load_vector(st, lname(l, "mlp.experts.down_proj_bias"), {E, H}));
  if (form == ExpertForm::kFakeQuant) {
    OSS4_TRY(load_fakequant_experts(st, lname(l, "mlp.experts.gate_up_proj"), E, 2 * F, H, owned, &L->gate_up));
    OSS4_TRY(load_fakequant_experts(st, lname(l, "mlp.experts.down_proj"), E, H, F, owned, &L->down));
  } else if (form == ExpertForm::kMxfp4) {
    OSS4_TRY(load_mxfp4_experts(st, lname(l, "mlp.experts.gate_up_proj"), E, 2 * F, H, &L->gate_up));
    OSS4_TRY(load_mxfp4_experts(st, lname(l, "mlp.experts.down_proj"), E, H, F, &L->down));
  } else if (form == ExpertForm::kNvfp4) {
    OSS4_TRY(load_nvfp4_experts(st, lname(l, "mlp.experts.gate_up_proj"), E, 2 * F, H, &L->gate_up));
    OSS4_TRY(load_nvfp4_experts(st, lname(l, "mlp.experts.down_proj"), E, H, F, &L->down));
  } else {
    OSS4_TRY(load_bf16_experts(st, lname(l, "mlp.experts.gate_up_proj"), E, 2 * F, H, &L->gate_up));
    OSS4_TRY(load_bf16_experts(st, lname(l, "mlp.experts.down_proj"), E, H, F, &L->down));
  }
  return ok_status();
}

}  // namespace

Result<ModelWeights> load_model(const std::string& dir, const ProgressFn& progress, const LoadOptions& opt) {
  ModelWeights m;
  OSS4_ASSIGN_OR_RETURN(m.cfg, load_model_config(dir));
  OSS4_ASSIGN_OR_RETURN(m.store, TensorStore::open_dir(dir));
  const ModelConfig& c = m.cfg;
  m.rope = rope_table_init(c);
  // the expert form is read off the tensors (configs of third-party exports vary; the tensors do not lie)
  ExpertForm form = ExpertForm::kBf16;
  if (m.store.has(lname(0, "mlp.experts.gate_up_proj_blocks"))) {
    form = ExpertForm::kMxfp4;
  } else if (m.store.has(lname(0, "mlp.experts.gate_up_proj_weight_scale"))) {
    form = ExpertForm::kNvfp4;
  } else if (m.store.has(lname(0, "mlp.experts.gate_up_proj_weight_quantizer._amax"))) {
    form = ExpertForm::kFakeQuant;
  } else if (m.store.has(lname(0, "mlp.experts.experts.0.gate_proj.weight_packed"))) {
    form = ExpertForm::kCompressedTensors;
  }
  if (form == ExpertForm::kFakeQuant && !opt.quantize_fakequant) form = ExpertForm::kBf16;
  const bool mxfp4 = form == ExpertForm::kMxfp4;
  if ((form == ExpertForm::kBf16 || form == ExpertForm::kFakeQuant) && !m.store.has(lname(0, "mlp.experts.gate_up_proj"))) {
    return error(dir + ": found neither MXFP4 experts ('" + lname(0, "mlp.experts.gate_up_proj_blocks") + "') nor BF16 experts ('" +
                 lname(0, "mlp.experts.gate_up_proj") + "')");
  }
  if (mxfp4 && (c.n_embd % 32 != 0 || c.n_ff % 32 != 0))
    return error(dir + ": MXFP4 experts need hidden_size and intermediate_size divisible by 32");
  switch (form) {
    case ExpertForm::kMxfp4: m.checkpoint_kind = CheckpointKind::kMxfp4; break;
    case ExpertForm::kNvfp4: m.checkpoint_kind = CheckpointKind::kNvfp4Export; break;
    case ExpertForm::kFakeQuant: m.checkpoint_kind = CheckpointKind::kNvfp4FakeQuant; break;
    case ExpertForm::kCompressedTensors: m.checkpoint_kind = CheckpointKind::kNvfp4CompressedTensors; break;
    case ExpertForm::kBf16:
      m.checkpoint_kind = !has_fakequant_attention(m.store, 0) ? CheckpointKind::kBf16
                          : opt.quantize_fakequant             ? CheckpointKind::kBf16ExpertsNvfp4Attention
                                                               : CheckpointKind::kBf16FakeQuantKept;
      break;
  }
  if (form != ExpertForm::kMxfp4 && form != ExpertForm::kBf16 && (c.n_embd % 16 != 0 || c.n_ff % 16 != 0))
    return error(dir + ": NVFP4 experts need hidden_size and intermediate_size divisible by 16");
  OSS4_ASSIGN_OR_RETURN(m.embed, load_dense(m.store, "model.embed_tokens.weight", c.n_vocab, c.n_embd));
  if (c.tie_word_embeddings && !m.store.has("lm_head.weight")) {
    m.lm_head = m.embed;
  } else {
    // BF16 as released; NVFP4 when oss4 quantize --lm-head nvfp4 (or another exporter) quantized it
    OSS4_ASSIGN_OR_RETURN(m.lm_head, load_linear(m.store, "lm_head", c.n_vocab, c.n_embd));
  }
  OSS4_ASSIGN_OR_RETURN(m.final_norm, load_vector(m.store, "model.norm.weight", {c.n_embd}));
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    OSS4_TRY(load_layer(m.store, c, l, form, opt.quantize_fakequant, &m.layers[static_cast<size_t>(l)], &m.owned));
    if (progress) progress(l + 1, c.n_layers);
  }
  return m;
}

}  // namespace oss4
