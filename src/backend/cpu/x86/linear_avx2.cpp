// AVX2 + FMA linear kernels: y = x W^T + bias for every weight layout of LinearWeight, as GEMV (a few tokens, weights
// decoded in registers and used at once) and as GEMM (many tokens: a tile of weights decoded once to f32 and shared by
// every token). Sums accumulate in f32 in a different order than the scalar reference; tests bound the difference by
// the usual rounding-error bound of a dot product (see tests/backend/kernel_checks.cpp).
// Compiled with -mavx2 -mfma -mf16c; no standard-library templates here (see kernels_avx2.h).
#include <immintrin.h>

#include "backend/cpu/x86/gemv_fp4_avx2.h"
#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/simd_avx2.h"

namespace oss4::avx2 {

namespace {

constexpr int64_t kRowTile = 16;     // rows decoded per row-major GEMM tile
constexpr int64_t kKBlock = 512;     // inputs per k block of the row-major GEMM
constexpr int64_t kInKBlock = 256;   // inputs per k block of the in-major GEMM (multiple of 16)
constexpr int64_t kGemmMinTok = 5;   // row-major: GEMM from this many tokens; fewer go through the GEMV

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

struct Nib {
  __m256 lut;   // [8] E2M1 magnitudes
  __m256i sign; // 0x80000000
};
inline Nib nib_consts() {
  return {_mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f), _mm256_set1_epi32(static_cast<int>(0x80000000u))};
}

// 8 bytes of E2M1 pairs -> lo [8] f32 (low nibbles) and hi [8] f32 (high nibbles). permutevar8x32 reads only the
// low 3 bits of each lane (the magnitude); the sign bit is moved to bit 31 and xor'ed in.
inline void decode8(const uint8_t* p, const Nib& n, __m256& lo, __m256& hi) {
  const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  lo = _mm256_xor_ps(_mm256_permutevar8x32_ps(n.lut, v), _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(v, 28), n.sign)));
  hi = _mm256_xor_ps(_mm256_permutevar8x32_ps(n.lut, _mm256_srli_epi32(v, 4)),
                     _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(v, 24), n.sign)));
}

