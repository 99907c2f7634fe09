// The prefill attention of the CUDA backend on the tensor cores (mma.sync m16n8k16, BF16 in, f32 accumulate), written
// once as a warp program over a Warp policy: the kernel (ops.cu) runs it with the device's shuffles and mma, the CPU
// test (tests/cuda_host/test_flash_attention.cpp) runs the same code in 32 host threads whose shuffles and mma are
// emulated from the PTX ISA's fragment tables, against f32_sdpa_sink_ref.
//
// One warp takes 16 query rows (consecutive positions of one sequence) of one head against every key they see, 16
// keys per step: S = Q K^T as two 16x8 tiles (k-steps of 16 dims), causal and window masks, the online softmax per
// row (each lane holds rows g and g+8, the four lanes of a row combine by xor-shuffles 1 and 2), P rounded to BF16 is
// re-used as the A operand of P V straight from the S accumulators (the C fragment of two 8-key tiles is the A
// fragment of one 16-key step), O accumulates in f32. The sink is a virtual key of score sink and value 0: the state
// starts at m = sink, l = 1, so it joins the denominator only. Q is rounded to BF16 (an mma operand), K and V are BF16
// in the pages already. V of every key in the tile's range enters the mma, with P = 0 for the keys a row does not see:
// an infinite V (an f32 value past BF16's range) would make those rows NaN where the split kernel would not.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cuda/attn_math.h"
#include "backend/cuda/fp4_dequant.h"
#include "backend/cuda/kv_pages.h"

#if defined(__CUDA_ARCH__)  // (the device pass only: the host compiler does not know the pragma)
#define OSS4_UNROLL _Pragma("unroll")
#else
#define OSS4_UNROLL
#endif

