#include "backend/cuda/cuda_weights.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "backend/cuda/repack.h"
#include "core/thread_pool.h"
#include "model/lm_head.h"
#include "numeric/float_formats.h"

namespace oss4::cuda {

void rope_cos_sin_table(const RopeTable& rope, int64_t n_pos, float* out) {
  const int64_t hd = rope.head_dim, half = hd / 2;
  for (int64_t p = 0; p < n_pos; ++p) {
    const float pf = static_cast<float>(p);
    float* row = out + p * hd;
    for (int64_t i = 0; i < half; ++i) {
      const float theta = pf * rope.inv_freq[static_cast<size_t>(i)];  // as f32_rope_ref computes it
      row[i] = std::cos(theta) * rope.concentration;
      row[half + i] = std::sin(theta) * rope.concentration;
    }
  }
}

namespace {

class Preparer {
 public:
  Preparer(Uploader up, const ProgressFn& progress, int64_t total) : up_(std::move(up)), progress_(progress), total_(total) {}

  Result<const uint8_t*> bytes(const void* src, size_t n, const std::string& what) {
    OSS4_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::alloc(n, what));
    OSS4_TRY(up_.copy(b.data(), static_cast<const uint8_t*>(src), n, what));
    const uint8_t* p = b.data();
    w_.bytes += n;
    w_.owned.push_back(std::move(b));
    return p;
  }
  Result<const float*> f32(const std::vector<float>& v, const std::string& what) {
    if (v.empty()) return static_cast<const float*>(nullptr);
    OSS4_ASSIGN_OR_RETURN(const uint8_t* p, bytes(v.data(), v.size() * sizeof(float), what));
    return reinterpret_cast<const float*>(p);
  }

  // a linear map: FP4 repacked into tiles, BF16 as it is, F32 rounded to BF16 (none in the released checkpoints)
  Result<DevMatrix> matrix(const WeightView& w, const std::string& name) {
    DevMatrix d;
    d.n_out = w.n_out;
    d.n_in = w.n_in;
    if (w.type == WeightType::kNvfp4 || w.type == WeightType::kMxfp4) {
      OSS4_ASSIGN_OR_RETURN(Fp4TileMatrix t, repack_weight(w, false, name));
      OSS4_ASSIGN_OR_RETURN(const uint8_t* p, bytes(t.tiles.data(), t.tiles.size(), name));
      d.fp4 = true;
      d.tiles = view_of(t, p);
      d.bytes = t.tiles.size();
      tick();
      return d;
    }
    if (w.in_major() || w.tiles32()) return error(name + ": a " + weight_type_name(w.type) + " matrix in the input-major layout (the CUDA backend reads row-major BF16)");
    if (w.n_in % 8 != 0) return error(name + ": n_in " + std::to_string(w.n_in) + " is not a multiple of 8 (the BF16 kernels' loads)");
    const size_t n = static_cast<size_t>(w.n_out * w.n_in);
    const uint8_t* p = nullptr;
    if (w.type == WeightType::kBF16) {
      OSS4_ASSIGN_OR_RETURN(p, bytes(w.data, n * 2, name));
    } else if (w.type == WeightType::kF32) {
      std::vector<uint16_t> b(n);  // [n_out, n_in] bf16
      const auto* f = reinterpret_cast<const float*>(w.data);
      for (size_t i = 0; i < n; ++i) b[i] = f32_to_bf16(f[i]);
      OSS4_ASSIGN_OR_RETURN(p, bytes(b.data(), n * 2, name));
    } else {
      return error(name + ": unsupported weight type " + weight_type_name(w.type));
    }
    d.bf16 = reinterpret_cast<const uint16_t*>(p);
    d.bytes = n * 2;
    tick();
    return d;
  }

