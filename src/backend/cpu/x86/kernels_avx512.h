// AVX-512 kernels of the CPU backend (the rung above AVX2, chosen where the CPU has AVX-512 F/BW/VL/DQ, VNNI and
// VBMI: Ice Lake, Zen 4 and later): the NVFP4 linear kernels of the 32-output tile layout the rung's prepare step
// makes (numeric/nvfp4_tiles.h), with f32 or 8-bit activations (linear_tiles_avx512.cpp). Everything else runs the
// AVX2 kernels (kernels_avx2.h), which every AVX-512 CPU also runs. Plain C++ without standard-library templates, like
// kernels_avx2.h: only the .cpp files behind this header are compiled with -mavx512*.
//
// Outputs come out in natural order (no lane order to undo): 16 f32 per register are 16 consecutive outputs.
#pragma once

#include <cstdint>

#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/q8_avx2.h"

namespace oss4::avx512 {

using avx2::LinearArgs;
using avx2::Q8Act;

// whether the kernels below take the weight: NVFP4 in 32-output tiles with n_in % 16 == 0, n_out % 32 == 0.
bool nvfp4_tiles_takes(const LinearArgs& a);

// y [n_tok, n_out] columns of output groups [g0, g1) (32 outputs each) = x W^T + bias, 8-bit activations (x.q, x.d,
// x.nsum12; a.x is not read), any token count: VNNI dot products on the tile layout.
void q8a_nvfp4t_linear(const LinearArgs& a, const Q8Act& x, int64_t g0, int64_t g1);

// the same with f32 activations, for the decode's 1-2 tokens (any count works; prefill runs the AVX2 GEMM on each group
// put back in the input-major layout instead: kernels.cpp).
void f32_nvfp4t_gemv(const LinearArgs& a, int64_t g0, int64_t g1);

// BF16 activations (ActPrecision::kBf16), on CPUs that also have AVX512_BF16 (linear_tiles_bf16_avx512.cpp):
// x [n_tok, n_in] f32 -> xpair [n_tok, n_in / 2] BF16 pairs (inputs 8k + j and 8k + j + 4 of pair 4k + j), rounded to
// nearest even; then y columns of groups [g0, g1) = x W^T + bias by vdpbf16ps, any token count; panel: scratch of
// 16 n_in dwords.
void bf16_pairs(const float* x, int64_t n_tok, int64_t n_in, uint32_t* xpair);
void bf16a_nvfp4t_gemm(const LinearArgs& a, const uint32_t* xpair, int64_t g0, int64_t g1, uint32_t* panel);

}  // namespace oss4::avx512
