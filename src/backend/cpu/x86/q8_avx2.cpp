// AVX2 kernels of the 8-bit-activation path: in-major NVFP4 weights ([n_in/2, n_out] codes, [n_in/16, n_out] E4M3)
// times activations quantized to int8 per 16 inputs (q8_ref.h).
//
// Integer core. Twice an E2M1 value is an integer in -12..12, so one pshufb maps 32 codes to signed bytes, and
// vpmaddubsw (unsigned bytes times signed bytes, adjacent pairs summed into 16 bits) multiplies them by activation
// bytes. Interleaving a row's low nibbles (input 2r) with its high nibbles (input 2r + 1) makes each byte pair one
// output's two inputs. |pair sum| <= 2 * 127 * 12 = 3048 and a block of 8 rows sums to <= 24384, so a block's sum
// is exact in 16 bits with no saturation; it is then converted to f32 and scaled once per block.
//
// Signs. vpmaddubsw wants one operand unsigned. The GEMV moves the activation's sign into the weight: flipping
// bit 3 of a code negates its E2M1 value, so one xor per row (with a mask made once per token) and the absolute
// activations do it. The GEMM decodes a panel of weights once for all tokens and offsets the activations to
// unsigned instead (see the GEMM section).
//
// Output order. The 16-bit sums of unpacklo / unpackhi, split into even and odd 16-bit halves, come out in the lane
// order of gemv_fp4_avx2.cpp (vector q, lane l, element e = output 16l + 8(q/2) + 2e + q%2), so the f32 kernels'
// scale loader, part summation and unpermute serve here unchanged.
// Compiled with -mavx2 -mfma -mf16c; no standard-library templates here (see kernels_avx2.h).
#include <immintrin.h>

#include "backend/cpu/x86/gemv_fp4_avx2.h"
#include "backend/cpu/x86/q8_avx2.h"
#include "backend/cpu/x86/simd_avx2.h"

namespace oss4::avx2 {

namespace {

// twice the E2M1 value of each code, in both 128-bit lanes (pshufb looks up within a lane)
alignas(32) const int8_t kTwiceE2m1[32] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
                                           0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

constexpr int64_t kPrefetchAhead = 512;  // as the f32 GEMV: 8 row streams per block outrun the hardware prefetcher
constexpr int64_t kKBlock = 256;         // GEMM inputs per panel: 128 rows x 128 bytes + factors, within L1
constexpr int64_t kTokTile = 4;          // GEMM tokens per tile (at most 6): 2 accumulators each + 2 panel vectors

inline __m256i twice_e2m1_lut() { return _mm256_load_si256(reinterpret_cast<const __m256i*>(kTwiceE2m1)); }

// 32 bytes of codes -> signed values of inputs (2r, 2r + 1) per output, outputs 0..7 | 16..23 (w0) and 8..15 | 24..31
// (w1) of the 32
inline void decode_pairs(__m256i v, __m256i lut, __m256i low4, __m256i& w0, __m256i& w1) {
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low4));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
  w0 = _mm256_unpacklo_epi8(lo, hi);
  w1 = _mm256_unpackhi_epi8(lo, hi);
}

// y[0..32) (lane order) += f32(sums) * f * d (= when first: the first block of a part needs no zeroed buffer), sums
// s0 = outputs 0..7 | 16..23 and s1 = 8..15 | 24..31 as 16 bits
inline void add_scaled(__m256i s0, __m256i s1, const __m256 f[4], float d, float* y, bool first = false) {
  const __m256 dv = _mm256_set1_ps(d);
  const __m256i i32[4] = {_mm256_srai_epi32(_mm256_slli_epi32(s0, 16), 16), _mm256_srai_epi32(s0, 16),
                          _mm256_srai_epi32(_mm256_slli_epi32(s1, 16), 16), _mm256_srai_epi32(s1, 16)};
  for (int k = 0; k < 4; ++k) {
    const __m256 prod_f = _mm256_mul_ps(f[k], dv);
    const __m256 v = _mm256_cvtepi32_ps(i32[k]);
    _mm256_storeu_ps(y + 8 * k, first ? _mm256_mul_ps(v, prod_f) : _mm256_fmadd_ps(v, prod_f, _mm256_loadu_ps(y + 8 * k)));
  }
}

