#include "backend/cpu/prepare.h"

#include <algorithm>
#include <string>

#include "core/transpose.h"
#include "model/lm_head.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {

namespace {

bool repackable(const LinearWeight& w) {
  return w.type == WeightType::kNvfp4 && !w.in_major() && repack_wants_in_major(w.n_out, w.n_in) && w.data && w.scales;
}

// NVFP4 that the AVX-512 rung runs in 32-output tiles (any source layout)
bool tileable(const LinearWeight& w) {
  return w.type == WeightType::kNvfp4 && !w.tiles32() && nvfp4_tiles_fit(w.n_out, w.n_in) && w.data && w.scales;
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

Result<CpuWeights> cpu_prepare_weights(const ModelWeights& m, LmHeadType lm_head, ThreadPool& pool, WeightLayout nvfp4,
                                       const ProgressFn& progress) {
  CpuWeights cw;
  const bool tiles = nvfp4 == WeightLayout::kTiles32;
  cw.layers.resize(m.layers.size());
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& L = m.layers[l];
    cw.layers[l] = CpuLayerWeights{L.wq, L.wk, L.wv, L.wo, L.gate_up, L.down};
  }
  OSS4_TRY(prepare_lm_head(m, lm_head, pool, &cw));
  std::vector<LinearWeight*> todo;
  auto want = [&](const LinearWeight& w) { return tiles ? tileable(w) : repackable(w); };
  for (CpuLayerWeights& L : cw.layers) {
    for (LinearWeight* w : {&L.wq, &L.wk, &L.wv, &L.wo})
      if (want(*w)) todo.push_back(w);
    if (tiles)
      for (std::vector<LinearWeight>* ws : {&L.gate_up, &L.down})
        for (LinearWeight& w : *ws)
          if (want(w)) todo.push_back(&w);
  }
  if (want(cw.lm_head)) todo.push_back(&cw.lm_head);
  // buffers first, then the repacks in parallel
  for (LinearWeight* w : todo) {
    cw.repacked.emplace_back(static_cast<size_t>(w->n_out * w->n_in / 2));   // [n_in/2, n_out] codes, or tiles
    cw.repacked.emplace_back(static_cast<size_t>(w->n_out * w->n_in / 16));  // [n_in/16, n_out] e4m3, or tiles
    if (!cw.repacked[cw.repacked.size() - 2].ok() || !cw.repacked.back().ok())
      return error("prepare: out of memory for the repacked copy of '" + w->name + "' [" + std::to_string(w->n_out) + ", " +
                   std::to_string(w->n_in) + "]");
  }
  auto repack = [&](int64_t i) {
    const LinearWeight& w = *todo[static_cast<size_t>(i)];
    uint8_t* codes = cw.repacked[2 * static_cast<size_t>(i)].data();
    uint8_t* scales = cw.repacked[2 * static_cast<size_t>(i) + 1].data();
    if (tiles) {
      nvfp4_to_tiles(w, 0, w.n_out / 32, codes, scales);
    } else {
      transpose_u8(w.data, w.n_out, w.n_in / 2, codes);
      transpose_u8(w.scales, w.n_out, w.n_in / 16, scales);
    }
    // the checkpoint pages the copy replaces (an expert is a part of its layer's tensor); buffers m built stay
    m.store.release_bytes(w.data, static_cast<size_t>(w.n_out * w.n_in / 2));
    m.store.release_bytes(w.scales, static_cast<size_t>(w.n_out * w.n_in / 16));
  };
  // in rounds of a few matrices per thread, so that progress is reported from this thread (the 20b's 865 matrices
  // take seconds on the AVX-512 rung)
  const auto n_todo = static_cast<int64_t>(todo.size());
  const int64_t round = 8 * static_cast<int64_t>(pool.n_threads());
  for (int64_t r0 = 0; r0 < n_todo; r0 += round) {
    const int64_t r1 = std::min(n_todo, r0 + round);
    pool.run(r1 - r0, [&](int64_t i) { repack(r0 + i); });
    if (progress) progress(r1, n_todo);
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    LinearWeight& w = *todo[i];
    w.data = cw.repacked[2 * i].data();
    w.scales = cw.repacked[2 * i + 1].data();
    w.layout = tiles ? WeightLayout::kTiles32 : WeightLayout::kInMajor;
    cw.repacked_bytes += cw.repacked[2 * i].size() + cw.repacked[2 * i + 1].size();
  }
  // an lm_head quantized at load (the only user of owned) and then tiled no longer reads its first copy
  if (tiles && cw.lm_head.tiles32()) std::vector<std::vector<uint8_t>>().swap(cw.owned);
  return cw;
}

}  // namespace oss4
