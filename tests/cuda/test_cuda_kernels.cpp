// GPU tests of the CUDA kernels (label cuda): each kernel against the CPU reference rung on gpt-oss's shapes, odd
// tails and token counts 1..512. Without a CUDA device every test skips with a one-line reason.
//
// Bounds (derived, written next to each check): a sum of n f32 products carries at most n * u * sum |w x| of
// rounding (u = 2^-24 with round-to-nearest; the tensor cores' f32 accumulation may truncate, u = 2^-23). The
// kernel and the reference each do one such sum over the same exact BF16 weights and the same BF16-rounded
// activations, so |gpu - ref| <= 2 n 2^-23 sum |w x| = n 2^-22 sum |w x| (plus the reference's one rounding of its
// block factor, 2^-24 of it). BF16 outputs add one rounding, 2^-9 |y|. The MoE's SwiGLU output h is stored in BF16
// (2^-9 of each h) before the down projection: that adds 2^-9 sum |w_down h| per output, times 2 for the
// propagated error of the gate/up sums, 2^-8 in all.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernels_ref.h"
#include "backend/cpu/nvfp4_ref.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/upload.h"
#include "fp4_test_data.h"

#include "dev_buffer.h"

namespace oss4 {
namespace {

bool gpu_present(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    *why = cudaGetErrorString(e);
    return false;
  }
  if (n == 0) *why = "no device";
  return n > 0;
}

#define SKIP_WITHOUT_GPU()                                                    \
  do {                                                                        \
    std::string why_;                                                         \
    if (!gpu_present(&why_)) GTEST_SKIP() << "no CUDA device here: " << why_; \
  } while (0)

using test::Dev;

std::vector<float> widen(const std::vector<uint16_t>& b) {
  std::vector<float> f(b.size());
  for (size_t i = 0; i < b.size(); ++i) f[i] = bf16_to_f32(b[i]);
  return f;
}

std::vector<float> random_bias(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  std::vector<float> b(static_cast<size_t>(n));
  for (auto& v : b) v = d(rng);
  return b;
}

// sum |w x| per output, for the bounds: [n_tok, n_out] f64.
std::vector<double> abs_sums(const test::Fp4Source& w, const std::vector<float>& x, int64_t n_tok) {
  std::vector<double> a(static_cast<size_t>(n_tok * w.n_out), 0.0);
  std::vector<double> wa(static_cast<size_t>(w.n_in));
  for (int64_t o = 0; o < w.n_out; ++o) {
    for (int64_t i = 0; i < w.n_in; ++i) wa[i] = std::fabs(w.at(o, i));
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0.0;
      for (int64_t i = 0; i < w.n_in; ++i) s += wa[i] * std::fabs(static_cast<double>(x[t * w.n_in + i]));
      a[t * w.n_out + o] = s;
    }
  }
  return a;
}

// the CPU reference rung for an FP4 source: y [n_tok, n_out] f32.
std::vector<float> cpu_ref(const test::Fp4Source& w, const std::vector<float>& x, int64_t n_tok, const float* bias) {
  std::vector<float> y(static_cast<size_t>(n_tok * w.n_out));
  if (w.mx) {
    LinearWeight lw;
    lw.type = WeightType::kMxfp4;
    lw.n_out = w.n_out;
    lw.n_in = w.n_in;
    lw.data = w.packed.data();
    lw.scales = w.scales.data();
    f32_mxfp4w_matmul_ref(lw, x.data(), n_tok, bias, y.data());
  } else {
    f32_nvfp4w_matmul_ref(w.packed.data(), w.scales.data(), w.scale2, w.n_out, w.n_in, x.data(), n_tok, bias, y.data());
  }
  return y;
}

cuda::Fp4TileMatrix repack(const test::Fp4Source& w, bool paired) {
  auto m = w.mx ? cuda::repack_mxfp4(w.packed.data(), w.scales.data(), w.n_out, w.n_in, paired, "w")
                : cuda::repack_nvfp4(w.packed.data(), w.scales.data(), w.scale2, w.n_out, w.n_in, cuda::SourceOrder::kRowMajor,
                                     paired, "w");
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::move(m).value();
}

