#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/kernels_ref.h"

namespace oss4 {

void f32_rmsnorm_ref(const float* x, const float* w, int64_t n_tok, int64_t n, float eps, float* y) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xt = x + t * n;
    float ss = 0.0f;
    for (int64_t i = 0; i < n; ++i) ss += xt[i] * xt[i];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    float* yt = y + t * n;
    for (int64_t i = 0; i < n; ++i) yt[i] = w[i] * (xt[i] * r);
  }
}

void f32_rope_ref(float* x, const int64_t* pos, int64_t n_tok, int64_t n_heads, const RopeTable& rope) {
  const int64_t hd = rope.head_dim, half = hd / 2;
  std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));  // [half] f32
  for (int64_t t = 0; t < n_tok; ++t) {
    const float p = static_cast<float>(pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float theta = p * rope.inv_freq[i];
      c[i] = std::cos(theta) * rope.concentration;
      s[i] = std::sin(theta) * rope.concentration;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];
        v[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

void f32_sdpa_sink_ref(const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                       const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out) {
  const int64_t group = n_heads / n_kv_heads;
  std::vector<float> s;  // [n_keys] f32 scores of one query
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t p = pos[t];
    const int64_t lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    s.resize(static_cast<size_t>(p - lo + 1));
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      const float* qh = q + (t * n_heads + h) * head_dim;
      float m = sinks[h];
      for (int64_t j = lo; j <= p; ++j) {
        const float* kj = kv.k + (kv.slot(j) * n_kv_heads + kvh) * head_dim;
        float d = 0.0f;
        for (int64_t i = 0; i < head_dim; ++i) d += qh[i] * kj[i];
        s[j - lo] = d * scale;
        m = std::max(m, s[j - lo]);
      }
      float denom = std::exp(sinks[h] - m);
      for (auto& v : s) {
        v = std::exp(v - m);
        denom += v;
      }
      float* o = out + (t * n_heads + h) * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      for (int64_t j = lo; j <= p; ++j) {
        const float* vj = kv.v + (kv.slot(j) * n_kv_heads + kvh) * head_dim;
        const float pj = s[j - lo] / denom;
        for (int64_t i = 0; i < head_dim; ++i) o[i] += pj * vj[i];
      }
    }
  }
}

void f32_topk_softmax_ref(const float* logits, int64_t n, int64_t k, int32_t* idx, float* w) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  const float m = logits[order[0]];
  float sum = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    idx[i] = order[static_cast<size_t>(i)];
    w[i] = std::exp(logits[idx[i]] - m);
    sum += w[i];
  }
  for (int64_t i = 0; i < k; ++i) w[i] /= sum;
}

void f32_swiglu_ref(const float* gu, int64_t n_ff, float alpha, float limit, float* out) {
  for (int64_t j = 0; j < n_ff; ++j) {
    const float gate = std::min(gu[2 * j], limit);
    const float up = std::clamp(gu[2 * j + 1], -limit, limit);
    const float glu = gate / (1.0f + std::exp(-alpha * gate));
    out[j] = (up + 1.0f) * glu;
  }
}

}  // namespace oss4