  // all experts of one projection, repacked alike and stored back to back
  Result<Fp4ExpertsView> experts(const std::vector<LinearWeight>& ws, bool paired) {
    Fp4ExpertsView v;
    if (ws.empty()) return error("a layer without experts");
    std::vector<float> scale(ws.size());  // [n_experts] f32
    std::vector<int32_t> shift(ws.size());  // [n_experts] i32
    DeviceBuffer buf;
    for (size_t e = 0; e < ws.size(); ++e) {
      const LinearWeight& w = ws[e];
      if (w.type != WeightType::kNvfp4 && w.type != WeightType::kMxfp4)
        return error(w.name + ": " + weight_type_name(w.type) +
                     " experts; the CUDA backend runs NVFP4 or MXFP4 experts (make an NVFP4 checkpoint with oss4 quantize)");
      OSS4_ASSIGN_OR_RETURN(Fp4TileMatrix t, repack_weight(w, paired, w.name));
      if (e == 0) {
        v.format = t.format;
        v.n_out = t.n_out, v.n_in = t.n_in, v.n_row_tiles = t.n_row_tiles, v.n_k_tiles = t.n_k_tiles;
        v.paired = paired;
        v.expert_stride = static_cast<int64_t>(t.tiles.size());
        OSS4_ASSIGN_OR_RETURN(buf, DeviceBuffer::alloc(t.tiles.size() * ws.size(), w.name));
      } else if (t.format != v.format || t.n_out != v.n_out || t.n_in != v.n_in ||
                 static_cast<int64_t>(t.tiles.size()) != v.expert_stride) {
        return error(w.name + ": experts of one layer in different formats or shapes");
      }
      OSS4_TRY(up_.copy(buf.data() + e * static_cast<size_t>(v.expert_stride), t.tiles.data(), t.tiles.size(), w.name));
      scale[e] = t.epilogue_scale;
      shift[e] = t.mx_shift;
      tick();
    }
    v.tiles = buf.data();
    w_.bytes += buf.size();
    w_.owned.push_back(std::move(buf));
    OSS4_ASSIGN_OR_RETURN(v.epilogue_scale, f32(scale, ws[0].name + " epilogue scales"));
    OSS4_ASSIGN_OR_RETURN(const uint8_t* sp, bytes(shift.data(), shift.size() * 4, ws[0].name + " shifts"));
    v.mx_shift = reinterpret_cast<const int32_t*>(sp);
    return v;
  }

  void tick() {
    if (progress_) progress_(++done_, total_);
  }
  CudaWeights& out() { return w_; }

 private:
  Uploader up_;
  ProgressFn progress_;
  int64_t total_ = 0, done_ = 0;
  CudaWeights w_;
};

}  // namespace