// factors e4m3 * scale2 / 2 of input block b for outputs o..o+31, lane order
inline void block_factors(const LinearArgs& a, int64_t b, int64_t o, __m256 f[4]) {
  __m256i sd[4];
  bytes_to_dwords(a.w.scales + b * a.w.n_out + o, sd);
  const __m256 s2h = _mm256_set1_ps(a.w.scale2 * 0.5f);
  for (int k = 0; k < 4; ++k) f[k] = e4m3_times(sd[k], s2h);
}

// ---- GEMV: yp [T, n_out] (lane order) += input blocks [b0, b1) of tokens t0 .. t0 + T - 1 ----
template <int T>
void gemv_t(const LinearArgs& a, const Q8Act& x, int64_t b0, int64_t b1, int64_t t0, float* yp) {
  const __m256i lut = twice_e2m1_lut(), low4 = _mm256_set1_epi8(0x0F);
  const int64_t n_out = a.w.n_out, half = a.w.n_in / 2, n_blk = a.w.n_in / 16;
  for (int64_t b = b0; b < b1; ++b) {
    const uint32_t* pair[T];
    const uint32_t* flip[T];
    float d[T];
    for (int t = 0; t < T; ++t) {
      pair[t] = x.pair + (t0 + t) * half + b * 8;
      flip[t] = x.flip + (t0 + t) * half + b * 8;
      d[t] = x.d[(t0 + t) * n_blk + b];
    }
    for (int64_t o = 0; o < n_out; o += 32) {
      __m256i acc[T][2];
      for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
      for (int64_t j = 0; j < 8; ++j) {
        const uint8_t* row = a.w.data + (b * 8 + j) * n_out + o;
        _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchAhead), _MM_HINT_T0);
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
        for (int t = 0; t < T; ++t) {
          __m256i w0, w1;
          decode_pairs(_mm256_xor_si256(v, _mm256_set1_epi32(static_cast<int>(flip[t][j]))), lut, low4, w0, w1);
          const __m256i xa = _mm256_set1_epi32(static_cast<int>(pair[t][j]));
          acc[t][0] = _mm256_add_epi16(acc[t][0], _mm256_maddubs_epi16(xa, w0));
          acc[t][1] = _mm256_add_epi16(acc[t][1], _mm256_maddubs_epi16(xa, w1));
        }
      }
      __m256 f[4];
      block_factors(a, b, o, f);
      for (int t = 0; t < T; ++t) add_scaled(acc[t][0], acc[t][1], f, d[t], yp + t * n_out + o, b == b0);
    }
  }
}

// ---- GEMM ----
//
// The GEMM takes the activations offset to unsigned bytes, u = q + 128 (1..255), so vpmaddubsw needs no sign step:
// sum u w = sum q w + 128 sum w, and the panel holds the second term C once for all tokens. A pair of products is at
// most 2 * 255 * 12 = 6120 (no saturation); 8 rows of them can pass 32767, but 16-bit adds wrap (arithmetic mod 2^16)
// and the true block sum sum q w = (sum u w) - C lies within +-24384, so the wrapped difference is exact.

