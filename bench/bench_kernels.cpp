// Kernel microbenchmarks (Google Benchmark): the linear kernels at gpt-oss-20b shapes for every weight layout, as
// GEMV (1 token, decode) and GEMM (64 tokens, prefill), on the SIMD rung and the scalar reference, plus attention.
// Counters: weight GB/s (bytes of the weight read per call; GEMV weights rotate through 256 MB so they come from
// DRAM) and GFLOP/s (2 n_out n_in n_tok per call).
//   build/bench/bench_kernels --benchmark_filter=gemv   (OSS4_THREADS=N sets the thread count)
#include <benchmark/benchmark.h>

#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/thread_pool.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {
namespace {

struct BenchWeight {
  LinearWeight w;
  std::vector<uint8_t> data, scales;
};

// random bits in the layout of the type; E4M3 / E8M0 scales kept finite
BenchWeight make(WeightType type, WeightLayout layout, int64_t n_out, int64_t n_in) {
  BenchWeight b;
  std::mt19937 g(42);
  size_t nbytes = 0, nscales = 0;
  switch (type) {
    case WeightType::kF32: nbytes = static_cast<size_t>(n_out * n_in * 4); break;
    case WeightType::kBF16: nbytes = static_cast<size_t>(n_out * n_in * 2); break;
    case WeightType::kMxfp4:
      nbytes = static_cast<size_t>(n_out * n_in / 2);
      nscales = static_cast<size_t>(n_out * n_in / 32);
      break;
    case WeightType::kNvfp4:
      nbytes = static_cast<size_t>(n_out * n_in / 2);
      nscales = static_cast<size_t>(n_out * n_in / 16);
      break;
  }
  b.data.resize(nbytes);
  for (auto& x : b.data) x = static_cast<uint8_t>(g());
  if (type == WeightType::kBF16) {
    auto* h = reinterpret_cast<uint16_t*>(b.data.data());
    for (size_t i = 0; i < nbytes / 2; ++i) h[i] = f32_to_bf16(static_cast<float>(static_cast<int>(g() % 2001) - 1000) * 1e-3f);
  }
  if (type == WeightType::kF32) {
    auto* f = reinterpret_cast<float*>(b.data.data());
    for (size_t i = 0; i < nbytes / 4; ++i) f[i] = static_cast<float>(static_cast<int>(g() % 2001) - 1000) * 1e-3f;
  }
  b.scales.resize(nscales);
  for (auto& s : b.scales) s = static_cast<uint8_t>(type == WeightType::kMxfp4 ? 120 + g() % 8 : 40 + g() % 40);
  b.w.type = type;
  b.w.layout = layout == WeightLayout::kTiles32 ? WeightLayout::kInMajor : layout;
  b.w.n_out = n_out;
  b.w.n_in = n_in;
  b.w.data = b.data.data();
  b.w.scales = b.scales.empty() ? nullptr : b.scales.data();
  b.w.scale2 = 0.01f;
  if (layout == WeightLayout::kTiles32) {  // the same random bytes, in tiles
    std::vector<uint8_t> codes(b.data.size()), scales(b.scales.size());
    nvfp4_to_tiles(b.w, 0, n_out / 32, codes.data(), scales.data());
    b.data = std::move(codes);
    b.scales = std::move(scales);
    b.w.layout = layout;
    b.w.data = b.data.data();
    b.w.scales = b.scales.data();
  }
  return b;
}

// args: weight type, in_major, activation precision; n_out, n_in, n_tok, rung (0 ref, 1 avx2, 2 avx512)
void BM_linear(benchmark::State& state, WeightType type, WeightLayout layout, ActPrecision act) {
  const int64_t n_out = state.range(0), n_in = state.range(1), n_tok = state.range(2);
  const KernelIsa isa = state.range(3) == 0 ? KernelIsa::kRef : state.range(3) == 1 ? KernelIsa::kAvx2 : KernelIsa::kAvx512;
  BenchWeight b = make(type, layout, n_out, n_in);
  // decode reads weights from DRAM, not cache: GEMV calls rotate over copies of the weight that together exceed the
  // last-level cache (256 MB), so GB/s is the streaming rate a decoded token sees
  // (OSS4_BENCH_IN_CACHE=1 keeps one copy: the kernel's arithmetic rate on weights resident in cache)
  const bool in_cache = std::getenv("OSS4_BENCH_IN_CACHE") != nullptr;
  const size_t n_copies = n_tok == 1 && !in_cache ? std::max<size_t>(1, (size_t{256} << 20) / b.w.nbytes()) : 1;
  std::vector<BenchWeight> copies(n_copies, b);
  for (BenchWeight& c : copies) {
    c.w.data = c.data.data();
    c.w.scales = c.scales.empty() ? nullptr : c.scales.data();
  }
  std::vector<float> x(static_cast<size_t>(n_tok * n_in), 0.5f), y(static_cast<size_t>(n_tok * n_out));  // [n_tok, n_in], [n_tok, n_out]
  if (!check_kernel_isa(isa).ok()) {
    state.SkipWithError("rung not available");
    return;
  }
  ThreadPool pool(isa == KernelIsa::kRef ? 1 : resolve_threads(0));  // the reference rung runs on one thread
  const CpuExec ex{isa, act, &pool};
  size_t next = 0;
  for (auto _ : state) {
    f32_linear(ex, copies[next].w, x.data(), n_tok, nullptr, y.data());
    next = (next + 1) % n_copies;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(b.w.nbytes()), flops = 2.0 * static_cast<double>(n_out * n_in * n_tok);
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kernel_isa_name(isa)) + " " + act_precision_name(act) + " " + std::to_string(pool.n_threads()) + " threads");
}