inline __m256 bf16x8(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

inline float bf16_scalar(uint16_t h) {
  union {
    uint32_t u;
    float f;
  } c;
  c.u = static_cast<uint32_t>(h) << 16;
  return c.f;
}

// f32 factor of 8-byte group g (16 elements) of a row-major 4-bit row
inline float group_factor(const LinearArgs& a, const uint8_t* s, int64_t g) {
  return a.kind == WKind::kMxfp4 ? a.e8m0_lut[s[g >> 1]] : a.e4m3_lut[s[g]] * a.w.scale2;
}

inline const uint8_t* row_scales(const LinearArgs& a, int64_t o) {
  return a.w.scales + o * (a.kind == WKind::kMxfp4 ? a.w.n_in / 32 : a.w.n_in / 16);
}

// scalar value of weight (o, i), for tails
float weight_at(const LinearArgs& a, int64_t o, int64_t i) {
  static const float kLut[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  switch (a.kind) {
    case WKind::kF32: return reinterpret_cast<const float*>(a.w.data)[o * a.w.n_in + i];
    case WKind::kBF16: return bf16_scalar(reinterpret_cast<const uint16_t*>(a.w.data)[o * a.w.n_in + i]);
    case WKind::kBF16InMajor: return bf16_scalar(reinterpret_cast<const uint16_t*>(a.w.data)[i * a.w.n_out + o]);
    case WKind::kMxfp4:
    case WKind::kNvfp4: {
      const uint8_t b = a.w.data[o * (a.w.n_in / 2) + i / 2];
      return kLut[(i & 1) ? b >> 4 : b & 15] * group_factor(a, row_scales(a, o), i / 16);
    }
    case WKind::kNvfp4InMajor: {
      const uint8_t b = a.w.data[(i / 2) * a.w.n_out + o];
      return kLut[(i & 1) ? b >> 4 : b & 15] * (a.e4m3_lut[a.w.scales[(i / 16) * a.w.n_out + o]] * a.w.scale2);
    }
    case WKind::kNvfp4Tiles32: return 0.0f;  // never reaches the AVX2 kernels (kernels.cpp)
  }
  return 0.0f;
}

// outputs [o0, o1) computed one element at a time (tails of in-major ranges that are not a multiple of 16)
void linear_scalar(const LinearArgs& a, int64_t o0, int64_t o1) {
  for (int64_t t = 0; t < a.n_tok; ++t)
    for (int64_t o = o0; o < o1; ++o) {
      float acc = 0.0f;
      for (int64_t i = 0; i < a.w.n_in; ++i) acc += weight_at(a, o, i) * a.x[t * a.w.n_in + i];
      a.y[t * a.w.n_out + o] = acc + (a.bias ? a.bias[o] : 0.0f);
    }
}

// ---- row-major GEMV: T tokens, U independent groups per step to hide FMA latency ----

// x of T tokens with each 16-input group reordered to [8 even inputs, 8 odd inputs], matching decode8's lo/hi.
void permute_pairs(const float* x, int64_t n_in, int64_t n_tok, float* xp) {
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t g = 0; g < n_in / 16; ++g)
      for (int64_t j = 0; j < 8; ++j) {
        xp[t * n_in + g * 16 + j] = x[t * n_in + g * 16 + 2 * j];
        xp[t * n_in + g * 16 + 8 + j] = x[t * n_in + g * 16 + 2 * j + 1];
      }
}

template <int T>
void gemv_fp4_rows(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0, const float* xp) {
  constexpr int U = T == 1 ? 4 : T == 2 ? 2 : 1;
  const Nib n = nib_consts();
  const int64_t n_groups = a.w.n_in / 16;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* q = a.w.data + o * (a.w.n_in / 2);
    const uint8_t* s = row_scales(a, o);
    __m256 acc[U][T];
    for (int u = 0; u < U; ++u)
      for (int t = 0; t < T; ++t) acc[u][t] = _mm256_setzero_ps();
    int64_t g = 0;
    auto step = [&](int u, int64_t gg) {
      __m256 lo, hi;
      decode8(q + 8 * gg, n, lo, hi);
      const __m256 f = _mm256_set1_ps(group_factor(a, s, gg));
      lo = _mm256_mul_ps(lo, f);
      hi = _mm256_mul_ps(hi, f);
      for (int t = 0; t < T; ++t) {
        const float* xt = xp + t * a.w.n_in + 16 * gg;
        acc[u][t] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xt), acc[u][t]);
        acc[u][t] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xt + 8), acc[u][t]);
      }
    };
    for (; g + U <= n_groups; g += U)
      for (int u = 0; u < U; ++u) step(u, g + u);
    for (; g < n_groups; ++g) step(0, g);
    for (int t = 0; t < T; ++t) {
      __m256 sum = acc[0][t];
      for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[u][t]);
      a.y[(t0 + t) * a.w.n_out + o] = hsum(sum) + (a.bias ? a.bias[o] : 0.0f);
    }
  }
}

template <int T>
void gemv_dense_rows(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0) {
  constexpr int U = T == 1 ? 4 : T == 2 ? 2 : 1;
  const bool bf16 = a.kind == WKind::kBF16;
  const int64_t n_in = a.w.n_in;
  for (int64_t o = o0; o < o1; ++o) {
    const uint16_t* wb = reinterpret_cast<const uint16_t*>(a.w.data) + o * n_in;
    const float* wf = reinterpret_cast<const float*>(a.w.data) + o * n_in;
    __m256 acc[U][T];
    for (int u = 0; u < U; ++u)
      for (int t = 0; t < T; ++t) acc[u][t] = _mm256_setzero_ps();
    auto step = [&](int u, int64_t i) {
      const __m256 w = bf16 ? bf16x8(wb + i) : _mm256_loadu_ps(wf + i);
      for (int t = 0; t < T; ++t) acc[u][t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(a.x + (t0 + t) * n_in + i), acc[u][t]);
    };
    int64_t i = 0;
    for (; i + 8 * U <= n_in; i += 8 * U)
      for (int u = 0; u < U; ++u) step(u, i + 8 * u);
    for (; i + 8 <= n_in; i += 8) step(0, i);
    for (int t = 0; t < T; ++t) {
      __m256 sum = acc[0][t];
      for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[u][t]);
      float r = hsum(sum);
      for (int64_t k = i; k < n_in; ++k) r += (bf16 ? bf16_scalar(wb[k]) : wf[k]) * a.x[(t0 + t) * n_in + k];
      a.y[(t0 + t) * a.w.n_out + o] = r + (a.bias ? a.bias[o] : 0.0f);
    }
  }
}

