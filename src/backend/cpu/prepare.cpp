#include "backend/cpu/prepare.h"

#include "core/transpose.h"
#include "model/lm_head.h"

namespace oss4 {

namespace {

bool repackable(const LinearWeight& w) {
  return w.type == WeightType::kNvfp4 && !w.in_major() && repack_wants_in_major(w.n_out, w.n_in) && w.data && w.scales;
}

// drops the checkpoint pages a prepared copy replaces (a buffer m built at load stays: m is the source of truth)
void release_source(const ModelWeights& m, const LinearWeight& w) {
  for (const std::string& name : {w.name, w.name + "_scale"})
    if (const TensorView* t = m.store.find(name)) m.store.release(*t);
}

// the lm_head option: w as stored, or quantized to NVFP4 (input-major when the repack would make it so) into out
Status prepare_lm_head(const ModelWeights& m, LmHeadType type, ThreadPool& pool, CpuWeights* out) {
  LinearWeight& w = out->lm_head;
  w = m.lm_head;
  if (type == LmHeadType::kStored) return ok_status();
  if (type == LmHeadType::kBf16) {
    if (w.type == WeightType::kBF16 || w.type == WeightType::kF32) return ok_status();
    return error("--lm-head bf16: lm_head '" + w.name + "' is stored as " + weight_type_name(w.type) +
                 "; it runs as stored (--lm-head stored)");
  }
  if (w.type == WeightType::kNvfp4) return ok_status();
  LmHeadNvfp4 q;
  OSS4_TRY(nvfp4_quantize_lm_head(w, repack_wants_in_major(w.n_out, w.n_in), pool, &q).with_context("--lm-head nvfp4"));
  if (const TensorView* t = m.store.find(w.name); t != nullptr && w.data != m.embed.data) m.store.release(*t);
  out->owned.push_back(std::move(q.packed));
  const uint8_t* packed_ptr = out->owned.back().data();
  out->owned.push_back(std::move(q.scales));
  w.type = WeightType::kNvfp4;
  w.set_in_major(q.in_major);
  w.data = packed_ptr;
  w.scales = out->owned.back().data();
  w.scale2 = q.scale2;
  w.name += " (requantized to nvfp4)";
  return ok_status();
}

}  // namespace

bool repack_wants_in_major(int64_t n_out, int64_t n_in) { return n_out % 32 == 0 && n_in % 16 == 0; }

Result<CpuWeights> cpu_prepare_weights(const ModelWeights& m, LmHeadType lm_head, ThreadPool& pool) {
  CpuWeights cw;
  cw.layers.resize(m.layers.size());
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& L = m.layers[l];
    cw.layers[l] = CpuAttnWeights{L.wq, L.wk, L.wv, L.wo};
  }
  OSS4_TRY(prepare_lm_head(m, lm_head, pool, &cw));
  std::vector<LinearWeight*> todo;
  for (CpuAttnWeights& L : cw.layers)
    for (LinearWeight* w : {&L.wq, &L.wk, &L.wv, &L.wo})
      if (repackable(*w)) todo.push_back(w);
  if (repackable(cw.lm_head)) todo.push_back(&cw.lm_head);
  // buffers first (owned may reallocate its outer vector, never the inner buffers), then the transposes in parallel
  const size_t first = cw.owned.size();
  for (LinearWeight* w : todo) {
    cw.owned.emplace_back(static_cast<size_t>(w->n_out * w->n_in / 2));   // [n_in/2, n_out] codes
    cw.owned.emplace_back(static_cast<size_t>(w->n_out * w->n_in / 16));  // [n_in/16, n_out] e4m3
  }
  pool.run(static_cast<int64_t>(todo.size()), [&](int64_t i) {
    const LinearWeight& w = *todo[static_cast<size_t>(i)];
    transpose_u8(w.data, w.n_out, w.n_in / 2, cw.owned[first + 2 * static_cast<size_t>(i)].data());
    transpose_u8(w.scales, w.n_out, w.n_in / 16, cw.owned[first + 2 * static_cast<size_t>(i) + 1].data());
  });
  for (size_t i = 0; i < todo.size(); ++i) {
    LinearWeight& w = *todo[i];
    release_source(m, w);
    w.data = cw.owned[first + 2 * i].data();
    w.scales = cw.owned[first + 2 * i + 1].data();
    w.set_in_major(true);
    cw.repacked_bytes += cw.owned[first + 2 * i].size() + cw.owned[first + 2 * i + 1].size();
  }
  return cw;
}

}  // namespace oss4