// panel of inputs [k0, k1) for outputs o..o+31, per row r wp[2r], wp[2r + 1] = w0, w1 (as decode_pairs); per block bb
// cp[2 bb], cp[2 bb + 1] = C of w0, w1 (16 bits, wrapped) and fp[4 bb .. 4 bb + 3] its factors.
void panel(const LinearArgs& a, int64_t o, int64_t k0, int64_t k1, __m256i* wp, __m256i* cp, __m256* fp) {
  const __m256i lut = twice_e2m1_lut(), low4 = _mm256_set1_epi8(0x0F), u128 = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = k0 / 16; b < k1 / 16; ++b) {
    const int64_t bb = b - k0 / 16;
    block_factors(a, b, o, fp + 4 * bb);
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    for (int64_t j = 0; j < 8; ++j) {
      const uint8_t* row = a.w.data + (b * 8 + j) * a.w.n_out + o;
      _mm_prefetch(reinterpret_cast<const char*>(row + 256), _MM_HINT_T0);
      __m256i w0, w1;
      decode_pairs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row)), lut, low4, w0, w1);
      _mm256_store_si256(wp + 2 * (bb * 8 + j), w0);
      _mm256_store_si256(wp + 2 * (bb * 8 + j) + 1, w1);
      c0 = _mm256_add_epi16(c0, _mm256_maddubs_epi16(u128, w0));
      c1 = _mm256_add_epi16(c1, _mm256_maddubs_epi16(u128, w1));
    }
    _mm256_store_si256(cp + 2 * bb, c0);
    _mm256_store_si256(cp + 2 * bb + 1, c1);
  }
}

// y rows t0 .. t0 + T - 1 (32 outputs each, lane order, row stride ldy) += the panel's blocks [kb0, kb0 + nb)
template <int T>
void gemm_tile(const __m256i* wp, const __m256i* cp, const __m256* fp, int64_t kb0, int64_t nb, const Q8Act& x, int64_t n_in,
               int64_t t0, float* y, int64_t ldy) {
  const int64_t half = n_in / 2, n_blk = n_in / 16;
  for (int64_t bb = 0; bb < nb; ++bb) {
    __m256i acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
    const uint32_t* u = x.pair + t0 * half + (kb0 + bb) * 8;
    for (int64_t j = 0; j < 8; ++j) {
      const __m256i w0 = _mm256_load_si256(wp + 2 * (bb * 8 + j)), w1 = _mm256_load_si256(wp + 2 * (bb * 8 + j) + 1);
      for (int t = 0; t < T; ++t) {
        const __m256i ut = _mm256_set1_epi32(static_cast<int>(u[t * half + j]));
        acc[t][0] = _mm256_add_epi16(acc[t][0], _mm256_maddubs_epi16(ut, w0));
        acc[t][1] = _mm256_add_epi16(acc[t][1], _mm256_maddubs_epi16(ut, w1));
      }
    }
    const __m256i c0 = _mm256_load_si256(cp + 2 * bb), c1 = _mm256_load_si256(cp + 2 * bb + 1);
    for (int t = 0; t < T; ++t)
      add_scaled(_mm256_sub_epi16(acc[t][0], c0), _mm256_sub_epi16(acc[t][1], c1), fp + 4 * bb, x.d[(t0 + t) * n_blk + kb0 + bb],
                 y + t * ldy);
  }
}

using GemmTileFn = void (*)(const __m256i*, const __m256i*, const __m256*, int64_t, int64_t, const Q8Act&, int64_t, int64_t, float*, int64_t);
GemmTileFn gemm_tile_for(int64_t nt) {
  switch (nt) {
    case 1: return gemm_tile<1>;
    case 2: return gemm_tile<2>;
    case 3: return gemm_tile<3>;
    case 4: return gemm_tile<4>;
    case 5: return gemm_tile<5>;
    default: return gemm_tile<6>;
  }
}

}  // namespace

void q8_quantize(const float* x, int64_t n_tok, int64_t n_in, int8_t* q, float* d) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < n_tok * (n_in / 16); ++b) {
    const __m256 x0 = _mm256_loadu_ps(x + 16 * b), x1 = _mm256_loadu_ps(x + 16 * b + 8);
    __m256 m = _mm256_max_ps(_mm256_and_ps(x0, abs_mask), _mm256_and_ps(x1, abs_mask));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    // the same f32 operations as q8_quantize_ref, so the same bytes
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    const __m256 iv = _mm256_set1_ps(inv);
    const int rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(x0, iv), rnd));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(x1, iv), rnd));
    // 16 int32 in -127..127 -> 16 bytes in order (packs interleave the 128-bit lanes; permute puts them back)
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8);
    const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * b), bytes);
  }
}

