// AVX-512 kernels of the CPU backend (the rung above AVX2, chosen where the CPU has AVX-512 F/BW/VL/DQ and VNNI):
// the decode GEMVs of in-major NVFP4 weights, with f32 or 8-bit activations. Everything the rung does not override
// runs the AVX2 kernels (kernels_avx2.h), which every AVX-512 CPU also runs. Plain C++ without standard-library
// templates, like kernels_avx2.h: only the .cpp files behind this header are compiled with -mavx512*.
//
// Outputs come out in natural order (no lane order to undo): 16 f32 per register are 16 consecutive outputs.
#pragma once

#include <cstdint>

#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/q8_avx2.h"

namespace oss4::avx512 {

using avx2::LinearArgs;
using avx2::Q8Act;

// whether these kernels take the weight: in-major NVFP4 with n_in % 16 == 0 and n_out % 64 == 0 (every gpt-oss
// matrix: 512, 2880, 4096, 5760, 201088 outputs).
bool nvfp4_in_major_takes(const LinearArgs& a);

// decode GEMV split along the inputs, f32 activations: part [n_tok, n_out] = partial sums over input blocks [b0, b1)
// (16 inputs each) of every output, natural order; b1 > b0.
void f32_nvfp4w_gemv_part(const LinearArgs& a, int64_t b0, int64_t b1, float* part);

// the same with 8-bit activations (backend/cpu/q8_ref.h), prepared by avx2::q8_quantize and avx2::q8_pairs (GEMV
// form: pair and flip); a.x is not read.
void q8a_nvfp4w_gemv_part(const LinearArgs& a, const Q8Act& x, int64_t b0, int64_t b1, float* part);

// y[:, o0 .. o1) = the sum of parts [n_parts, n_tok, n_out] in part order, plus bias; o0 and o1 multiples of 16.
void gemv_parts_finish(const LinearArgs& a, const float* parts, int64_t n_parts, int64_t o0, int64_t o1);

}  // namespace oss4::avx512