template <int T>
void gemv_rows_t(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0, float* scratch) {
  if (a.kind == WKind::kBF16 || a.kind == WKind::kF32) {
    gemv_dense_rows<T>(a, o0, o1, t0);
    return;
  }
  permute_pairs(a.x + t0 * a.w.n_in, a.w.n_in, T, scratch);
  gemv_fp4_rows<T>(a, o0, o1, t0, scratch);
}

void gemv_rows(const LinearArgs& a, int64_t o0, int64_t o1, float* scratch) {
  int64_t t = 0;
  for (; t + 4 <= a.n_tok; t += 4) gemv_rows_t<4>(a, o0, o1, t, scratch);
  switch (a.n_tok - t) {
    case 3: gemv_rows_t<3>(a, o0, o1, t, scratch); break;
    case 2: gemv_rows_t<2>(a, o0, o1, t, scratch); break;
    case 1: gemv_rows_t<1>(a, o0, o1, t, scratch); break;
    default: break;
  }
}

// ---- row-major GEMM: rows decoded once to f32, then R x T dot-product tiles over k blocks ----

// row o decoded to f32 in natural input order: out [n_in]
void decode_row(const LinearArgs& a, int64_t o, float* out) {
  const int64_t n_in = a.w.n_in;
  if (a.kind == WKind::kF32) {
    const float* w = reinterpret_cast<const float*>(a.w.data) + o * n_in;
    for (int64_t i = 0; i < n_in; ++i) out[i] = w[i];
    return;
  }
  if (a.kind == WKind::kBF16) {
    const uint16_t* w = reinterpret_cast<const uint16_t*>(a.w.data) + o * n_in;
    int64_t i = 0;
    for (; i + 8 <= n_in; i += 8) _mm256_storeu_ps(out + i, bf16x8(w + i));
    for (; i < n_in; ++i) out[i] = bf16_scalar(w[i]);
    return;
  }
  const Nib n = nib_consts();
  const uint8_t* q = a.w.data + o * (n_in / 2);
  const uint8_t* s = row_scales(a, o);
  for (int64_t g = 0; g < n_in / 16; ++g) {
    __m256 lo, hi;
    decode8(q + 8 * g, n, lo, hi);
    const __m256 f = _mm256_set1_ps(group_factor(a, s, g));
    lo = _mm256_mul_ps(lo, f);
    hi = _mm256_mul_ps(hi, f);
    const __m256 ab = _mm256_unpacklo_ps(lo, hi);  // [0 1 2 3 | 8 9 10 11]
    const __m256 cd = _mm256_unpackhi_ps(lo, hi);  // [4 5 6 7 | 12 13 14 15]
    _mm256_storeu_ps(out + 16 * g, _mm256_permute2f128_ps(ab, cd, 0x20));
    _mm256_storeu_ps(out + 16 * g + 8, _mm256_permute2f128_ps(ab, cd, 0x31));
  }
}

// y[t, r] += sum_{k in [k0, k1)} w[r, k] x[t, k] for R rows and T tokens.
template <int R, int T>
void dot_tile(const float* w, int64_t ldw, const float* x, int64_t ldx, int64_t k0, int64_t k1, float* y, int64_t ldy) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t k = k0;
  for (; k + 8 <= k1; k += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + k);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * ldw + k);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t kk = k; kk < k1; ++kk) s += w[r * ldw + kk] * x[t * ldx + kk];
      y[t * ldy + r] += s;
    }
}

using DotTileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);

template <int R>
DotTileFn dot_tile_for_t(int64_t t) {
  switch (t) {
    case 1: return dot_tile<R, 1>;
    case 2: return dot_tile<R, 2>;
    default: return dot_tile<R, 3>;
  }
}