namespace oss4::cuda {

// f32 -> BF16 bits, round to nearest even (a NaN stays a quiet NaN): the same on the host and the device
OSS4_HD uint32_t bf16_rn_bits(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return u >> 16;
}
OSS4_HD uint32_t pack_bf16x2(float lo, float hi) { return bf16_rn_bits(lo) | (bf16_rn_bits(hi) << 16); }
OSS4_HD float bf16_bits_f32(uint32_t h) { return bits_to_f32(h << 16); }
OSS4_HD uint32_t load_bf16x2(const uint16_t* p) {  // two consecutive BF16 values (4-byte aligned: even offsets in a page)
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint32_t*>(p);  // (one 32-bit load; memcpy of a uint16_t* may split it)
#else
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
#endif
}

// one prefill chunk of one sequence, one layer
struct FlashArgs {
  const float* q = nullptr;  // [n_rows, n_heads, head_dim] f32, RoPE applied; row r is at position p0 + r
  int64_t n_rows = 0, p0 = 0;
  PageTable table;           // the sequence's table of the layer's group (device pointers)
  PageGeom geom;
  int64_t gl = 0;            // the layer in its group
  int n_heads = 0, n_kv_heads = 0;
  int64_t window = 0;        // 0: full causal
  const float* sinks = nullptr;  // [n_heads] or null (no sink)
  float scale = 1.0f;
  float* out = nullptr;          // [n_rows, n_heads * head_dim] f32, or null
  uint16_t* out16 = nullptr;     // the same in BF16, or null
};

// query rows 16 qt .. 16 qt + 15 of head h (rows past n_rows are computed on zeros and not stored)
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <int HD, class Warp>
OSS4_HD void flash_attention_tile(Warp& w, const FlashArgs& a, int64_t qt, int h) {
  constexpr int KS = HD / 16;  // k-steps of Q K^T
  constexpr int DT = HD / 8;   // 8-dim tiles of O
  const int lane = w.lane(), g = lane >> 2, t = lane & 3;
  const int64_t r0 = qt * 16;
  const int64_t row[2] = {r0 + g, r0 + g + 8};
  const bool row_ok[2] = {row[0] < a.n_rows, row[1] < a.n_rows};
  const int64_t pos[2] = {a.p0 + row[0], a.p0 + row[1]};
  const int64_t row_lo[2] = {query_keys(pos[0], a.window).lo, query_keys(pos[1], a.window).lo};

  // Q as A fragments: register 0 row g, dims 2t, 2t+1 of the k-step; 1 row g+8; 2 row g, dims +8; 3 row g+8, dims +8
  uint32_t qa[KS][4];
  OSS4_UNROLL
  for (int s = 0; s < KS; ++s) {
    OSS4_UNROLL
    for (int half = 0; half < 2; ++half) {
      const float* qr = a.q + (row[half] * a.n_heads + h) * HD + 16 * s + 2 * t;
      qa[s][half] = row_ok[half] ? pack_bf16x2(qr[0], qr[1]) : 0u;
      qa[s][2 + half] = row_ok[half] ? pack_bf16x2(qr[8], qr[9]) : 0u;
    }
  }
  const int64_t last = (r0 + 15 < a.n_rows ? r0 + 15 : a.n_rows - 1);
  const int64_t lo = query_keys(a.p0 + r0, a.window).lo, hi = a.p0 + last + 1;  // keys any row of the tile sees
  const int64_t koff = static_cast<int64_t>(h / (a.n_heads / a.n_kv_heads)) * HD;

  const float sink = a.sinks ? a.sinks[h] : -INFINITY;
  float m[2] = {sink, sink}, l[2] = {a.sinks ? 1.0f : 0.0f, a.sinks ? 1.0f : 0.0f};
  float o[DT][4];
  OSS4_UNROLL
  for (int d = 0; d < DT; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;

  for (int64_t kb = lo; kb < hi; kb += 16) {
    // S for keys kb .. kb+15: two 16x8 tiles; this lane loads key kb + 8j + g of each as B
    float sc[2][4];
    OSS4_UNROLL
    for (int j = 0; j < 2; ++j) {
      const int64_t key = kb + 8 * j + g;
      const uint16_t* kp = key < hi ? kv_row(a.table, a.geom, a.gl, 0, key) + koff : nullptr;
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      OSS4_UNROLL
      for (int s = 0; s < KS; ++s) {
        const uint32_t b0 = kp ? load_bf16x2(kp + 16 * s + 2 * t) : 0u;
        const uint32_t b1 = kp ? load_bf16x2(kp + 16 * s + 2 * t + 8) : 0u;
        w.mma(c, qa[s], b0, b1);
      }
      OSS4_UNROLL
      for (int i = 0; i < 4; ++i) {  // C: row g (i < 2) or g+8, key 2t + (i & 1) of the tile
        const int half = i >> 1;
        const int64_t k = kb + 8 * j + 2 * t + (i & 1);
        const bool ok = row_ok[half] && k < hi && k <= pos[half] && k >= row_lo[half];
        sc[j][i] = ok ? c[i] * a.scale : -INFINITY;
      }
    }
    // online softmax of each of the lane's two rows over the 16 keys
    float p[2][4];
    OSS4_UNROLL
    for (int half = 0; half < 2; ++half) {
      float mx = fmaxf(fmaxf(sc[0][2 * half], sc[0][2 * half + 1]), fmaxf(sc[1][2 * half], sc[1][2 * half + 1]));
      mx = fmaxf(mx, w.shfl_xor(mx, 1));
      mx = fmaxf(mx, w.shfl_xor(mx, 2));
      const float m_new = fmaxf(m[half], mx);
      const float corr = m_new == -INFINITY ? 1.0f : (m[half] == -INFINITY ? 0.0f : expf(m[half] - m_new));
      float sum = 0.0f;
      OSS4_UNROLL
      for (int j = 0; j < 2; ++j) {
        OSS4_UNROLL
        for (int e = 0; e < 2; ++e) {
          const float s = sc[j][2 * half + e];
          // P as the mma will see it (BF16), so the denominator sums the same weights
          const float pv = s == -INFINITY ? 0.0f : bf16_bits_f32(bf16_rn_bits(expf(s - m_new)));
          p[j][2 * half + e] = pv;
          sum += pv;
        }
      }
      sum += w.shfl_xor(sum, 1);
      sum += w.shfl_xor(sum, 2);
      l[half] = l[half] * corr + sum;
      m[half] = m_new;
      OSS4_UNROLL
      for (int d = 0; d < DT; ++d) {
        o[d][2 * half] *= corr;
        o[d][2 * half + 1] *= corr;
      }
    }
    // P as the A fragment of one 16-key step: the C fragments of the two 8-key tiles
    const uint32_t pa[4] = {pack_bf16x2(p[0][0], p[0][1]), pack_bf16x2(p[0][2], p[0][3]), pack_bf16x2(p[1][0], p[1][1]),
                            pack_bf16x2(p[1][2], p[1][3])};
    // V as B: keys kb + 2t, +1 (register 0) and kb + 2t + 8, +9 (register 1), dim 8d + g; keys past hi read as 0
    const int64_t vk[4] = {kb + 2 * t, kb + 2 * t + 1, kb + 2 * t + 8, kb + 2 * t + 9};
    const uint16_t* vp[4];
    OSS4_UNROLL
    for (int i = 0; i < 4; ++i) vp[i] = vk[i] < hi ? kv_row(a.table, a.geom, a.gl, 1, vk[i]) + koff : nullptr;
    OSS4_UNROLL
    for (int d = 0; d < DT; ++d) {
      const int dim = 8 * d + g;
      const uint32_t v0 = vp[0] ? vp[0][dim] : 0u, v1 = vp[1] ? vp[1][dim] : 0u;
      const uint32_t v2 = vp[2] ? vp[2][dim] : 0u, v3 = vp[3] ? vp[3][dim] : 0u;
      w.mma(o[d], pa, v0 | (v1 << 16), v2 | (v3 << 16));
    }
  }
  // O / l: C fragment row g (0, 1) or g+8 (2, 3), dims 8d + 2t + (i & 1)
  OSS4_UNROLL
  for (int half = 0; half < 2; ++half) {
    if (!row_ok[half]) continue;
    const float inv = l[half] > 0.0f ? 1.0f / l[half] : 0.0f;
    const int64_t base = (row[half] * a.n_heads + h) * HD;
    OSS4_UNROLL
    for (int d = 0; d < DT; ++d) {
      OSS4_UNROLL
      for (int e = 0; e < 2; ++e) {
        const float v = o[d][2 * half + e] * inv;
        const int64_t i = base + 8 * d + 2 * t + e;
        if (a.out) a.out[i] = v;
        if (a.out16) a.out16[i] = static_cast<uint16_t>(bf16_rn_bits(v));
      }
    }
  }
}

}  // namespace oss4::cuda