TEST(CudaKernels, DequantTableBitExactOnDevice) {
  SKIP_WITHOUT_GPU();
  std::vector<uint16_t> nv(256 * 16), mx(255 * 16);
  const Status st = cuda::fp4_dequant_table_on_device(nv.data(), mx.data());
  ASSERT_TRUE(st.ok()) << st.message();
  for (uint32_t s = 0; s < 256; ++s) {
    if ((s & 0x7f) == 0x7f) continue;
    for (uint32_t q = 0; q < 16; ++q) {
      // the host table is proven against src/quant's codec by tests/cuda_host/test_fp4_dequant.cpp
      ASSERT_EQ(nv[s * 16 + q], cuda::bf16_mul_host(cuda::e2m1_to_bf16_scaled_bits(q), cuda::e4m3_to_bf16_scale_bits(s)))
          << "e4m3 0x" << std::hex << s << " q " << std::dec << q;
      const float want = kE2m1Lut[q] * e4m3_to_f32(static_cast<uint8_t>(s));
      ASSERT_EQ(bf16_to_f32(nv[s * 16 + q]) * 256.0f, want);
    }
  }
  for (uint32_t b = 0; b < 255; ++b)
    for (uint32_t q = 0; q < 16; ++q)
      ASSERT_EQ(mx[b * 16 + q], cuda::bf16_mul_host(cuda::e2m1_to_bf16_scaled_bits(q),
                                                    cuda::e8m0_to_bf16_scale_bits(b, static_cast<int>(b) - 126)))
          << "e8m0 " << b << " q " << q;
}

struct MatCase {
  int64_t n_out, n_in;
  std::vector<int64_t> toks;
};

// OSS4_CUDA_TEST_SMALL=1 keeps only the smallest shapes (the compute-sanitizer runs of tools/device/check.sh).
bool small_only() { return std::getenv("OSS4_CUDA_TEST_SMALL") != nullptr; }

// gpt-oss's shapes (q 4096, k/v 512, o and experts 2880, gate_up 5760, lm_head 201088) and odd tails.
std::vector<MatCase> matmul_cases() {
  if (small_only()) return {{37, 96, {1, 5, 16, 20}}, {64, 128, {1, 8}}};
  return {{37, 96, {1, 2, 5, 8, 16, 64, 512}}, {2880, 2880, {1, 2, 4, 8, 16, 64}}, {4096, 2880, {1, 4, 16}},
          {512, 2880, {1, 2, 4, 8, 16, 64, 512}}, {2880, 4096, {1, 16}}, {5760, 2880, {1, 8}},
          {201088, 2880, {1}}};
}

