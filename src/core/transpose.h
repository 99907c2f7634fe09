// Byte-matrix transpose: the one layout change between row-major NVFP4 ([n_out, n_in/2] codes, [n_out, n_in/16]
// scales) and the input-major layout of ModelOpt's exported experts ([n_in/2, n_out], [n_in/16, n_out]), used by
// `oss4 quantize` to write that layout and by the loader to repack weights for the CPU kernels.
#pragma once

#include <cstdint>

namespace oss4 {

// dst [cols, rows] = src [rows, cols] transposed, in tiles so both sides stay in cache. dst must not overlap src.
void transpose_u8(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);
// the same for sub-matrices: element (r, c) at src[r * src_ld] + c goes to dst[c * dst_ld + r].
void transpose_u8(const uint8_t* src, int64_t rows, int64_t cols, int64_t src_ld, uint8_t* dst, int64_t dst_ld);

}  // namespace oss4
