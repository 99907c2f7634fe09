// AVX-512 linear kernels of NVFP4 weights in 32-output tiles (numeric/nvfp4_tiles.h). A thread owns whole output groups
// and reads each group's tiles front to back, one stream; sums stay in registers across a group's input blocks, so no
// partial sums cross threads and results do not depend on the thread count.
//
// 8-bit activations (any token count). vpermb looks up twice the E2M1 value plus 12 (0..24, unsigned) of the low
// nibble of each byte straight from the code (it reads 6 index bits; the table repeats every 16), the high nibble after
// one 16-bit shift; vpdpbusd multiplies those by 4 consecutive activations (signed bytes, one broadcast dword) and adds
// the 4 products to 16 int32 lanes, one output each. The +12 adds 12 sum(q) per block, which the accumulator starts
// without (Q8Act::nsum12). A block's integer sum is exact; it is scaled in f32 as the reference does.
//
// f32 activations (decode, 1-2 tokens). Each dword holds 8 codes of one output; vpermps reads the low 4 bits of its
// index, so 8 shifts by 4 and 8 lookups give the 8 inputs' values of 16 outputs; FMAs against broadcast activations.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512vbmi; no standard-library templates.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "backend/cpu/x86/tiles_avx512.h"

namespace oss4::avx512 {

namespace {

// twice the E2M1 value of each code plus 12, repeated 4 times (vpermb reads 6 index bits)
struct BiasedTwice {
  alignas(64) uint8_t v[64];
  BiasedTwice() {
    const int twice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    for (int i = 0; i < 64; ++i) v[i] = static_cast<uint8_t>(twice[i % 16] + 12);
  }
};
const BiasedTwice kBiasedTwice;

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

// tokens t0 .. t0 + T - 1 of group g: y (+ bias) = sum over blocks
template <int T>
void q8_group(const LinearArgs& a, const Q8Act& x, int64_t g, int64_t t0) {
  const __m512i lut = _mm512_load_si512(kBiasedTwice.v);
  const __m512 s2h = _mm512_set1_ps(a.w.scale2 * 0.5f);  // the codes decode to twice their value
  const int64_t n_in = a.w.n_in, n_blk = n_in / 16;
  const uint8_t* codes = a.w.data + g * n_blk * 256;
  const uint8_t* scales = a.w.scales + g * n_blk * 32;
  __m512 sum[T][2];  // [token][outputs +0..15, +16..31]
  for (int t = 0; t < T; ++t) sum[t][0] = sum[t][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blk; ++b) {
    const uint8_t* tile = codes + b * 256;
    __m512i w[4][2];  // [chunk][low / high nibbles]: biased weights, 16 outputs x 4 inputs each
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(tile + 64 * c);
      w[c][0] = _mm512_permutexvar_epi8(v, lut);
      w[c][1] = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
    }
    __m512 f0, f1;
    tile_factors(scales + b * 32, s2h, f0, f1);
    for (int t = 0; t < T; ++t) {
      const int8_t* q = x.q + (t0 + t) * n_in + 16 * b;
      const __m512i q0 = _mm512_set1_epi32(load_i32(q)), q1 = _mm512_set1_epi32(load_i32(q + 4));
      const __m512i q2 = _mm512_set1_epi32(load_i32(q + 8)), q3 = _mm512_set1_epi32(load_i32(q + 12));
      // two chains per output half (inputs 0..7, 8..15) for the dot products' latency; |sum| <= 16 * 24 * 127
      __m512i acc0 = _mm512_set1_epi32(x.nsum12[(t0 + t) * n_blk + b]), acc1 = _mm512_setzero_si512();
      __m512i acc2 = acc0, acc3 = acc1;
      acc0 = _mm512_dpbusd_epi32(acc0, w[0][0], q0);
      acc1 = _mm512_dpbusd_epi32(acc1, w[2][0], q2);
      acc2 = _mm512_dpbusd_epi32(acc2, w[1][0], q0);
      acc3 = _mm512_dpbusd_epi32(acc3, w[3][0], q2);
      acc0 = _mm512_dpbusd_epi32(acc0, w[0][1], q1);
      acc1 = _mm512_dpbusd_epi32(acc1, w[2][1], q3);
      acc2 = _mm512_dpbusd_epi32(acc2, w[1][1], q1);
      acc3 = _mm512_dpbusd_epi32(acc3, w[3][1], q3);
      const __m512 d = _mm512_set1_ps(x.d[(t0 + t) * n_blk + b]);
      sum[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1)), _mm512_mul_ps(f0, d), sum[t][0]);
      sum[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc2, acc3)), _mm512_mul_ps(f1, d), sum[t][1]);
    }
  }
  for (int t = 0; t < T; ++t) store_group(a, g, t0 + t, sum[t][0], sum[t][1]);
}