DotTileFn dot_tile_for(int64_t r, int64_t t) {
  switch (r) {
    case 1: return dot_tile_for_t<1>(t);
    case 2: return dot_tile_for_t<2>(t);
    case 3: return dot_tile_for_t<3>(t);
    default: return dot_tile_for_t<4>(t);
  }
}

void init_outputs(const LinearArgs& a, int64_t o0, int64_t o1) {
  for (int64_t t = 0; t < a.n_tok; ++t)
    for (int64_t o = o0; o < o1; ++o) a.y[t * a.w.n_out + o] = a.bias ? a.bias[o] : 0.0f;
}

void gemm_rows(const LinearArgs& a, int64_t o0, int64_t o1, float* scratch) {
  const int64_t n_in = a.w.n_in, ldw = (n_in + 7) / 8 * 8;
  init_outputs(a, o0, o1);
  for (int64_t r0 = o0; r0 < o1; r0 += kRowTile) {
    const int64_t nr = min64(kRowTile, o1 - r0);
    for (int64_t r = 0; r < nr; ++r) decode_row(a, r0 + r, scratch + r * ldw);  // [nr, ldw] f32
    for (int64_t k0 = 0; k0 < n_in; k0 += kKBlock) {
      const int64_t k1 = min64(n_in, k0 + kKBlock);
      for (int64_t t0 = 0; t0 < a.n_tok; t0 += 3) {
        const int64_t nt = min64(3, a.n_tok - t0);
        for (int64_t r = 0; r < nr; r += 4) {
          const int64_t rr = min64(4, nr - r);
          dot_tile_for(rr, nt)(scratch + r * ldw, ldw, a.x + t0 * n_in, n_in, k0, k1, a.y + t0 * a.w.n_out + r0 + r, a.w.n_out);
        }
      }
    }
  }
}

// ---- in-major weights ([n_in, n_out]): vectors run along outputs, 16 at a time ----

// factors of input block b for outputs o..o+7 of an in-major NVFP4 weight: e4m3(s) * scale2 for 8 scale bytes.
inline __m256 in_major_factors(const LinearArgs& a, int64_t b, int64_t o) {
  return e4m3_times(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.w.scales + b * a.w.n_out + o))),
                    _mm256_set1_ps(a.w.scale2));
}

