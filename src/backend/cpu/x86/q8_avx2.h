// AVX2 kernels of the opt-in 8-bit-activation path (ActPrecision::kQ8, reference: backend/cpu/q8_ref.h): in-major
// NVFP4 weights times int8 activations, summed exactly in 16-bit integers per 16-input block with vpmaddubsw, then
// scaled in f32. Plain C++ without standard-library templates, like kernels_avx2.h.
#pragma once

#include <cstdint>

#include "backend/cpu/x86/kernels_avx2.h"

namespace oss4::avx2 {

// x [n_tok, n_in] f32 -> q [n_tok, n_in] int8, d [n_tok, n_in / 16] f32, bit for bit as q8_quantize_ref.
void q8_quantize(const float* x, int64_t n_tok, int64_t n_in, int8_t* q, float* d);

// quantized activations as the kernels read them; r = input pair (2r, 2r + 1), one 32-bit word per pair, loaded by a
// broadcast that needs no shuffle.
struct Q8Act {
  const float* d = nullptr;        // [n_tok, n_in / 16] block scales
  const uint32_t* pair = nullptr;  // [n_tok, n_in / 2] GEMV: bytes |q[2r]|, |q[2r+1]| twice; GEMM: q[2r] + 128, q[2r+1] + 128 twice
  const uint32_t* flip = nullptr;  // [n_tok, n_in / 2] GEMV only: 0x08 if q[2r] < 0, | 0x80 if q[2r+1] < 0, in all 4 bytes
  const int8_t* q = nullptr;       // [n_tok, n_in] the quantized activations (the AVX-512 tile kernels)
  const int32_t* nsum12 = nullptr; // [n_tok, n_in / 16] -12 times each block's sum of q (the AVX-512 tile kernels)
};
// q [n_tok, n_in] -> pair and, for the GEMV (flip != null), flip, as Q8Act describes.
void q8_pairs(const int8_t* q, int64_t n_tok, int64_t n_in, uint32_t* pair, uint32_t* flip);

// whether these kernels take the weight: in-major NVFP4, n_in % 16 == 0, n_out % 32 == 0.
bool nvfp4_q8_takes(const LinearArgs& a);

// decode GEMV split along the inputs, as fp4_gemv_in_major_part: part [n_tok, n_out] = partial sums of input blocks
// [b0, b1) in lane order, summed and put in order by fp4_gemv_in_major_finish. a.x is not read.
void nvfp4_q8_gemv_in_major_part(const LinearArgs& a, const Q8Act& x, int64_t b0, int64_t b1, float* part);

// bytes of scratch nvfp4_q8_gemm_in_major needs (32-byte aligned).
int64_t nvfp4_q8_gemm_scratch_bytes();
// GEMM: outputs [o0, o1) (multiples of 32) of every token, plus bias. a.x is not read.
void nvfp4_q8_gemm_in_major(const LinearArgs& a, const Q8Act& x, int64_t o0, int64_t o1, uint8_t* scratch);

}  // namespace oss4::avx2