void q8_pairs(const int8_t* q, int64_t n_tok, int64_t n_in, uint32_t* pair, uint32_t* flip) {
  for (int64_t r = 0; r < n_tok * (n_in / 2); ++r) {
    const int q0 = q[2 * r], q1 = q[2 * r + 1];
    uint32_t p;
    if (flip != nullptr) {
      p = static_cast<uint32_t>(q0 < 0 ? -q0 : q0) | static_cast<uint32_t>(q1 < 0 ? -q1 : q1) << 8;
      flip[r] = (q0 < 0 ? 0x08080808u : 0u) | (q1 < 0 ? 0x80808080u : 0u);
    } else {
      p = static_cast<uint32_t>(q0 + 128) | static_cast<uint32_t>(q1 + 128) << 8;
    }
    pair[r] = p | p << 16;
  }
}

bool nvfp4_q8_takes(const LinearArgs& a) { return a.kind == WKind::kNvfp4InMajor && a.w.n_in % 16 == 0 && a.w.n_out % 32 == 0; }

void nvfp4_q8_gemv_in_major_part(const LinearArgs& a, const Q8Act& x, int64_t b0, int64_t b1, float* part) {
  if (b1 <= b0) {
    for (int64_t i = 0; i < a.n_tok * a.w.n_out; ++i) part[i] = 0.0f;
    return;
  }
  int64_t t = 0;
  for (; t + 2 <= a.n_tok; t += 2) gemv_t<2>(a, x, b0, b1, t, part + t * a.w.n_out);
  if (t < a.n_tok) gemv_t<1>(a, x, b0, b1, t, part + t * a.w.n_out);
}

int64_t nvfp4_q8_gemm_scratch_bytes() { return ((kKBlock / 2) * 2 + (kKBlock / 16) * 6) * 32; }

void nvfp4_q8_gemm_in_major(const LinearArgs& a, const Q8Act& x, int64_t o0, int64_t o1, uint8_t* scratch) {
  auto* wp = reinterpret_cast<__m256i*>(scratch);                            // [kKBlock / 2, 2] panel rows
  auto* cp = wp + (kKBlock / 2) * 2;                                          // [kKBlock / 16, 2] offset terms
  auto* fp = reinterpret_cast<__m256*>(cp + (kKBlock / 16) * 2);              // [kKBlock / 16, 4] factors
  for (int64_t t = 0; t < a.n_tok; ++t)
    for (int64_t o = o0; o < o1; ++o) a.y[t * a.w.n_out + o] = 0.0f;
  for (int64_t k0 = 0; k0 < a.w.n_in; k0 += kKBlock) {
    const int64_t k1 = k0 + kKBlock < a.w.n_in ? k0 + kKBlock : a.w.n_in;
    for (int64_t o = o0; o < o1; o += 32) {
      panel(a, o, k0, k1, wp, cp, fp);
      for (int64_t t0 = 0; t0 < a.n_tok; t0 += kTokTile) {
        const int64_t nt = a.n_tok - t0 < kTokTile ? a.n_tok - t0 : kTokTile;
        gemm_tile_for(nt)(wp, cp, fp, k0 / 16, (k1 - k0) / 16, x, a.w.n_in, t0, a.y + t0 * a.w.n_out + o, a.w.n_out);
      }
    }
  }
  for (int64_t o = o0; o < o1; o += 32)
    for (int64_t t = 0; t < a.n_tok; ++t) fp4_unpermute32(a.y + t * a.w.n_out + o, a.bias ? a.bias + o : nullptr);
}

}  // namespace oss4::avx2
