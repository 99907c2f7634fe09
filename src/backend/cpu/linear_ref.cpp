#include <vector>

#include "backend/cpu/kernels_ref.h"
#include "backend/cpu/nvfp4_ref.h"
#include "numeric/float_formats.h"
#include "numeric/mxfp4.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {

namespace {
void add_bias(const float* bias, int64_t n, float* y) {
  if (bias == nullptr) return;
  for (int64_t o = 0; o < n; ++o) y[o] += bias[o];
}

template <class RowFn>
void matmul_rows(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y, RowFn&& decode_row) {
  std::vector<float> row(static_cast<size_t>(w.n_in));  // [n_in] f32, one decoded weight row
  for (int64_t o = 0; o < w.n_out; ++o) {
    decode_row(o, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * w.n_in;
      float acc = 0.0f;
      for (int64_t i = 0; i < w.n_in; ++i) acc += row[i] * xt[i];
      y[t * w.n_out + o] = acc + (bias ? bias[o] : 0.0f);
    }
  }
}

// input-major weight [n_in, n_out]: y[o] = sum_i x[i] w[i, o].
template <class ElemFn>
void matmul_in_major(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y, ElemFn&& elem) {
  for (int64_t t = 0; t < n_tok; ++t) {
    float* yt = y + t * w.n_out;
    const float* xt = x + t * w.n_in;
    for (int64_t o = 0; o < w.n_out; ++o) yt[o] = 0.0f;
    for (int64_t i = 0; i < w.n_in; ++i) {
      const float xi = xt[i];
      const int64_t base = i * w.n_out;
      for (int64_t o = 0; o < w.n_out; ++o) yt[o] += xi * elem(base + o);
    }
    add_bias(bias, w.n_out, yt);
  }
}
}  // namespace

void f32_f32w_matmul_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  const auto* d = reinterpret_cast<const float*>(w.data);
  if (w.in_major()) {
    matmul_in_major(w, x, n_tok, bias, y, [d](int64_t k) { return d[k]; });
    return;
  }
  matmul_rows(w, x, n_tok, bias, y, [&](int64_t o, float* row) {
    for (int64_t i = 0; i < w.n_in; ++i) row[i] = d[o * w.n_in + i];
  });
}

void f32_bf16w_matmul_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  const auto* d = reinterpret_cast<const uint16_t*>(w.data);
  if (w.in_major()) {
    matmul_in_major(w, x, n_tok, bias, y, [d](int64_t k) { return bf16_to_f32(d[k]); });
    return;
  }
  matmul_rows(w, x, n_tok, bias, y, [&](int64_t o, float* row) {
    for (int64_t i = 0; i < w.n_in; ++i) row[i] = bf16_to_f32(d[o * w.n_in + i]);
  });
}

void f32_mxfp4w_matmul_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  const int64_t n_groups = w.n_in / 32;
  matmul_rows(w, x, n_tok, bias, y, [&](int64_t o, float* row) {
    mxfp4_decode_row_ref(w.data + o * n_groups * 16, w.scales + o * n_groups, w.n_in, row);
  });
}

void f32_nvfp4w_linear_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  if (w.tiles32()) {
    // the AVX-512 rung's tiles: rows decoded as nvfp4_decode_row_ref does (one rounded factor per block)
    matmul_rows(w, x, n_tok, bias, y, [&](int64_t o, float* row) {
      for (int64_t b = 0; b < w.n_in / 16; ++b) {
        const float f = e4m3_to_f32(nvfp4_scale_at(w, o, b)) * w.scale2;
        for (int64_t i = 16 * b; i < 16 * b + 16; ++i) row[i] = kE2m1Lut[nvfp4_code_at(w, o, i)] * f;
      }
    });
    return;
  }
  if (!w.in_major()) {
    f32_nvfp4w_matmul_ref(w.data, w.scales, w.scale2, w.n_out, w.n_in, x, n_tok, bias, y);
    return;
  }
  // ModelOpt's exported expert layout: byte [j, o] holds inputs 2j (low) and 2j+1 (high) of output o; the block
  // factor f32(e4m3(s) * scale2) is rounded once per block, as nvfp4_decode_row_ref does.
  std::vector<float> factor(static_cast<size_t>(w.n_out));  // [n_out] block factors of one input block
  for (int64_t t = 0; t < n_tok; ++t) {
    float* yt = y + t * w.n_out;
    const float* xt = x + t * w.n_in;
    for (int64_t o = 0; o < w.n_out; ++o) yt[o] = 0.0f;
    for (int64_t b = 0; b < w.n_in / 16; ++b) {
      for (int64_t o = 0; o < w.n_out; ++o) factor[o] = e4m3_to_f32(w.scales[b * w.n_out + o]) * w.scale2;
      for (int64_t j = b * 8; j < b * 8 + 8; ++j) {
        const uint8_t* row = w.data + j * w.n_out;
        const float x0 = xt[2 * j], x1 = xt[2 * j + 1];
        for (int64_t o = 0; o < w.n_out; ++o)
          yt[o] += (x0 * kE2m1Lut[row[o] & 15] + x1 * kE2m1Lut[row[o] >> 4]) * factor[o];
      }
    }
    add_bias(bias, w.n_out, yt);
  }
}

void f32_linear_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  switch (w.type) {
    case WeightType::kF32: f32_f32w_matmul_ref(w, x, n_tok, bias, y); return;
    case WeightType::kBF16: f32_bf16w_matmul_ref(w, x, n_tok, bias, y); return;
    case WeightType::kMxfp4: f32_mxfp4w_matmul_ref(w, x, n_tok, bias, y); return;
    case WeightType::kNvfp4: f32_nvfp4w_linear_ref(w, x, n_tok, bias, y); return;
  }
}

void f32_embed_rows_ref(const LinearWeight& table, const int32_t* ids, int64_t n_tok, float* out) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t r = ids[t];
    float* o = out + t * table.n_in;
    if (table.type == WeightType::kBF16) {
      const auto* d = reinterpret_cast<const uint16_t*>(table.data) + r * table.n_in;
      for (int64_t i = 0; i < table.n_in; ++i) o[i] = bf16_to_f32(d[i]);
    } else {
      const auto* d = reinterpret_cast<const float*>(table.data) + r * table.n_in;
      for (int64_t i = 0; i < table.n_in; ++i) o[i] = d[i];
    }
  }
}

}  // namespace oss4
