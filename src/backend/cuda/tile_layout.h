// The tile layout of FP4 weights for the mma.sync m16n8k16 kernels, and each lane's A fragment built from it: pure
// arithmetic shared by the host repack (src/backend/cuda/repack.cpp), the kernels and the CPU warp emulator test.
//
// The weight matrix W [n_out, n_in] is the A operand (16 output rows x 16 inputs per mma); the tokens are the narrow
// B operand (n = 8). A tile covers 16 rows x 64 inputs (four k-steps of 16) and is stored as
//   [512 bytes: 32 lanes x 16 bytes, lane L's 16 bytes = its 4 words, word j = k-step j]
//   [scales: NVFP4 64 bytes, 8 bytes per lane group g; MXFP4 32 bytes, 4 per group]
// so each lane reads its fragments of four k-steps with one 16-byte load and its scales with one 8- (4-) byte load.
// Tiles are stored row-tile major: tile (rt, kt) at (rt * n_k_tiles + kt) * tile_bytes, so a warp walking the
// k-tiles of one row tile streams contiguous memory.
//
// Inside word j of lane L (g = L / 4, t = L % 4), nibble p holds the element of A register r = p % 4, half p / 4
// (register r of lane L is the pair of elements {2r, 2r+1} of the lane's A fragment, low half first). The PTX ISA's
// m16n8k16 A fragment puts register r at row g + 8 * (r % 2) and columns 2t + half + 8 * (r / 2) of the k-step.
// Scales of group g, NVFP4: byte 2j = block j of row g, byte 2j + 1 = block j of row g + 8 (block = k-step).
// MXFP4 (blocks of 32 = two k-steps): byte 2b = block b of row g, 2b + 1 = block b of row g + 8.
//
// Gate/up pairing (the MoE's first matrix, checkpoint rows interleaved gate_j = 2j, up_j = 2j + 1): tile rt's row
// r < 8 is gate_(8 rt + r) and row r + 8 is up_(8 rt + r), so the lane holding output row g also holds row g + 8 in
// its accumulators: c0/c1 = gate, c2/c3 = up of the same j, and the clamped SwiGLU runs in registers.
#pragma once

#include <cstdint>

#include "backend/cuda/fp4_dequant.h"

namespace oss4::cuda {

enum class Fp4Format : int32_t { kNvfp4 = 0, kMxfp4 = 1 };

inline constexpr int kTileRows = 16;
inline constexpr int kTileK = 64;
inline constexpr int kTileNibbleBytes = 512;
OSS4_HD int tile_scale_bytes(Fp4Format f) { return f == Fp4Format::kNvfp4 ? 64 : 32; }
OSS4_HD int tile_bytes(Fp4Format f) { return kTileNibbleBytes + tile_scale_bytes(f); }
OSS4_HD int scale_block(Fp4Format f) { return f == Fp4Format::kNvfp4 ? 16 : 32; }

// where element (row r, input k) of a 16 x 64 tile lives: lane, word (k-step) and nibble (0..7).
struct NibbleSlot {
  int lane, word, nibble;
};
OSS4_HD NibbleSlot tile_nibble_slot(int r, int k) {
  const int j = k / 16, kk = k % 16;
  const int g = r % 8, rhi = r / 8;        // register r % 2 = rhi
  const int khi = kk / 8, t = (kk % 8) / 2, half = kk % 2;  // register r / 2 = khi
  const int reg = rhi + 2 * khi;
  return NibbleSlot{g * 4 + t, j, reg + 4 * half};
}
// byte offset, inside the tile's scale area, of the scale of (row r, block b).
OSS4_HD int tile_scale_slot(Fp4Format f, int r, int b) {
  const int per_group = f == Fp4Format::kNvfp4 ? 8 : 4;
  return (r % 8) * per_group + 2 * b + r / 8;
}

// checkpoint row held by tile row r of row tile rt: plain (rt * 16 + r) or gate/up paired.
OSS4_HD int64_t tile_source_row(int64_t rt, int r, bool paired) {
  if (!paired) return rt * kTileRows + r;
  const int64_t j = rt * 8 + (r % 8);
  return 2 * j + (r / 8);
}

// BF16x2 multiply, round to nearest even, subnormals kept. sm_90+: mul.rn.bf16x2; sm_80 has only the FMA form, with
// -0 as the addend so that -0 products stay -0.
OSS4_HD uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  uint32_t d;
#if __CUDA_ARCH__ >= 900
  asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
#else
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
#endif
  return d;
#else
  const uint32_t lo = bf16_mul_host(static_cast<uint16_t>(a), static_cast<uint16_t>(b));
  const uint32_t hi = bf16_mul_host(static_cast<uint16_t>(a >> 16), static_cast<uint16_t>(b >> 16));
  return lo | (hi << 16);
#endif
}

// a lane's A registers for k-step j of one tile: words = the lane's 16 bytes as 4 words, scale = the group's scale
// bytes (NVFP4: 8 bytes as 2 words; MXFP4: 4 bytes in word 0), mx_shift = the MXFP4 tensor shift c.
// a[r] = bf16x2 of the dequantized (scaled, see fp4_dequant.h) elements {2r, 2r+1} of the lane's fragment.
template <Fp4Format F>
OSS4_HD void lane_a_fragment(const uint32_t words[4], const uint32_t scale[2], int j, int mx_shift, uint32_t a[4]) {
  uint32_t s_lo, s_hi;  // bf16 scale of row g and row g + 8, as bf16x2 broadcasts
  if constexpr (F == Fp4Format::kNvfp4) {
    const uint32_t pair = (scale[j / 2] >> (16 * (j % 2))) & 0xffffu;  // bytes 2j, 2j+1
    s_lo = e4m3_to_bf16_scale_bits(pair & 0xffu);
    s_hi = e4m3_to_bf16_scale_bits(pair >> 8);
  } else {
    const uint32_t pair = (scale[0] >> (16 * (j / 2))) & 0xffffu;  // block j / 2
    s_lo = e8m0_to_bf16_scale_bits(pair & 0xffu, mx_shift);
    s_hi = e8m0_to_bf16_scale_bits(pair >> 8, mx_shift);
  }
  s_lo |= s_lo << 16;
  s_hi |= s_hi << 16;
  const uint32_t w = words[j];
  a[0] = bf16x2_mul(e2m1x2_to_bf16x2_scaled(w), s_lo);
  a[1] = bf16x2_mul(e2m1x2_to_bf16x2_scaled(w >> 4), s_hi);
  a[2] = bf16x2_mul(e2m1x2_to_bf16x2_scaled(w >> 8), s_lo);
  a[3] = bf16x2_mul(e2m1x2_to_bf16x2_scaled(w >> 12), s_hi);
}

}  // namespace oss4::cuda
