#include "runtime/kv_cache.h"

#include <algorithm>

namespace oss4 {

Result<KvCache> KvCache::create(const ModelConfig& cfg, int64_t max_ctx, int64_t max_chunk) {
  if (max_ctx < 1) return error("context size must be at least 1, got " + std::to_string(max_ctx));
  if (max_chunk < 1) return error("chunk size must be at least 1, got " + std::to_string(max_chunk));
  KvCache c;
  c.row_ = cfg.kv_dim();
  c.max_ctx_ = max_ctx;
  c.max_chunk_ = max_chunk;
  c.layers_.resize(static_cast<size_t>(cfg.n_layers));
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    Layer& L = c.layers_[static_cast<size_t>(l)];
    if (cfg.layer_types[static_cast<size_t>(l)] == LayerKind::kSliding && cfg.sliding_window + max_chunk - 1 < max_ctx) {
      L.ring = true;
      L.capacity = cfg.sliding_window + max_chunk - 1;
      L.k.resize(static_cast<size_t>(L.capacity * c.row_));
      L.v.resize(static_cast<size_t>(L.capacity * c.row_));
    }
  }
  return c;
}

Status KvCache::reserve(int64_t n_new) {
  const int64_t need = n_pos_ + n_new;
  if (need > max_ctx_) {
    return error("context overflow: " + std::to_string(n_pos_) + " cached + " + std::to_string(n_new) + " new tokens exceed the context size " +
                 std::to_string(max_ctx_));
  }
  if (n_new > max_chunk_) return error("chunk of " + std::to_string(n_new) + " tokens exceeds max_chunk " + std::to_string(max_chunk_));
  for (auto& L : layers_) {
    if (L.ring || L.capacity >= need) continue;
    int64_t cap = std::min(max_ctx_, std::max<int64_t>(need, std::max<int64_t>(256, L.capacity * 2)));
    L.k.resize(static_cast<size_t>(cap * row_));
    L.v.resize(static_cast<size_t>(cap * row_));
    L.capacity = cap;
  }
  return ok_status();
}

float* KvCache::k_row(int64_t layer, int64_t pos) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  return L.k.data() + (L.ring ? pos % L.capacity : pos) * row_;
}

float* KvCache::v_row(int64_t layer, int64_t pos) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  return L.v.data() + (L.ring ? pos % L.capacity : pos) * row_;
}

KvLayerView KvCache::view(int64_t layer) const {
  const Layer& L = layers_[static_cast<size_t>(layer)];
  return KvLayerView{L.k.data(), L.v.data(), L.capacity, L.ring};
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (const auto& L : layers_) n += (L.k.size() + L.v.size()) * sizeof(float);
  return n;
}

}  // namespace oss4
