#include "model/weights.h"

#include "quant/float_formats.h"

namespace oss4 {

const char* weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::kF32: return "f32";
    case WeightType::kBF16: return "bf16";
    case WeightType::kMxfp4: return "mxfp4";
  }
  return "?";
}

size_t LinearWeight::nbytes() const {
  const auto n = static_cast<size_t>(n_out * n_in);
  switch (type) {
    case WeightType::kF32: return n * 4;
    case WeightType::kBF16: return n * 2;
    case WeightType::kMxfp4: return n / 2 + n / 32;
  }
  return 0;
}

size_t ModelWeights::weight_bytes_per_token() const {
  size_t n = static_cast<size_t>(cfg.n_embd) * (embed.type == WeightType::kF32 ? 4 : 2) + lm_head.nbytes();
  for (const auto& l : layers) {
    n += l.wq.nbytes() + l.wk.nbytes() + l.wv.nbytes() + l.wo.nbytes() + l.router.nbytes();
    if (!l.gate_up.empty()) n += static_cast<size_t>(cfg.n_experts_used) * (l.gate_up[0].nbytes() + l.down[0].nbytes());
  }
  return n;
}

namespace {

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
    w.in_major = true;
    w.data = t->data + static_cast<size_t>(e * n_in * n_out) * esize;
    w.name = name + "[" + std::to_string(e) + "]";
    out->push_back(w);
  }
  return ok_status();
}

Status load_layer(const TensorStore& st, const ModelConfig& c, int64_t l, bool mxfp4, LayerWeights* L) {
  const int64_t H = c.n_embd, E = c.n_experts, F = c.n_ff;
  L->kind = c.layer_types[static_cast<size_t>(l)];
  OSS4_ASSIGN_OR_RETURN(L->attn_norm, load_vector(st, lname(l, "input_layernorm.weight"), {H}));
  OSS4_ASSIGN_OR_RETURN(L->mlp_norm, load_vector(st, lname(l, "post_attention_layernorm.weight"), {H}));
  OSS4_ASSIGN_OR_RETURN(L->wq, load_dense(st, lname(l, "self_attn.q_proj.weight"), c.q_dim(), H));
  OSS4_ASSIGN_OR_RETURN(L->wk, load_dense(st, lname(l, "self_attn.k_proj.weight"), c.kv_dim(), H));
  OSS4_ASSIGN_OR_RETURN(L->wv, load_dense(st, lname(l, "self_attn.v_proj.weight"), c.kv_dim(), H));
  OSS4_ASSIGN_OR_RETURN(L->wo, load_dense(st, lname(l, "self_attn.o_proj.weight"), H, c.q_dim()));
  if (c.attention_bias) {
    OSS4_ASSIGN_OR_RETURN(L->bq, load_vector(st, lname(l, "self_attn.q_proj.bias"), {c.q_dim()}));
    OSS4_ASSIGN_OR_RETURN(L->bk, load_vector(st, lname(l, "self_attn.k_proj.bias"), {c.kv_dim()}));
    OSS4_ASSIGN_OR_RETURN(L->bv, load_vector(st, lname(l, "self_attn.v_proj.bias"), {c.kv_dim()}));
    OSS4_ASSIGN_OR_RETURN(L->bo, load_vector(st, lname(l, "self_attn.o_proj.bias"), {H}));
  }
  OSS4_ASSIGN_OR_RETURN(L->sinks, load_vector(st, lname(l, "self_attn.sinks"), {c.n_heads}));
  OSS4_ASSIGN_OR_RETURN(L->router, load_dense(st, lname(l, "mlp.router.weight"), E, H));
  OSS4_ASSIGN_OR_RETURN(L->router_bias, load_vector(st, lname(l, "mlp.router.bias"), {E}));
  OSS4_ASSIGN_OR_RETURN(L->gate_up_bias, load_vector(st, lname(l, "mlp.experts.gate_up_proj_bias"), {E, 2 * F}));
  OSS4_ASSIGN_OR_RETURN(L->down_bias, load_vector(st, lname(l, "mlp.experts.down_proj_bias"), {E, H}));
  if (mxfp4) {
    OSS4_TRY(load_mxfp4_experts(st, lname(l, "mlp.experts.gate_up_proj"), E, 2 * F, H, &L->gate_up));
    OSS4_TRY(load_mxfp4_experts(st, lname(l, "mlp.experts.down_proj"), E, H, F, &L->down));
  } else {
    OSS4_TRY(load_bf16_experts(st, lname(l, "mlp.experts.gate_up_proj"), E, 2 * F, H, &L->gate_up));
    OSS4_TRY(load_bf16_experts(st, lname(l, "mlp.experts.down_proj"), E, H, F, &L->down));
  }
  return ok_status();
}

}  // namespace

Result<ModelWeights> load_model(const std::string& dir, const ProgressFn& progress) {
  ModelWeights m;
  OSS4_ASSIGN_OR_RETURN(m.cfg, load_model_config(dir));
  OSS4_ASSIGN_OR_RETURN(m.store, TensorStore::open_dir(dir));
  const ModelConfig& c = m.cfg;
  m.rope = rope_table_init(c);
  const bool mxfp4 = m.store.has(lname(0, "mlp.experts.gate_up_proj_blocks"));
  if (!mxfp4 && !m.store.has(lname(0, "mlp.experts.gate_up_proj"))) {
    return error(dir + ": found neither MXFP4 experts ('" + lname(0, "mlp.experts.gate_up_proj_blocks") + "') nor BF16 experts ('" +
                 lname(0, "mlp.experts.gate_up_proj") + "')");
  }
  if (mxfp4 && (c.n_embd % 32 != 0 || c.n_ff % 32 != 0))
    return error(dir + ": MXFP4 experts need hidden_size and intermediate_size divisible by 32");
  m.checkpoint_kind = mxfp4 ? "mxfp4" : "bf16";
  OSS4_ASSIGN_OR_RETURN(m.embed, load_dense(m.store, "model.embed_tokens.weight", c.n_vocab, c.n_embd));
  if (c.tie_word_embeddings && !m.store.has("lm_head.weight")) {
    m.lm_head = m.embed;
  } else {
    OSS4_ASSIGN_OR_RETURN(m.lm_head, load_dense(m.store, "lm_head.weight", c.n_vocab, c.n_embd));
  }
  OSS4_ASSIGN_OR_RETURN(m.final_norm, load_vector(m.store, "model.norm.weight", {c.n_embd}));
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    OSS4_TRY(load_layer(m.store, c, l, mxfp4, &m.layers[static_cast<size_t>(l)]));
    if (progress) progress(l + 1, c.n_layers);
  }
  return m;
}

}  // namespace oss4