// in-major GEMV. The loops run over input blocks outside and output tiles inside, so that each pass reads 8 (NVFP4)
// or 8 (BF16) consecutive weight rows front to back: a handful of sequential streams instead of one 16-output column
// strided by n_out, which thrashes the TLB. Partial sums live in y (L1-resident for one call's range).
template <int T>
void gemv_in_major_t(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0) {
  const Nib n = nib_consts();
  const int64_t n_in = a.w.n_in, n_out = a.w.n_out;
  const float* x = a.x + t0 * n_in;
  for (int t = 0; t < T; ++t)
    for (int64_t o = o0; o < o1; ++o) a.y[(t0 + t) * n_out + o] = 0.0f;
  if (a.kind == WKind::kNvfp4InMajor) {
    for (int64_t b = 0; b < n_in / 16; ++b) {
      for (int64_t o = o0; o < o1; o += 16) {
        __m256 blk[T][2][2];  // [token][output half][low/high nibble chain]
        for (int t = 0; t < T; ++t) blk[t][0][0] = blk[t][0][1] = blk[t][1][0] = blk[t][1][1] = _mm256_setzero_ps();
        for (int64_t j = 0; j < 8; ++j) {
          const uint8_t* row = a.w.data + (b * 8 + j) * n_out + o;
          __m256 lo0, hi0, lo1, hi1;
          decode8(row, n, lo0, hi0);
          decode8(row + 8, n, lo1, hi1);
          for (int t = 0; t < T; ++t) {
            const __m256 x0 = _mm256_broadcast_ss(x + t * n_in + b * 16 + 2 * j);
            const __m256 x1 = _mm256_broadcast_ss(x + t * n_in + b * 16 + 2 * j + 1);
            blk[t][0][0] = _mm256_fmadd_ps(lo0, x0, blk[t][0][0]);
            blk[t][0][1] = _mm256_fmadd_ps(hi0, x1, blk[t][0][1]);
            blk[t][1][0] = _mm256_fmadd_ps(lo1, x0, blk[t][1][0]);
            blk[t][1][1] = _mm256_fmadd_ps(hi1, x1, blk[t][1][1]);
          }
        }
        const __m256 f0 = in_major_factors(a, b, o), f1 = in_major_factors(a, b, o + 8);
        for (int t = 0; t < T; ++t) {
          float* yt = a.y + (t0 + t) * n_out + o;
          _mm256_storeu_ps(yt, _mm256_fmadd_ps(_mm256_add_ps(blk[t][0][0], blk[t][0][1]), f0, _mm256_loadu_ps(yt)));
          _mm256_storeu_ps(yt + 8, _mm256_fmadd_ps(_mm256_add_ps(blk[t][1][0], blk[t][1][1]), f1, _mm256_loadu_ps(yt + 8)));
        }
      }
    }
  } else {  // bf16
    const uint16_t* w = reinterpret_cast<const uint16_t*>(a.w.data);
    for (int64_t k0 = 0; k0 < n_in; k0 += 8) {
      const int64_t k1 = min64(n_in, k0 + 8);
      for (int64_t o = o0; o < o1; o += 16) {
        __m256 acc[T][2][2];  // [token][output half][even/odd k chain]
        for (int t = 0; t < T; ++t) acc[t][0][0] = acc[t][0][1] = acc[t][1][0] = acc[t][1][1] = _mm256_setzero_ps();
        for (int64_t k = k0; k < k1; ++k) {
          const int c = static_cast<int>(k & 1);
          const __m256 w0 = bf16x8(w + k * n_out + o), w1 = bf16x8(w + k * n_out + o + 8);
          for (int t = 0; t < T; ++t) {
            const __m256 xb = _mm256_broadcast_ss(x + t * n_in + k);
            acc[t][0][c] = _mm256_fmadd_ps(w0, xb, acc[t][0][c]);
            acc[t][1][c] = _mm256_fmadd_ps(w1, xb, acc[t][1][c]);
          }
        }
        for (int t = 0; t < T; ++t) {
          float* yt = a.y + (t0 + t) * n_out + o;
          _mm256_storeu_ps(yt, _mm256_add_ps(_mm256_loadu_ps(yt), _mm256_add_ps(acc[t][0][0], acc[t][0][1])));
          _mm256_storeu_ps(yt + 8, _mm256_add_ps(_mm256_loadu_ps(yt + 8), _mm256_add_ps(acc[t][1][0], acc[t][1][1])));
        }
      }
    }
  }
  if (a.bias)
    for (int t = 0; t < T; ++t)
      for (int64_t o = o0; o < o1; ++o) a.y[(t0 + t) * n_out + o] += a.bias[o];
}

// inputs [k0, k1) of outputs o..o+15 decoded to f32: out [k1 - k0, 16]
void decode_in_major_tile(const LinearArgs& a, int64_t o, int64_t k0, int64_t k1, float* out) {
  const int64_t n_out = a.w.n_out;
  if (a.kind == WKind::kBF16InMajor) {
    const uint16_t* w = reinterpret_cast<const uint16_t*>(a.w.data);
    for (int64_t k = k0; k < k1; ++k) {
      _mm256_storeu_ps(out + (k - k0) * 16, bf16x8(w + k * n_out + o));
      _mm256_storeu_ps(out + (k - k0) * 16 + 8, bf16x8(w + k * n_out + o + 8));
    }
    return;
  }
  const Nib n = nib_consts();
  for (int64_t b = k0 / 16; b < k1 / 16; ++b) {
    const __m256 f0 = in_major_factors(a, b, o), f1 = in_major_factors(a, b, o + 8);
    for (int64_t j = 0; j < 8; ++j) {
      const uint8_t* row = a.w.data + (b * 8 + j) * n_out + o;
      __m256 lo0, hi0, lo1, hi1;
      decode8(row, n, lo0, hi0);
      decode8(row + 8, n, lo1, hi1);
      float* d = out + (b * 16 + 2 * j - k0) * 16;
      _mm256_storeu_ps(d, _mm256_mul_ps(lo0, f0));
      _mm256_storeu_ps(d + 8, _mm256_mul_ps(lo1, f1));
      _mm256_storeu_ps(d + 16, _mm256_mul_ps(hi0, f0));
      _mm256_storeu_ps(d + 24, _mm256_mul_ps(hi1, f1));
    }
  }
}

