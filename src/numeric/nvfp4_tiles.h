// NVFP4 in 32-output tiles (WeightLayout::kTiles32): the layout the AVX-512 rung's kernels read, made from the
// checkpoint's row-major or input-major bytes by the CPU backend's prepare step. The same codes and scales as the
// source, in another order, so a kernel's result differs from the source layout's only by its summation order.
//
//   codes  [n_out/32, n_in/16, 4, 16, 4] u8: output group g (outputs 32g .. 32g + 31), then input block b (inputs 16b ..
//          16b + 15), then 4 chunks of 64 bytes. Chunk c holds outputs 32g + 16 (c & 1) + d as its 16 dwords d; byte k
//          of a dword holds input 16b + 8 (c >> 1) + k in its low nibble and input 16b + 8 (c >> 1) + 4 + k in its high.
//   scales [n_out/32, n_in/16, 32] e4m3: the block scales of outputs 32g .. 32g + 31 for block b.
//
// Why this order: a group's bytes are one contiguous stream (a thread owns whole groups, so a GEMV needs no partial
// sums across threads); one 64-byte load holds 4 consecutive inputs of each of 16 outputs per nibble half, which is
// the operand of VNNI's vpdpbusd (u8 x s8 dot products of 4) and, by 4-bit shifts, of vpermps (f32) lookups.
#pragma once

#include <cstdint>

#include "numeric/weight_view.h"

namespace oss4 {

// whether an NVFP4 matrix [n_out, n_in] can take the layout: n_out % 32 == 0 and n_in % 16 == 0.
inline bool nvfp4_tiles_fit(int64_t n_out, int64_t n_in) { return n_out % 32 == 0 && n_in % 16 == 0; }

// byte offset in codes of output o, input i; *high = whether i is that byte's high nibble
inline int64_t nvfp4_tile_code_offset(int64_t n_in, int64_t o, int64_t i, bool* high) {
  const int64_t g = o / 32, b = i / 16, r = i % 16, c = (o % 32) / 16 + 2 * (r / 8);
  *high = (r % 8) >= 4;
  return ((g * (n_in / 16) + b) * 4 + c) * 64 + (o % 16) * 4 + r % 4;
}
inline int64_t nvfp4_tile_scale_offset(int64_t n_in, int64_t o, int64_t b) { return ((o / 32) * (n_in / 16) + b) * 32 + o % 32; }

// the 4-bit code and the E4M3 block-scale byte of output o, input i (block b) of an NVFP4 weight in any layout
uint8_t nvfp4_code_at(const WeightView& w, int64_t o, int64_t i);
uint8_t nvfp4_scale_at(const WeightView& w, int64_t o, int64_t b);

// output groups [g0, g1) of src (NVFP4, row-major or input-major, nvfp4_tiles_fit) written in the tile layout into
// codes (+ g0's offset) and scales (+ g0's offset), the full-size arrays of the tiled weight (n_out n_in / 2 and
// n_out n_in / 16 bytes). Groups are independent: threads can split them.
void nvfp4_to_tiles(const WeightView& src, int64_t g0, int64_t g1, uint8_t* codes, uint8_t* scales);

// output group g of a tiled weight back in the input-major layout of a 32-output matrix: codes [n_in/2, 32],
// scales [n_in/16, 32] (the AVX2 GEMMs read that layout; the AVX-512 rung hands them one group at a time).
void nvfp4_tiles_group_to_in_major(const WeightView& w, int64_t g, uint8_t* codes, uint8_t* scales);

}  // namespace oss4