// gpt-oss-20b shapes: expert gate_up [5760, 2880], down [2880, 2880]; attention q [4096, 2880]; ref rung only at one token
void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n_tok : {1, 64})
    for (int rung : {0, 1, 2}) {
      if (rung == 0 && n_tok > 1) continue;  // the scalar GEMM takes minutes
      b->Args({5760, 2880, n_tok, rung});
      b->Args({2880, 2880, n_tok, rung});
    }
  b->ArgNames({"n_out", "n_in", "n_tok", "rung"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

// the AVX-512 rung's tile layout: that rung only
void tile_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n_tok : {1, 64}) {
    b->Args({5760, 2880, n_tok, 2});
    b->Args({2880, 2880, n_tok, 2});
  }
  b->Args({512, 1024, 1, 2});  // 0.3 MB: with OSS4_BENCH_IN_CACHE=1, the rate from L2
  b->ArgNames({"n_out", "n_in", "n_tok", "rung"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

constexpr ActPrecision kF32 = ActPrecision::kF32, kQ8 = ActPrecision::kQ8;
constexpr WeightLayout kRows = WeightLayout::kRowMajor, kInMajor = WeightLayout::kInMajor, kTiles = WeightLayout::kTiles32;
BENCHMARK_CAPTURE(BM_linear, nvfp4w, WeightType::kNvfp4, kRows, kF32)->Apply(shapes);
BENCHMARK_CAPTURE(BM_linear, nvfp4w_in_major, WeightType::kNvfp4, kInMajor, kF32)->Apply(shapes);
BENCHMARK_CAPTURE(BM_linear, nvfp4w_in_major_q8a, WeightType::kNvfp4, kInMajor, kQ8)->Apply(shapes);
BENCHMARK_CAPTURE(BM_linear, nvfp4w_tiles, WeightType::kNvfp4, kTiles, kF32)->Apply(tile_shapes);
BENCHMARK_CAPTURE(BM_linear, nvfp4w_tiles_q8a, WeightType::kNvfp4, kTiles, kQ8)->Apply(tile_shapes);
BENCHMARK_CAPTURE(BM_linear, mxfp4w, WeightType::kMxfp4, kRows, kF32)->Apply(shapes);
BENCHMARK_CAPTURE(BM_linear, bf16w, WeightType::kBF16, kRows, kF32)->Apply(shapes);
BENCHMARK_CAPTURE(BM_linear, bf16w_in_major, WeightType::kBF16, kInMajor, kF32)->Apply(shapes);

// attention of one chunk: 64 heads, 8 KV heads, head_dim 64 at a KV depth; args: n_tok, depth, window, rung
void BM_sdpa(benchmark::State& state) {
  const int64_t n_tok = state.range(0), depth = state.range(1), window = state.range(2);
  const int64_t n_heads = 64, n_kv = 8, hd = 64, n_ctx = depth + n_tok;
  const KernelIsa isa = state.range(3) == 0 ? KernelIsa::kRef : best_kernel_isa();
  if (!check_kernel_isa(isa).ok()) {
    state.SkipWithError("rung not available");
    return;
  }
  ThreadPool pool(isa == KernelIsa::kRef ? 1 : resolve_threads(0));  // the reference rung runs on one thread
  const CpuExec ex{isa, ActPrecision::kF32, &pool};
  std::vector<float> k(static_cast<size_t>(n_ctx * n_kv * hd), 0.01f), v(k.size(), 0.02f);  // [n_ctx, n_kv, hd] each
  // q and out [n_tok, n_heads * hd], sinks [n_heads]
  std::vector<float> q(static_cast<size_t>(n_tok * n_heads * hd), 0.03f), out(q.size()), sinks(static_cast<size_t>(n_heads), 0.1f);
  std::vector<int64_t> pos(static_cast<size_t>(n_tok));  // [n_tok]
  for (int64_t t = 0; t < n_tok; ++t) pos[static_cast<size_t>(t)] = depth + t;
  KvLayerView kv{k.data(), v.data(), n_ctx, false};
  for (auto _ : state) {
    f32_sdpa_sink(ex, q.data(), pos.data(), n_tok, n_heads, n_kv, hd, kv, window, sinks.data(), 0.125f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  double flops = 0;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t p = depth + t, lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    flops += 4.0 * static_cast<double>((p - lo + 1) * hd * n_heads);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kernel_isa_name(isa)) + " " + std::to_string(pool.n_threads()) + " threads");
}
BENCHMARK(BM_sdpa)
    ->Args({1, 4096, 0, 1})
    ->Args({1, 4096, 0, 0})
    ->Args({128, 0, 0, 1})
    ->Args({128, 0, 128, 1})
    ->ArgNames({"n_tok", "depth", "window", "simd"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace oss4

BENCHMARK_MAIN();