void run_fp4_matmul_case(bool mx, const MatCase& c) {
  if (mx && c.n_in % 32 != 0) return;
  const test::Fp4Source w = test::random_fp4(mx, c.n_out, c.n_in, static_cast<uint32_t>(c.n_out + c.n_in));
  const cuda::Fp4TileMatrix m = repack(w, false);
  Dev<uint8_t> tiles(m.tiles);
  const cuda::Fp4MatrixView v = cuda::view_of(m, tiles.p);
  const std::vector<float> bias = random_bias(c.n_out, 3);
  Dev<float> dbias(bias);
  for (int64_t n_tok : c.toks) {
    SCOPED_TRACE(std::string(mx ? "mxfp4" : "nvfp4") + " n_out " + std::to_string(c.n_out) + " n_in " +
                 std::to_string(c.n_in) + " n_tok " + std::to_string(n_tok));
    const std::vector<uint16_t> xb = test::random_bf16(n_tok * c.n_in, static_cast<uint32_t>(n_tok));
    const std::vector<float> xf = widen(xb);  // the same BF16-rounded activations for the reference
    const std::vector<float> want = cpu_ref(w, xf, n_tok, bias.data());
    const std::vector<double> mag = abs_sums(w, xf, n_tok);
    Dev<uint16_t> dx(xb);
    Dev<float> dxf(xf);
    Dev<float> dy(static_cast<size_t>(n_tok * c.n_out));
    Dev<uint16_t> dyb(static_cast<size_t>(n_tok * c.n_out));
    Dev<float> dyf(static_cast<size_t>(n_tok * c.n_out));
    dy.poison();
    dyb.poison();
    dyf.poison();
    ASSERT_TRUE(cuda::bf16_fp4w_matmul(v, dx.p, n_tok, dbias.p, dy.p, nullptr).ok());
    ASSERT_TRUE(cuda::bf16_fp4w_matmul_bf16out(v, dx.p, n_tok, dbias.p, dyb.p, nullptr).ok());
    ASSERT_TRUE(cuda::f32_fp4w_matmul(v, dxf.p, n_tok, dbias.p, dyf.p, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = dy.get(), gotf = dyf.get();
    const std::vector<uint16_t> gotb = dyb.get();
    const double n = static_cast<double>(c.n_in);
    for (size_t i = 0; i < want.size(); ++i) {
      // one f32 sum on each side: n 2^-22 sum |w x|, plus the reference's block-factor rounding 2^-24 sum |w x|,
      // plus the epilogue's scale multiply and bias add on each side (2^-22 |y|)
      const double bound = (n * 0x1p-22 + 0x1p-24) * mag[i] + 0x1p-22 * std::fabs(want[i]) + 1e-30;
      ASSERT_NEAR(got[i], want[i], bound) << "bf16_fp4w_matmul at " << i;
      ASSERT_NEAR(gotf[i], want[i], bound) << "f32_fp4w_matmul at " << i;
      // plus one BF16 rounding of the output
      ASSERT_NEAR(bf16_to_f32(gotb[i]), want[i], bound + 0x1p-9 * std::fabs(want[i])) << "bf16 output at " << i;
    }
  }
}

TEST(CudaKernels, Nvfp4MatmulAgainstCpuRef) {
  SKIP_WITHOUT_GPU();
  for (const MatCase& c : matmul_cases()) run_fp4_matmul_case(false, c);
}

TEST(CudaKernels, Mxfp4MatmulAgainstCpuRef) {
  SKIP_WITHOUT_GPU();
  for (const MatCase& c : matmul_cases()) run_fp4_matmul_case(true, c);
}

// the f32-activation variant against activations that are not BF16 values: the goldens' 1e-4 bound holds.
TEST(CudaKernels, F32ActivationVariantHoldsGoldenBound) {
  SKIP_WITHOUT_GPU();
  const test::Fp4Source w = test::random_fp4(false, 2880, 2880, 17);
  const cuda::Fp4TileMatrix m = repack(w, false);
  Dev<uint8_t> tiles(m.tiles);
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(4 * 2880);
  for (auto& v : x) v = d(rng);
  const std::vector<float> want = cpu_ref(w, x, 4, nullptr);
  Dev<float> dx(x), dy(want.size());
  dy.poison();
  ASSERT_TRUE(cuda::f32_fp4w_matmul(cuda::view_of(m, tiles.p), dx.p, 4, nullptr, dy.p, nullptr).ok());
  const std::vector<float> got = dy.get();
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4);
}

TEST(CudaKernels, Bf16WeightMatmulAgainstCpuRef) {
  SKIP_WITHOUT_GPU();
  struct C {
    int64_t n_out, n_in;
    std::vector<int64_t> toks;
  };
  const std::vector<C> cases = small_only() ? std::vector<C>{C{37, 88, {1, 3, 16}}}
                                            : std::vector<C>{C{32, 2880, {1, 2, 4, 8, 16, 64, 512}}, C{37, 88, {1, 3, 16}},
                                                             C{201088, 2880, {1}}};
  for (const C& c : cases) {
    const std::vector<uint16_t> w = test::random_bf16(c.n_out * c.n_in, 9);
    LinearWeight lw;
    lw.type = WeightType::kBF16;
    lw.n_out = c.n_out;
    lw.n_in = c.n_in;
    lw.data = reinterpret_cast<const uint8_t*>(w.data());
    Dev<uint16_t> dw(w);
    for (int64_t n_tok : c.toks) {
      SCOPED_TRACE("bf16 n_out " + std::to_string(c.n_out) + " n_tok " + std::to_string(n_tok));
      const std::vector<uint16_t> xb = test::random_bf16(n_tok * c.n_in, 4);
      const std::vector<float> xf = widen(xb);
      std::vector<float> want(static_cast<size_t>(n_tok * c.n_out));
      f32_bf16w_matmul_ref(lw, xf.data(), n_tok, nullptr, want.data());
      Dev<uint16_t> dx(xb);
      Dev<float> dxf(xf), dy(want.size()), dyf(want.size());
      dy.poison();
      dyf.poison();
      ASSERT_TRUE(cuda::bf16_bf16w_matmul(dw.p, c.n_out, c.n_in, dx.p, n_tok, nullptr, dy.p, nullptr).ok());
      ASSERT_TRUE(cuda::f32_bf16w_matmul(dw.p, c.n_out, c.n_in, dxf.p, n_tok, nullptr, dyf.p, nullptr).ok());
      const std::vector<float> got = dy.get(), gotf = dyf.get();
      for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t o = 0; o < c.n_out; ++o) {
          double mag = 0.0;
          for (int64_t i = 0; i < c.n_in; ++i) mag += std::fabs(static_cast<double>(bf16_to_f32(w[o * c.n_in + i])) * xf[t * c.n_in + i]);
          const double bound = static_cast<double>(c.n_in) * 0x1p-22 * mag + 1e-30;  // two f32 sums of n products
          const size_t i = static_cast<size_t>(t * c.n_out + o);
          ASSERT_NEAR(got[i], want[i], bound);
          ASSERT_NEAR(gotf[i], want[i], bound);
        }
      }
    }
  }
}

