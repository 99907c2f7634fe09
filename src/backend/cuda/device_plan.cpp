#include "backend/cuda/device_plan.h"

#include <algorithm>
#include <string>

#include "backend/cuda/attn_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/kv_pages.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/tile_layout.h"

namespace oss4::cuda {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// bytes of one matrix on the device: FP4 tiles (rows padded to 16, inputs to 64), or BF16 (an F32 one is rounded)
Result<size_t> matrix_bytes(const WeightView& w, WeightType as, const std::string& name) {
  if (as == WeightType::kNvfp4 || as == WeightType::kMxfp4) {
    const Fp4Format f = as == WeightType::kNvfp4 ? Fp4Format::kNvfp4 : Fp4Format::kMxfp4;
    return static_cast<size_t>(ceil_div(w.n_out, kTileRows) * ceil_div(w.n_in, kTileK) * tile_bytes(f));
  }
  if (as != WeightType::kBF16 && as != WeightType::kF32) return error(name + ": unsupported weight type " + weight_type_name(as));
  return static_cast<size_t>(w.n_out * w.n_in * 2);
}

size_t f32_bytes(const std::vector<float>& v) { return v.size() * sizeof(float); }

}  // namespace

Result<size_t> device_weight_bytes(const ModelWeights& m, LmHeadType lm, std::vector<DevicePlanItem>* items) {
  const ModelConfig& c = m.cfg;
  size_t embed = static_cast<size_t>(m.embed.n_out * m.embed.n_in) * (m.embed.type == WeightType::kF32 ? 4 : 2);
  size_t attn = 0, experts = 0, small = f32_bytes(m.final_norm), router = 0;
  for (const LayerWeights& L : m.layers) {
    small += f32_bytes(L.attn_norm) + f32_bytes(L.mlp_norm) + f32_bytes(L.sinks) + f32_bytes(L.bq) + f32_bytes(L.bk) + f32_bytes(L.bv) +
             f32_bytes(L.bo) + f32_bytes(L.router_bias) + f32_bytes(L.gate_up_bias) + f32_bytes(L.down_bias);
    for (const LinearWeight* w : {&L.wq, &L.wk, &L.wv, &L.wo}) {
      OSS4_ASSIGN_OR_RETURN(size_t b, matrix_bytes(*w, w->type, w->name));
      attn += b;
    }
    OSS4_ASSIGN_OR_RETURN(size_t rb, matrix_bytes(L.router, L.router.type, L.router.name));
    router += rb;
    for (const std::vector<LinearWeight>* proj : {&L.gate_up, &L.down}) {
      for (const LinearWeight& w : *proj) {
        if (w.type != WeightType::kNvfp4 && w.type != WeightType::kMxfp4)
          return error(w.name + ": " + weight_type_name(w.type) + " experts; the CUDA backend runs NVFP4 or MXFP4 experts");
        OSS4_ASSIGN_OR_RETURN(size_t b, matrix_bytes(w, w.type, w.name));
        experts += b;
      }
      small += proj->size() * 8;  // epilogue scale (f32) and MXFP4 shift (i32) per expert
    }
  }
  const bool stored_fp4 = m.lm_head.type == WeightType::kNvfp4 || m.lm_head.type == WeightType::kMxfp4;
  const WeightType lm_as = lm == LmHeadType::kNvfp4 && !stored_fp4 ? WeightType::kNvfp4 : m.lm_head.type;
  OSS4_ASSIGN_OR_RETURN(size_t head, matrix_bytes(m.lm_head, lm_as, m.lm_head.name));
  const int64_t n_pos = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
  const size_t rope = static_cast<size_t>(n_pos * c.head_dim) * sizeof(float);
  if (items) {
    items->push_back({"embedding table", embed});
    items->push_back({"experts", experts});
    items->push_back({"attention projections", attn});
    items->push_back({"routers", router});
    items->push_back({std::string("lm_head (") + weight_type_name(lm_as) + ")", head});
    items->push_back({"norms, biases, sinks, expert scales", small});
    items->push_back({"RoPE table (" + std::to_string(n_pos) + " positions)", rope});
  }
  return embed + experts + attn + router + head + small + rope;
}

Result<DevicePlan> plan_device_memory(const ModelWeights& m, LmHeadType lm, int64_t ctx, int64_t max_chunk, int64_t n_seq) {
  const ModelConfig& c = m.cfg;
  if (ctx <= 0 || max_chunk <= 0 || n_seq <= 0) return error("device plan: ctx, chunk and sequences must be positive");
  DevicePlan p;
  OSS4_ASSIGN_OR_RETURN(p.weight_bytes, device_weight_bytes(m, lm, &p.items));
  // K/V: each group's pages, the pool's slabs of 32 pages
  int64_t n_layers[2] = {0, 0};
  for (LayerKind k : c.layer_types) ++n_layers[k == LayerKind::kSliding ? 1 : 0];
  for (int g = 0; g < 2; ++g) {
    if (n_layers[g] == 0) continue;
    const PageGeom geom{n_layers[g], c.kv_dim()};
    const int64_t ring = g == 1 ? sliding_ring_slots(c.sliding_window, max_chunk, ctx) : 0;
    const int64_t pages = ring > 0 ? ring : pages_for(ctx);
    const int64_t slabs = ceil_div(pages * n_seq, 32);
    const size_t b = static_cast<size_t>(slabs * 32 * page_elems(geom) * 2);
    p.kv_bytes += b;
    p.items.push_back({std::string(g == 0 ? "K/V, full-attention layers" : "K/V, sliding-window layers (rings)") + " x " +
                           std::to_string(n_seq) + " sequences of " + std::to_string(ctx),
                       b});
  }
  // the step scratch of the largest step: a prefill chunk beside a decode row of every other sequence, every row
  // asking for logits (a prefill that keeps all of them); the attention in tiles (attention_tile_rows) over key
  // ranges rounded up to a power of two of splits (decode graphs); each buffer keeps 25% over what it was asked
  const int64_t n = max_chunk + n_seq - 1, k = c.n_experts_used;
  int64_t splits = 1;
  while (splits < n_key_splits(ctx)) splits *= 2;
  const int64_t keys = splits * kKeysPerSplit, tile = std::min(n, attention_tile_rows(c.n_heads, c.head_dim, keys));
  const size_t f = static_cast<size_t>(n) * 4;
  size_t s = f * static_cast<size_t>(c.n_embd * 3 + c.q_dim() * 2 + c.kv_dim() * 2 + c.n_experts + 2 * k) +
             static_cast<size_t>(n) * 2 * static_cast<size_t>(c.n_embd + c.q_dim()) +
             moe_scratch_bytes(n, k, c.n_experts, c.n_ff, c.n_embd) + attention_scratch_bytes(tile, c.n_heads, c.head_dim, keys) +
             static_cast<size_t>(n) * static_cast<size_t>(c.n_vocab * 4 + c.n_embd * 2);
  s += s / 4;
  // and each sequence's two page tables (device pointers)
  s += static_cast<size_t>(n_seq) * 2 * static_cast<size_t>(pages_for(ctx)) * 8;
  p.scratch_bytes = s;
  p.items.push_back({"step scratch (" + std::to_string(n) + " rows with logits, keys up to " + std::to_string(ctx) + "), page tables", s});
  return p;
}

}  // namespace oss4::cuda
