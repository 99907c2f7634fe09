// The kernel checks every backend passes: a backend's ops (kernel_backend.h) against the scalar reference rung run on
// the host (backend/cpu/kernels_ref.h, q8_ref.h), over every weight layout, GEMV and GEMM token counts, with and
// without bias, at the error bounds the CPU's SIMD rung is held to. Each check reports through gtest (ADD_FAILURE /
// EXPECT_*), naming the backend; call it from a TEST_P over the backend's instances.
#pragma once

#include <cstdint>
#include <vector>

#include "../unit/test_weights.h"
#include "kernel_backend.h"

namespace oss4 {

// y = x W^T (+ bias) of the backend against f32_linear_ref for one weight: x [n_tok, n_in] from randn, within
// 2 gamma_n sum_i |w_i x_i| (kernel_checks.cpp says why)
void check_linear(KernelBackend& be, const TestWeight& t, int64_t n_tok, bool with_bias);

// the shapes of the SIMD rung's tests, each over its token counts, with and without bias
void check_linear_every_layout(KernelBackend& be);
void check_linear_dense_odd_input_count(KernelBackend& be);
void check_linear_large_shapes_across_k_blocks(KernelBackend& be);
void check_linear_fp4_gemv_lane_order(KernelBackend& be);
void check_attention_with_sinks_and_window(KernelBackend& be);
void check_swiglu(KernelBackend& be);

// the BF16-activation path (a backend made with ActPrecision::kBf16): NVFP4 weights against f32_linear_ref on the
// activations rounded to BF16, at check_linear's bound; other weights against the unrounded activations
void check_bf16_gemv_and_gemm(KernelBackend& be);

// the 8-bit-activation path (a backend made with ActPrecision::kQ8) against f32_nvfp4w_q8a_linear_ref for one
// in-major NVFP4 weight, within 2 gamma_n sum_k |s_k g_k|
void check_q8_linear(KernelBackend& be, const TestWeight& t, int64_t n_tok, bool with_bias);
void check_q8_gemv_and_gemm(KernelBackend& be);

// activations [n_tok, n_in] for the Q8 path: randn with a zero block, a block of ties (x * 127 / amax = k + 1/2
// exactly) and outliers
std::vector<float> q8_test_activations(int64_t n_tok, int64_t n_in, uint32_t seed);
// y [n_tok, n_out] of an NVFP4 weight in double from the reference quantizer's bytes, and sum_k |s_k g_k| [n_tok, n_out]
// (the summation bound's scale)
void q8_double(const TestWeight& t, const std::vector<float>& x, int64_t n_tok, std::vector<double>* y, std::vector<double>* abs_sum);

}  // namespace oss4