// the MoE pair against the CPU chain: per token and slot, gate_up (+ bias), clamped SwiGLU, down (+ bias), times the
// router weight, summed in slot order.
// the experts are made and repacked once per call (seconds at gpt-oss's shapes), then run for every token count.
void run_moe_case(bool mx, int64_t n_experts, int64_t n_embd, int64_t n_ff, int64_t k, const std::vector<int64_t>& toks) {
  std::vector<test::Fp4Source> gu, dn;
  std::vector<uint8_t> gu_tiles, dn_tiles;
  std::vector<float> gu_epi, dn_epi;
  std::vector<int32_t> gu_shift, dn_shift;
  cuda::Fp4TileMatrix gm, dm;
  for (int64_t e = 0; e < n_experts; ++e) {
    gu.push_back(test::random_fp4(mx, 2 * n_ff, n_embd, static_cast<uint32_t>(100 + e)));
    dn.push_back(test::random_fp4(mx, n_embd, n_ff, static_cast<uint32_t>(200 + e)));
    gm = repack(gu.back(), true);
    dm = repack(dn.back(), false);
    gu_tiles.insert(gu_tiles.end(), gm.tiles.begin(), gm.tiles.end());
    dn_tiles.insert(dn_tiles.end(), dm.tiles.begin(), dm.tiles.end());
    gu_epi.push_back(gm.epilogue_scale);
    dn_epi.push_back(dm.epilogue_scale);
    gu_shift.push_back(gm.mx_shift);
    dn_shift.push_back(dm.mx_shift);
  }
  const std::vector<float> gu_bias = random_bias(n_experts * 2 * n_ff, 5), dn_bias = random_bias(n_experts * n_embd, 6);
  for (int64_t n_tok : toks) {
    SCOPED_TRACE(std::string(mx ? "mxfp4" : "nvfp4") + " moe experts " + std::to_string(n_experts) + " n_embd " +
                 std::to_string(n_embd) + " n_tok " + std::to_string(n_tok));
    std::mt19937 rng(static_cast<uint32_t>(n_tok));
    std::vector<int32_t> idx(static_cast<size_t>(n_tok * k));
    std::vector<float> wts(idx.size());
    std::vector<int32_t> perm(static_cast<size_t>(n_experts));
    for (int64_t t = 0; t < n_tok; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      float sum = 0.0f;
      for (int64_t s = 0; s < k; ++s) {
        idx[t * k + s] = perm[s];
        wts[t * k + s] = 0.1f + static_cast<float>(rng() % 1000) / 1000.0f;
        sum += wts[t * k + s];
      }
      for (int64_t s = 0; s < k; ++s) wts[t * k + s] /= sum;
    }
    const std::vector<uint16_t> xb = test::random_bf16(n_tok * n_embd, 8);
    const std::vector<float> xf = widen(xb);

    // CPU chain, and sum |terms| of the down projection for the bound
    std::vector<float> want(static_cast<size_t>(n_tok * n_embd), 0.0f);
    std::vector<double> mag(want.size(), 0.0);
    std::vector<float> g(static_cast<size_t>(2 * n_ff)), h(static_cast<size_t>(n_ff)), o(static_cast<size_t>(n_embd));
    std::vector<double> gmag;
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t s = 0; s < k; ++s) {
        const int32_t e = idx[t * k + s];
        const std::vector<float> xt(xf.begin() + t * n_embd, xf.begin() + (t + 1) * n_embd);
        g = cpu_ref(gu[e], xt, 1, gu_bias.data() + e * 2 * n_ff);
        gmag = abs_sums(gu[e], xt, 1);
        f32_swiglu_ref(g.data(), n_ff, 1.702f, 7.0f, h.data());
        o = cpu_ref(dn[e], h, 1, dn_bias.data() + e * n_embd);
        const std::vector<double> dmag = abs_sums(dn[e], h, 1);
        // error of each h_j: its BF16 rounding (2^-9 |h|, doubled: 2^-8) plus the gate/up sums' error (two f32 sums,
        // n_embd 2^-22 of sum |w x|) times SwiGLU's slopes on the clamped range: d/d up = gate sigmoid(alpha gate) <= 7,
        // d/d gate = (up + 1) (sigmoid + alpha gate sigmoid') <= 8 * 1.1, together < 16
        std::vector<float> dh(static_cast<size_t>(n_ff));
        for (int64_t jj = 0; jj < n_ff; ++jj)
          dh[jj] = static_cast<float>(0x1p-8 * std::fabs(h[jj]) +
                                      16.0 * static_cast<double>(n_embd) * 0x1p-22 * std::max(gmag[2 * jj], gmag[2 * jj + 1]));
        const std::vector<double> prop = abs_sums(dn[e], dh, 1);  // sum_j |w_down(i, j)| dh_j
        for (int64_t i = 0; i < n_embd; ++i) {
          want[t * n_embd + i] += wts[t * k + s] * o[i];
          mag[t * n_embd + i] += wts[t * k + s] * (prop[i] + static_cast<double>(n_ff) * 0x1p-22 * dmag[i]);
        }
      }
    }

    Dev<uint8_t> dgt(gu_tiles), ddt(dn_tiles);
    Dev<float> dge(gu_epi), dde(dn_epi), dgb(gu_bias), ddb(dn_bias), dw(wts);
    Dev<int32_t> dgs(gu_shift), dds(dn_shift), didx(idx);
    Dev<uint16_t> dx(xb);
    cuda::Fp4ExpertsView vg{dgt.p, static_cast<int64_t>(gm.tiles.size()), gm.format, gm.n_out, gm.n_in, gm.n_row_tiles,
                            gm.n_k_tiles, true, dge.p, dgs.p};
    cuda::Fp4ExpertsView vd{ddt.p, static_cast<int64_t>(dm.tiles.size()), dm.format, dm.n_out, dm.n_in, dm.n_row_tiles,
                            dm.n_k_tiles, false, dde.p, dds.p};
    Dev<uint8_t> scratch(cuda::moe_scratch_bytes(n_tok, k, n_experts, n_ff, n_embd));
    const cuda::MoeScratch sc = cuda::moe_scratch_carve(scratch.p, n_tok, k, n_experts, n_ff, n_embd);
    Dev<float> dy(want.size());
    dy.poison();
    const Status st = cuda::bf16_fp4w_moe(vg, vd, n_experts, dx.p, n_tok, didx.p, dw.p, k, dgb.p, ddb.p, cuda::SwigluParams{},
                                          sc, dy.p, nullptr);
    ASSERT_TRUE(st.ok()) << st.message();
    const std::vector<float> got = dy.get();
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], mag[i] + 1e-30) << "token " << i / n_embd << " out " << i % n_embd;
  }
}