// y[t, 0..16) += sum_k w[k, 0..16) x[t, k] for T tokens: w [kn, 16]
template <int T>
void outer_tile(const float* w, int64_t kn, const float* x, int64_t ldx, float* y, int64_t ldy) {
  __m256 acc[T][2];
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kn; ++k) {
    const __m256 w0 = _mm256_loadu_ps(w + k * 16), w1 = _mm256_loadu_ps(w + k * 16 + 8);
    for (int t = 0; t < T; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + t * ldx + k);
      acc[t][0] = _mm256_fmadd_ps(w0, xb, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(w1, xb, acc[t][1]);
    }
  }
  for (int t = 0; t < T; ++t) {
    _mm256_storeu_ps(y + t * ldy, _mm256_add_ps(_mm256_loadu_ps(y + t * ldy), acc[t][0]));
    _mm256_storeu_ps(y + t * ldy + 8, _mm256_add_ps(_mm256_loadu_ps(y + t * ldy + 8), acc[t][1]));
  }
}

// the 6-token case written out: GCC keeps the accumulator array of the template in memory (a store per k)
void outer_tile6(const float* w, int64_t kn, const float* x, int64_t ldx, float* y, int64_t ldy) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx, *x4 = x + 4 * ldx, *x5 = x + 5 * ldx;
  for (int64_t k = 0; k < kn; ++k) {
    const __m256 w0 = _mm256_load_ps(w + k * 16), w1 = _mm256_load_ps(w + k * 16 + 8);
    __m256 b = _mm256_broadcast_ss(x0 + k);
    c00 = _mm256_fmadd_ps(w0, b, c00);
    c01 = _mm256_fmadd_ps(w1, b, c01);
    b = _mm256_broadcast_ss(x1 + k);
    c10 = _mm256_fmadd_ps(w0, b, c10);
    c11 = _mm256_fmadd_ps(w1, b, c11);
    b = _mm256_broadcast_ss(x2 + k);
    c20 = _mm256_fmadd_ps(w0, b, c20);
    c21 = _mm256_fmadd_ps(w1, b, c21);
    b = _mm256_broadcast_ss(x3 + k);
    c30 = _mm256_fmadd_ps(w0, b, c30);
    c31 = _mm256_fmadd_ps(w1, b, c31);
    b = _mm256_broadcast_ss(x4 + k);
    c40 = _mm256_fmadd_ps(w0, b, c40);
    c41 = _mm256_fmadd_ps(w1, b, c41);
    b = _mm256_broadcast_ss(x5 + k);
    c50 = _mm256_fmadd_ps(w0, b, c50);
    c51 = _mm256_fmadd_ps(w1, b, c51);
  }
  const __m256 c[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int t = 0; t < 6; ++t) {
    _mm256_storeu_ps(y + t * ldy, _mm256_add_ps(_mm256_loadu_ps(y + t * ldy), c[t][0]));
    _mm256_storeu_ps(y + t * ldy + 8, _mm256_add_ps(_mm256_loadu_ps(y + t * ldy + 8), c[t][1]));
  }
}

using OuterTileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t);

OuterTileFn outer_tile_for(int64_t t) {
  switch (t) {
    case 1: return outer_tile<1>;
    case 2: return outer_tile<2>;
    case 3: return outer_tile<3>;
    case 4: return outer_tile<4>;
    case 5: return outer_tile<5>;
    default: return outer_tile6;
  }
}

