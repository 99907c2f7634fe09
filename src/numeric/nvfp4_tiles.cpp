#include "numeric/nvfp4_tiles.h"

namespace oss4 {

uint8_t nvfp4_code_at(const WeightView& w, int64_t o, int64_t i) {
  switch (w.layout) {
    case WeightLayout::kRowMajor: {
      const uint8_t byte = w.data[o * (w.n_in / 2) + i / 2];
      return i % 2 ? byte >> 4 : byte & 15;
    }
    case WeightLayout::kInMajor: {
      const uint8_t byte = w.data[(i / 2) * w.n_out + o];
      return i % 2 ? byte >> 4 : byte & 15;
    }
    case WeightLayout::kTiles32: {
      bool high = false;
      const uint8_t byte = w.data[nvfp4_tile_code_offset(w.n_in, o, i, &high)];
      return high ? byte >> 4 : byte & 15;
    }
  }
  return 0;
}

uint8_t nvfp4_scale_at(const WeightView& w, int64_t o, int64_t b) {
  switch (w.layout) {
    case WeightLayout::kRowMajor: return w.scales[o * (w.n_in / 16) + b];
    case WeightLayout::kInMajor: return w.scales[b * w.n_out + o];
    case WeightLayout::kTiles32: return w.scales[nvfp4_tile_scale_offset(w.n_in, o, b)];
  }
  return 0;
}

namespace {

// one tile from its source bytes: src[j][o] = in-major row 8b + j (inputs 16b + 2j, + 1) of the group's output o.
// Chunk (h, q), dword d, byte k holds inputs 8q + k (low nibble) and 8q + 4 + k (high): rows 4q + k / 2 and
// 4q + 2 + k / 2, nibble k % 2 of both. Written over d in straight loops the compiler vectorizes.
inline void tile_from_rows(const uint8_t (&src)[8][32], uint8_t* t) {
  for (int c = 0; c < 4; ++c) {
    const int h = c & 1, q = c >> 1;
    const uint8_t *r0 = src[4 * q] + 16 * h, *r1 = src[4 * q + 1] + 16 * h, *r2 = src[4 * q + 2] + 16 * h, *r3 = src[4 * q + 3] + 16 * h;
    uint8_t b[4][16];  // [byte k][dword d]
    for (int d = 0; d < 16; ++d) {
      b[0][d] = static_cast<uint8_t>((r0[d] & 15) | (r2[d] << 4));
      b[1][d] = static_cast<uint8_t>((r0[d] >> 4) | (r2[d] & 0xF0));
      b[2][d] = static_cast<uint8_t>((r1[d] & 15) | (r3[d] << 4));
      b[3][d] = static_cast<uint8_t>((r1[d] >> 4) | (r3[d] & 0xF0));
    }
    uint8_t* out = t + c * 64;
    for (int d = 0; d < 16; ++d)
      for (int k = 0; k < 4; ++k) out[4 * d + k] = b[k][d];
  }
}

}  // namespace

void nvfp4_to_tiles(const WeightView& src, int64_t g0, int64_t g1, uint8_t* codes, uint8_t* scales) {
  const int64_t n_blk = src.n_in / 16, n_out = src.n_out, half = src.n_in / 2;
  uint8_t rows[8][32];
  // the loops follow the source's order: input blocks outside for input-major (each block's 8 rows front to back),
  // output groups outside for row-major (32 rows front to back)
  auto one = [&](int64_t g, int64_t b) {
    uint8_t* sc = scales + (g * n_blk + b) * 32;
    if (src.in_major()) {
      for (int j = 0; j < 8; ++j)
        for (int o = 0; o < 32; ++o) rows[j][o] = src.data[(8 * b + j) * n_out + 32 * g + o];
      for (int o = 0; o < 32; ++o) sc[o] = src.scales[b * n_out + 32 * g + o];
    } else {
      for (int o = 0; o < 32; ++o) {
        const uint8_t* r = src.data + (32 * g + o) * half + 8 * b;
        for (int j = 0; j < 8; ++j) rows[j][o] = r[j];
        sc[o] = src.scales[(32 * g + o) * n_blk + b];
      }
    }
    tile_from_rows(rows, codes + (g * n_blk + b) * 256);
  };
  if (src.in_major()) {
    for (int64_t b = 0; b < n_blk; ++b)
      for (int64_t g = g0; g < g1; ++g) one(g, b);
  } else {
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t b = 0; b < n_blk; ++b) one(g, b);
  }
}

void nvfp4_tiles_group_to_in_major(const WeightView& w, int64_t g, uint8_t* codes, uint8_t* scales) {
  const int64_t n_blk = w.n_in / 16;
  for (int64_t b = 0; b < n_blk; ++b) {
    const uint8_t* t = w.data + (g * n_blk + b) * 256;
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t d = 0; d < 16; ++d) {
        const int64_t o = 16 * (c & 1) + d, r0 = 8 * b + 4 * (c >> 1);  // in-major rows r0 .. r0 + 3: inputs 2 r0 ..
        const uint8_t* q = t + c * 64 + d * 4;
        // byte k: input 2 r0 + k (low), 2 r0 + 4 + k (high); in-major row r holds inputs 2r (low) and 2r + 1 (high)
        codes[(r0 + 0) * 32 + o] = static_cast<uint8_t>((q[0] & 15) | (q[1] << 4));
        codes[(r0 + 1) * 32 + o] = static_cast<uint8_t>((q[2] & 15) | (q[3] << 4));
        codes[(r0 + 2) * 32 + o] = static_cast<uint8_t>((q[0] >> 4) | (q[1] & 0xF0));
        codes[(r0 + 3) * 32 + o] = static_cast<uint8_t>((q[2] >> 4) | (q[3] & 0xF0));
      }
    for (int64_t j = 0; j < 32; ++j) scales[b * 32 + j] = w.scales[(g * n_blk + b) * 32 + j];
  }
}

}  // namespace oss4
