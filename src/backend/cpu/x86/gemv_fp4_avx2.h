// AVX2 GEMV for 4-bit weights with f32 activations (gemv_fp4_avx2.cpp): the decode path of f32_linear_range.
// Plain C++ without standard-library templates, like kernels_avx2.h.
#pragma once

#include <cstdint>

#include "backend/cpu/x86/kernels_avx2.h"

namespace oss4::avx2 {

// whether these kernels take the weight: NVFP4 / MXFP4 row-major with n_in % 64 == 0, or in-major NVFP4 with
// n_out % 32 == 0.
bool fp4_gemv_takes(const LinearArgs& a);

// x [n_tok, n_in] -> xp [n_tok, n_in] in the lane order of the row-major kernel (n_in % 64 == 0).
void fp4_permute_x(const float* x, int64_t n_in, int64_t n_tok, float* xp);

// row-major: y rows [o0, o1) of tokens [t0, t0 + n_tok); xp: those tokens' activations from fp4_permute_x,
// 32-byte aligned.
void fp4_gemv_rows(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0, int64_t n_tok, const float* xp);

// in-major NVFP4: outputs [o0, o1) of every token, o0 and o1 multiples of 32; yp: scratch [2, o1 - o0] f32.
void fp4_gemv_in_major(const LinearArgs& a, int64_t o0, int64_t o1, float* yp);

// in-major NVFP4 split along the inputs, for decode: the weight is read front to back (block b's 8 rows of n_out
// bytes are contiguous), so a thread streams one contiguous range instead of 8 short strided ones.
// part [n_tok, n_out] = partial sums of input blocks [b0, b1) (16 inputs each) for every output, in lane order.
void fp4_gemv_in_major_part(const LinearArgs& a, int64_t b0, int64_t b1, float* part);
// y[:, o0 .. o1) = sum of parts [n_parts, n_tok, n_out] (in part order) put in output order, plus bias; o0 and o1
// multiples of 32.
void fp4_gemv_in_major_finish(const LinearArgs& a, const float* parts, int64_t n_parts, int64_t o0, int64_t o1);

// in-major NVFP4 GEMM panels: inputs [k0, k1) (multiples of 16) of outputs o..o+31 decoded to f32 and scaled,
// pa [k1 - k0, 16] and pb [k1 - k0, 16] (32-byte aligned), columns in lane order: column j of the 32 (pa's 16 then
// pb's 16) is output o + lane_byte(j / 8, (j % 8) / 4, j % 4). fp4_unpermute32 puts 32 such sums back in order.
void fp4_in_major_panels(const LinearArgs& a, int64_t o, int64_t k0, int64_t k1, float* pa, float* pb);
// y [32] from panel column order to output order, plus bias [32] when not null.
void fp4_unpermute32(float* y, const float* bias);

}  // namespace oss4::avx2
