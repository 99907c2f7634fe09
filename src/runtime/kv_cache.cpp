#include "runtime/kv_cache.h"

#include <algorithm>

namespace oss4 {

Status KvCache::reserve(int64_t n_new) {
  const int64_t need = n_pos_ + n_new;
  if (need > max_ctx_) {
    return error("context overflow: " + std::to_string(n_pos_) + " cached + " + std::to_string(n_new) + " new tokens exceed the context size " +
                 std::to_string(max_ctx_));
  }
  if (n_new > max_chunk_) return error("chunk of " + std::to_string(n_new) + " tokens exceeds max_chunk " + std::to_string(max_chunk_));
  return grow(need);
}

Status KvCache::truncate(int64_t n) {
  if (n < 0 || n > n_pos_) return error("cannot truncate a KV cache of " + std::to_string(n_pos_) + " positions to " + std::to_string(n));
  // a ring of window + max_chunk - 1 slots holds positions n_pos - capacity .. n_pos - 1; the next query (at n)
  // reads back to n - window + 1, which is still there when n_pos - n <= max_chunk - 1.
  if (has_ring() && n_pos_ - n > max_chunk_ - 1) {
    return error("cannot roll a sliding-window ring back by " + std::to_string(n_pos_ - n) + " positions (at most " +
                 std::to_string(max_chunk_ - 1) + ")");
  }
  n_pos_ = n;
  return ok_status();
}

Status KvCache::set_max_ctx(int64_t max_ctx) {
  if (max_ctx < n_pos_ || max_ctx < 1) return error("context size " + std::to_string(max_ctx) + " is below the " + std::to_string(n_pos_) + " cached positions");
  if (has_ring()) return error("cannot change the context size of a KV cache with sliding-window rings");
  max_ctx_ = max_ctx;
  return ok_status();
}

Result<std::unique_ptr<HostKvCache>> HostKvCache::create(const ModelConfig& cfg, int64_t max_ctx, int64_t max_chunk, bool sliding_ring) {
  if (max_ctx < 1) return error("context size must be at least 1, got " + std::to_string(max_ctx));
  if (max_chunk < 1) return error("chunk size must be at least 1, got " + std::to_string(max_chunk));
  std::unique_ptr<HostKvCache> c(new HostKvCache(max_ctx, max_chunk));
  c->row_ = cfg.kv_dim();
  c->layers_.resize(static_cast<size_t>(cfg.n_layers));
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    Layer& L = c->layers_[static_cast<size_t>(l)];
    if (sliding_ring && cfg.layer_types[static_cast<size_t>(l)] == LayerKind::kSliding && cfg.sliding_window + max_chunk - 1 < max_ctx) {
      L.ring = true;
      L.capacity = cfg.sliding_window + max_chunk - 1;
      L.k.resize(static_cast<size_t>(L.capacity * c->row_));
      L.v.resize(static_cast<size_t>(L.capacity * c->row_));
    }
  }
  return c;
}

int64_t HostKvCache::bytes_per_position(const ModelConfig& cfg) {
  return 2 * cfg.n_layers * cfg.kv_dim() * static_cast<int64_t>(sizeof(float));
}

Status HostKvCache::grow(int64_t need) {
  for (auto& L : layers_) {
    if (L.ring || L.capacity >= need) continue;
    int64_t cap = std::min(max_ctx_, std::max<int64_t>(need, std::max<int64_t>(256, L.capacity * 2)));
    L.k.resize(static_cast<size_t>(cap * row_));
    L.v.resize(static_cast<size_t>(cap * row_));
    L.capacity = cap;
  }
  return ok_status();
}

float* HostKvCache::k_row(int64_t layer, int64_t pos) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  return L.k.data() + (L.ring ? pos % L.capacity : pos) * row_;
}

float* HostKvCache::v_row(int64_t layer, int64_t pos) {
  Layer& L = layers_[static_cast<size_t>(layer)];
  return L.v.data() + (L.ring ? pos % L.capacity : pos) * row_;
}

KvLayerView HostKvCache::view(int64_t layer) const {
  const Layer& L = layers_[static_cast<size_t>(layer)];
  return KvLayerView{L.k.data(), L.v.data(), L.capacity, L.ring};
}

bool HostKvCache::has_ring() const {
  for (const auto& L : layers_) {
    if (L.ring) return true;
  }
  return false;
}

size_t HostKvCache::bytes() const {
  size_t n = 0;
  for (const auto& L : layers_) n += (L.k.size() + L.v.size()) * sizeof(float);
  return n;
}

std::unique_ptr<KvCache> HostKvCache::clone() const {
  std::unique_ptr<HostKvCache> c(new HostKvCache(max_ctx_, max_chunk_));
  c->n_pos_ = n_pos_;
  c->layers_ = layers_;
  c->row_ = row_;
  return c;
}

}  // namespace oss4