// in-major NVFP4 with o1 - o0 a multiple of 32: two 16-column panels per 32 outputs from the lane-order decoder.
// k blocks outside, outputs inside: each pass reads the k block's rows front to back (a few dozen sequential
// streams), where outputs outside would read 32 bytes from each of n_in / 2 rows n_out bytes apart.
void gemm_in_major_fp4(const LinearArgs& a, int64_t o0, int64_t o1, float* scratch) {
  for (int64_t t = 0; t < a.n_tok; ++t)
    for (int64_t o = o0; o < o1; ++o) a.y[t * a.w.n_out + o] = 0.0f;
  float* pa = scratch;                    // [kInKBlock, 16]
  float* pb = scratch + kInKBlock * 16;  // [kInKBlock, 16]
  for (int64_t k0 = 0; k0 < a.w.n_in; k0 += kInKBlock) {
    const int64_t k1 = min64(a.w.n_in, k0 + kInKBlock);
    for (int64_t o = o0; o < o1; o += 32) {
      fp4_in_major_panels(a, o, k0, k1, pa, pb);
      for (int64_t t0 = 0; t0 < a.n_tok; t0 += 6) {
        const int64_t nt = min64(6, a.n_tok - t0);
        float* y = a.y + t0 * a.w.n_out + o;
        outer_tile_for(nt)(pa, k1 - k0, a.x + t0 * a.w.n_in + k0, a.w.n_in, y, a.w.n_out);
        outer_tile_for(nt)(pb, k1 - k0, a.x + t0 * a.w.n_in + k0, a.w.n_in, y + 16, a.w.n_out);
      }
    }
  }
  for (int64_t o = o0; o < o1; o += 32)
    for (int64_t t = 0; t < a.n_tok; ++t) fp4_unpermute32(a.y + t * a.w.n_out + o, a.bias ? a.bias + o : nullptr);
}

void gemm_in_major(const LinearArgs& a, int64_t o0, int64_t o1, float* scratch) {
  if (fp4_gemv_takes(a) && (o1 - o0) % 32 == 0) {
    gemm_in_major_fp4(a, o0, o1, scratch);
    return;
  }
  init_outputs(a, o0, o1);
  for (int64_t o = o0; o < o1; o += 16) {
    for (int64_t k0 = 0; k0 < a.w.n_in; k0 += kInKBlock) {
      const int64_t k1 = min64(a.w.n_in, k0 + kInKBlock);
      decode_in_major_tile(a, o, k0, k1, scratch);  // [k1 - k0, 16] f32
      for (int64_t t0 = 0; t0 < a.n_tok; t0 += 6) {
        const int64_t nt = min64(6, a.n_tok - t0);
        outer_tile_for(nt)(scratch, k1 - k0, a.x + t0 * a.w.n_in + k0, a.w.n_in, a.y + t0 * a.w.n_out + o, a.w.n_out);
      }
    }
  }
}

}  // namespace

int64_t linear_scratch_floats(int64_t n_in, int64_t n_out) {
  return kRowTile * ((n_in + 7) / 8 * 8) + 4 * n_in + kInKBlock * 32 + 2 * n_out;
}

void f32_linear_range(const LinearArgs& a, int64_t o0, int64_t o1, float* scratch) {
  if (o1 <= o0) return;
  if (a.kind == WKind::kBF16InMajor || a.kind == WKind::kNvfp4InMajor) {
    const int64_t ov = o0 + (o1 - o0) / 16 * 16;  // vector part [o0, ov), scalar tail [ov, o1)
    if (a.n_tok >= kInMajorGemmMinTok) {
      gemm_in_major(a, o0, ov, scratch);
    } else if (fp4_gemv_takes(a)) {
      const int64_t o32 = o0 + (o1 - o0) / 32 * 32;  // 32-wide part [o0, o32); 16-wide part [o32, ov)
      fp4_gemv_in_major(a, o0, o32, scratch);
      for (int64_t t = 0; t < a.n_tok; ++t) gemv_in_major_t<1>(a, o32, ov, t);
    } else {
      int64_t t = 0;
      for (; t + 2 <= a.n_tok; t += 2) gemv_in_major_t<2>(a, o0, ov, t);
      if (t < a.n_tok) gemv_in_major_t<1>(a, o0, ov, t);
    }
    linear_scalar(a, ov, o1);
    return;
  }
  if (a.n_tok >= kGemmMinTok) {
    gemm_rows(a, o0, o1, scratch);
  } else if (fp4_gemv_takes(a)) {
    fp4_permute_x(a.x, a.w.n_in, a.n_tok, scratch);  // [n_tok, n_in]
    fp4_gemv_rows(a, o0, o1, 0, a.n_tok, scratch);
  } else {
    gemv_rows(a, o0, o1, scratch);
  }
}

}  // namespace oss4::avx2