TEST(CudaKernels, MoePairAgainstCpuChain) {
  SKIP_WITHOUT_GPU();
  for (bool mx : {false, true}) {
    if (small_only()) {
      run_moe_case(mx, 8, 128, 64, 4, {1, 3, 17});
      continue;
    }
    // gpt-oss-20b's shapes (the CPU chain costs about 0.2 G multiply-adds per token), then every token count on a
    // small model
    run_moe_case(mx, 32, 2880, 2880, 4, {1, 16});
    run_moe_case(mx, 8, 128, 64, 4, {1, 2, 4, 8, 16, 64, 512});
  }
}

// a CUDA graph replay gives the eager result bit for bit.
TEST(CudaKernels, GraphReplayEqualsEager) {
  SKIP_WITHOUT_GPU();
  const test::Fp4Source w = test::random_fp4(false, 2880, 2880, 1);
  const cuda::Fp4TileMatrix m = repack(w, false);
  Dev<uint8_t> tiles(m.tiles);
  const std::vector<uint16_t> xb = test::random_bf16(4 * 2880, 2);
  Dev<uint16_t> dx(xb);
  Dev<float> eager(4 * 2880), graph(4 * 2880);
  const cuda::Fp4MatrixView v = cuda::view_of(m, tiles.p);
  ASSERT_TRUE(cuda::bf16_fp4w_matmul(v, dx.p, 4, nullptr, eager.p, nullptr).ok());
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  cudaGraph_t g;
  cudaGraphExec_t ge;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_TRUE(cuda::bf16_fp4w_matmul(v, dx.p, 4, nullptr, graph.p, s).ok());
  ASSERT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&ge, g, 0), cudaSuccess);
  graph.poison();
  ASSERT_EQ(cudaGraphLaunch(ge, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  const std::vector<float> a = eager.get(), b = graph.get();
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}

// pinned, double-buffered upload: every byte arrives, across chunk boundaries and a partial last chunk, and the
// progress reaches the total once per chunk.
TEST(CudaUpload, PinnedStagingCopiesEveryByte) {
  SKIP_WITHOUT_GPU();
  auto up = cuda::Uploader::create(size_t{1} << 20);
  ASSERT_TRUE(up.ok()) << up.status().message();
  std::vector<uint8_t> src((size_t{37} << 20) + 12345);
  std::mt19937 rng(3);
  for (auto& b : src) b = static_cast<uint8_t>(rng());
  auto buf = cuda::DeviceBuffer::alloc(src.size(), "test");
  ASSERT_TRUE(buf.ok());
  int64_t calls = 0, last = 0;
  const Status st = up->copy(buf->data(), src.data(), src.size(), "test", [&](int64_t done, int64_t total) {
    EXPECT_GT(done, last);
    EXPECT_EQ(total, static_cast<int64_t>(src.size()));
    last = done;
    ++calls;
  });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(last, static_cast<int64_t>(src.size()));
  EXPECT_EQ(calls, 38);
  std::vector<uint8_t> back(src.size());
  ASSERT_EQ(cudaMemcpy(back.data(), buf->data(), back.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(back == src);
}

TEST(CudaKernels, LaunchersRefuseBadShapes) {
  // argument checks run before any CUDA call, so this runs without a GPU too
  cuda::Fp4MatrixView v;
  uint16_t x = 0;
  float y = 0.0f;
  const Status st = cuda::bf16_fp4w_matmul(v, &x, 1, nullptr, &y, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("bf16_fp4w_matmul"), std::string::npos);
  v.tiles = reinterpret_cast<const uint8_t*>(&x);
  v.n_out = 16;
  v.n_in = 40;
  v.n_k_tiles = 1;
  v.n_row_tiles = 1;
  const Status st2 = cuda::bf16_fp4w_matmul(v, &x, 1, nullptr, &y, nullptr);
  ASSERT_FALSE(st2.ok());
  EXPECT_NE(st2.message().find("n_in 40"), std::string::npos) << st2.message();
}

}  // namespace
}  // namespace oss4