Result<CudaWeights> cuda_prepare_weights(const ModelWeights& m, LmHeadType lm, int threads, const ProgressFn& progress) {
  const ModelConfig& c = m.cfg;
  OSS4_ASSIGN_OR_RETURN(Uploader up, Uploader::create());
  const int64_t total = c.n_layers * (5 + 2 * c.n_experts) + 1;
  Preparer p(std::move(up), progress, total);
  CudaWeights& w = p.out();

  // the embedding table, rows gathered on the device
  if (m.embed.type != WeightType::kBF16 && m.embed.type != WeightType::kF32)
    return error(m.embed.name + ": the embedding table must be BF16 or F32, not " + weight_type_name(m.embed.type));
  if (m.embed.in_major()) return error(m.embed.name + ": an input-major embedding table");
  w.embed_f32 = m.embed.type == WeightType::kF32;
  OSS4_ASSIGN_OR_RETURN(const uint8_t* emb, p.bytes(m.embed.data, static_cast<size_t>(m.embed.n_out * m.embed.n_in) * (w.embed_f32 ? 4 : 2), m.embed.name));
  w.embed = emb;
  size_t per_token = static_cast<size_t>(c.n_embd) * (w.embed_f32 ? 4 : 2);

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = m.layers[static_cast<size_t>(l)];
    const std::string pre = "layer " + std::to_string(l) + " ";
    DevLayer d;
    OSS4_ASSIGN_OR_RETURN(d.attn_norm, p.f32(L.attn_norm, pre + "attn_norm"));
    OSS4_ASSIGN_OR_RETURN(d.mlp_norm, p.f32(L.mlp_norm, pre + "mlp_norm"));
    OSS4_ASSIGN_OR_RETURN(d.sinks, p.f32(L.sinks, pre + "sinks"));
    if (!d.attn_norm || !d.mlp_norm || !d.sinks) return error(pre + "has no norm or sink weights");
    OSS4_ASSIGN_OR_RETURN(d.wq, p.matrix(L.wq, L.wq.name));
    OSS4_ASSIGN_OR_RETURN(d.wk, p.matrix(L.wk, L.wk.name));
    OSS4_ASSIGN_OR_RETURN(d.wv, p.matrix(L.wv, L.wv.name));
    OSS4_ASSIGN_OR_RETURN(d.wo, p.matrix(L.wo, L.wo.name));
    OSS4_ASSIGN_OR_RETURN(d.bq, p.f32(L.bq, pre + "q bias"));
    OSS4_ASSIGN_OR_RETURN(d.bk, p.f32(L.bk, pre + "k bias"));
    OSS4_ASSIGN_OR_RETURN(d.bv, p.f32(L.bv, pre + "v bias"));
    OSS4_ASSIGN_OR_RETURN(d.bo, p.f32(L.bo, pre + "o bias"));
    OSS4_ASSIGN_OR_RETURN(d.router, p.matrix(L.router, L.router.name));
    if (d.router.fp4) return error(L.router.name + ": an FP4 router (the CUDA backend reads a BF16 router)");
    OSS4_ASSIGN_OR_RETURN(d.router_bias, p.f32(L.router_bias, pre + "router bias"));
    if (L.gate_up.size() != static_cast<size_t>(c.n_experts) || L.down.size() != static_cast<size_t>(c.n_experts))
      return error(pre + "has " + std::to_string(L.gate_up.size()) + " gate_up and " + std::to_string(L.down.size()) +
                   " down experts, the config " + std::to_string(c.n_experts));
    OSS4_ASSIGN_OR_RETURN(d.gate_up, p.experts(L.gate_up, true));
    OSS4_ASSIGN_OR_RETURN(d.down, p.experts(L.down, false));
    if (L.gate_up_bias.size() != static_cast<size_t>(c.n_experts * 2 * c.n_ff) ||
        L.down_bias.size() != static_cast<size_t>(c.n_experts * c.n_embd))
      return error(pre + "expert biases missing or of the wrong size (the MoE kernel adds both)");
    OSS4_ASSIGN_OR_RETURN(d.gate_up_bias, p.f32(L.gate_up_bias, pre + "gate_up bias"));
    OSS4_ASSIGN_OR_RETURN(d.down_bias, p.f32(L.down_bias, pre + "down bias"));
    per_token += d.wq.bytes + d.wk.bytes + d.wv.bytes + d.wo.bytes + d.router.bytes +
                 static_cast<size_t>(c.n_experts_used) * static_cast<size_t>(d.gate_up.expert_stride + d.down.expert_stride);
    w.layers.push_back(d);
  }
  OSS4_ASSIGN_OR_RETURN(w.final_norm, p.f32(m.final_norm, "final norm"));

  // the lm_head as the option asks (model/lm_head.h, as the CPU backend does)
  const bool stored_fp4 = m.lm_head.type == WeightType::kNvfp4 || m.lm_head.type == WeightType::kMxfp4;
  if (lm == LmHeadType::kBf16 && stored_fp4)
    return error(m.lm_head.name + ": --lm-head bf16 asks for a BF16 lm_head, the checkpoint's is " + weight_type_name(m.lm_head.type));
  if (lm == LmHeadType::kNvfp4 && !stored_fp4) {
    ThreadPool pool(resolve_threads(threads));
    LmHeadNvfp4 q;
    OSS4_TRY(nvfp4_quantize_lm_head(m.lm_head, false, pool, &q));
    WeightView v;
    v.type = WeightType::kNvfp4;
    v.layout = WeightLayout::kRowMajor;
    v.n_out = m.lm_head.n_out, v.n_in = m.lm_head.n_in;
    v.data = q.packed.data(), v.scales = q.scales.data(), v.scale2 = q.scale2;
    OSS4_ASSIGN_OR_RETURN(w.lm_head, p.matrix(v, m.lm_head.name + " (quantized to NVFP4 at load)"));
  } else {
    OSS4_ASSIGN_OR_RETURN(w.lm_head, p.matrix(m.lm_head, m.lm_head.name));
  }
  w.lm_head_type = w.lm_head.fp4 ? (w.lm_head.tiles.format == Fp4Format::kNvfp4 ? "nvfp4" : "mxfp4") : "bf16";
  per_token += w.lm_head.bytes;

  // RoPE: cos and sin of every position the model takes
  const int64_t n_pos = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
  std::vector<float> cs(static_cast<size_t>(n_pos * c.head_dim));  // [n_pos, head_dim] f32
  rope_cos_sin_table(m.rope, n_pos, cs.data());
  OSS4_ASSIGN_OR_RETURN(w.rope_cs, p.f32(cs, "RoPE table"));
  w.n_rope_pos = n_pos;
  w.bytes_per_token = per_token;
  return std::move(w);
}

}  // namespace oss4::cuda