template <int T>
void f32_group(const LinearArgs& a, int64_t g, int64_t t0) {
  const __m512 lut = _mm512_load_ps(kE2m1Tile), s2 = _mm512_set1_ps(a.w.scale2);
  const int64_t n_in = a.w.n_in, n_blk = n_in / 16;
  const uint8_t* codes = a.w.data + g * n_blk * 256;
  const uint8_t* scales = a.w.scales + g * n_blk * 32;
  __m512 sum[T][2];  // [token][outputs +0..15, +16..31]
  for (int t = 0; t < T; ++t) sum[t][0] = sum[t][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blk; ++b) {
    const uint8_t* tile = codes + b * 256;
    const float* xb = a.x + t0 * n_in + 16 * b;
    __m512 acc[T][2][2];  // [token][output half][inputs 0..7 / 8..15 chain]
    for (int t = 0; t < T; ++t) acc[t][0][0] = acc[t][0][1] = acc[t][1][0] = acc[t][1][1] = _mm512_setzero_ps();
    for (int c = 0; c < 4; ++c) {
      const int h = c & 1, q = c >> 1;
      const __m512i v = _mm512_loadu_si512(tile + 64 * c);
      // nibble s of each dword: input 8q + 4 (s & 1) + s / 2 of the dword's output
      for (int s = 0; s < 8; ++s) {
        const __m512 wv = _mm512_permutexvar_ps(s == 0 ? v : _mm512_srli_epi32(v, 4 * s), lut);
        const int i = 8 * q + 4 * (s & 1) + s / 2;
        for (int t = 0; t < T; ++t) acc[t][h][q] = _mm512_fmadd_ps(wv, _mm512_set1_ps(xb[t * n_in + i]), acc[t][h][q]);
      }
    }
    __m512 f0, f1;
    tile_factors(scales + b * 32, s2, f0, f1);
    for (int t = 0; t < T; ++t) {
      sum[t][0] = _mm512_fmadd_ps(_mm512_add_ps(acc[t][0][0], acc[t][0][1]), f0, sum[t][0]);
      sum[t][1] = _mm512_fmadd_ps(_mm512_add_ps(acc[t][1][0], acc[t][1][1]), f1, sum[t][1]);
    }
  }
  for (int t = 0; t < T; ++t) store_group(a, g, t0 + t, sum[t][0], sum[t][1]);
}

}  // namespace

bool nvfp4_tiles_takes(const LinearArgs& a) {
  return a.kind == avx2::WKind::kNvfp4Tiles32 && a.w.n_in % 16 == 0 && a.w.n_out % 32 == 0;
}

void q8a_nvfp4t_linear(const LinearArgs& a, const Q8Act& x, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    int64_t t = 0;
    for (; t + 4 <= a.n_tok; t += 4) q8_group<4>(a, x, g, t);
    switch (a.n_tok - t) {
      case 3: q8_group<3>(a, x, g, t); break;
      case 2: q8_group<2>(a, x, g, t); break;
      case 1: q8_group<1>(a, x, g, t); break;
      default: break;
    }
  }
}

void f32_nvfp4t_gemv(const LinearArgs& a, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    int64_t t = 0;
    for (; t + 2 <= a.n_tok; t += 2) f32_group<2>(a, g, t);
    if (t < a.n_tok) f32_group<1>(a, g, t);
  }
}

}  // namespace oss4::avx512
