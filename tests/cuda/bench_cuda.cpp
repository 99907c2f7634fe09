// Kernel benchmark for tools/device/check.sh: the GPU's bandwidth probe (device-to-device copy), then the decode
// step's matrices timed as a decode step uses them: the 24 layers' matrices of one shape back to back, captured in a
// CUDA graph (launch gaps count), weights made on the device from a seed; then the attention kernels (decode at depths
// 1k and 8k, a 1,024-row prefill chunk on the tensor cores) over the 20b's 12 full-attention layers. Prints a table and
// writes JSON.
//   cuda_bench OUT_DIR [--seed N]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace {

using namespace oss4;

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "cuda_bench: %s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)
#define ST(x)                                                                     \
  do {                                                                            \
    Status s_ = (x);                                                              \
    if (!s_.ok()) {                                                               \
      std::fprintf(stderr, "cuda_bench: %s\n", s_.message().c_str());             \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

struct Row {
  std::string name;
  int64_t n_tok;
  double us, bytes, gbps, pct;
};

// median time of one graph replay in microseconds
template <class Fn>
double time_graph(cudaStream_t s, Fn&& body, int reps) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  body();
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, s));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  return 1000.0 * ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cuda_bench OUT_DIR [--seed N]\n");
    return 2;
  }
  const std::string out_dir = argv[1];
  uint64_t seed = 1;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--seed") == 0) seed = std::strtoull(argv[i + 1], nullptr, 10);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));

  // bandwidth probe: a 2 GiB device-to-device copy, bytes read + written
  const size_t probe = size_t{1} << 30;
  void *pa, *pb;
  CK(cudaMalloc(&pa, probe));
  CK(cudaMalloc(&pb, probe));
  CK(cudaMemset(pa, 1, probe));
  const double copy_us = time_graph(s, [&] { CK(cudaMemcpyAsync(pb, pa, probe, cudaMemcpyDeviceToDevice, s)); }, 20);
  const double bw = 2.0 * static_cast<double>(probe) / (copy_us * 1e3);  // GB/s
  CK(cudaFree(pa));
  CK(cudaFree(pb));

  std::vector<Row> rows;
  const int kLayers = 24;
  struct Shape {
    const char* name;
    int64_t n_out, n_in, layers;
    cuda::Fp4Format f;
  };
  const Shape shapes[] = {{"nvfp4 q 4096x2880", 4096, 2880, kLayers, cuda::Fp4Format::kNvfp4},
                          {"nvfp4 k/v 512x2880", 512, 2880, kLayers, cuda::Fp4Format::kNvfp4},
                          {"nvfp4 o 2880x4096", 2880, 4096, kLayers, cuda::Fp4Format::kNvfp4},
                          {"nvfp4 lm_head 201088x2880", 201088, 2880, 1, cuda::Fp4Format::kNvfp4},
                          {"mxfp4 down 2880x2880", 2880, 2880, kLayers, cuda::Fp4Format::kMxfp4}};
  for (const Shape& sh : shapes) {
    const int64_t n_rt = (sh.n_out + 15) / 16, n_kt = (sh.n_in + 63) / 64;
    const int64_t tiles = n_rt * n_kt, bytes = tiles * cuda::tile_bytes(sh.f);
    std::vector<uint8_t*> w(static_cast<size_t>(sh.layers));
    for (auto& p : w) {
      CK(cudaMalloc(&p, static_cast<size_t>(bytes)));
      ST(cuda::fill_random_fp4_tiles(p, tiles, sh.f, seed++, s));
    }
    for (int64_t n_tok : {1, 8, 16}) {
      uint16_t* x;
      float* y;
      CK(cudaMalloc(&x, static_cast<size_t>(n_tok * sh.n_in) * 2));
      CK(cudaMalloc(&y, static_cast<size_t>(n_tok * sh.n_out) * 4));
      ST(cuda::fill_random_bf16(x, n_tok * sh.n_in, seed++, s));
      const double us = time_graph(s, [&] {
        for (auto* p : w) {
          // MXFP4 scale codes are 120..130 (fill_random_fp4_tiles): shift 130 - 126
          const int shift = sh.f == cuda::Fp4Format::kMxfp4 ? 4 : 0;
          cuda::Fp4MatrixView v{p, sh.f, sh.n_out, sh.n_in, n_rt, n_kt, false, shift, 1.0f};
          ST(cuda::bf16_fp4w_matmul(v, x, n_tok, nullptr, y, s));
        }
      }, 50);
      const double total = static_cast<double>(bytes) * static_cast<double>(sh.layers);
      const double gbps = total / (us * 1e3);
      rows.push_back({sh.name, n_tok, us / static_cast<double>(sh.layers), static_cast<double>(bytes), gbps, 100.0 * gbps / bw});
      CK(cudaFree(x));
      CK(cudaFree(y));
    }
    for (auto* p : w) CK(cudaFree(p));
  }

  // the MoE pair at one token: 4 experts of 32, gate_up + SwiGLU + down, 24 layers
  {
    const int64_t E = 32, n_embd = 2880, n_ff = 2880, k = 4;
    const int64_t gu_rt = n_ff / 8, gu_kt = n_embd / 64, dn_rt = n_embd / 16, dn_kt = n_ff / 64;
    const int64_t gu_bytes = gu_rt * gu_kt * 576, dn_bytes = dn_rt * dn_kt * 576;
    std::vector<uint8_t*> gw(kLayers), dw(kLayers);
    for (int l = 0; l < kLayers; ++l) {
      CK(cudaMalloc(&gw[l], static_cast<size_t>(gu_bytes * E)));
      CK(cudaMalloc(&dw[l], static_cast<size_t>(dn_bytes * E)));
      ST(cuda::fill_random_fp4_tiles(gw[l], gu_rt * gu_kt * E, cuda::Fp4Format::kNvfp4, seed++, s));
      ST(cuda::fill_random_fp4_tiles(dw[l], dn_rt * dn_kt * E, cuda::Fp4Format::kNvfp4, seed++, s));
    }
    std::vector<float> ones(E, 1.0f / 256.0f), bias_h(E * 2 * n_ff, 0.01f);
    float *epi, *bias;
    CK(cudaMalloc(&epi, E * 4));
    CK(cudaMalloc(&bias, bias_h.size() * 4));
    CK(cudaMemcpy(epi, ones.data(), E * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bias, bias_h.data(), bias_h.size() * 4, cudaMemcpyHostToDevice));
    const int32_t idx_h[4] = {3, 9, 17, 30};
    const float w_h[4] = {0.4f, 0.3f, 0.2f, 0.1f};
    int32_t* idx;
    float *wts, *y;
    uint16_t* x;
    CK(cudaMalloc(&idx, 16));
    CK(cudaMalloc(&wts, 16));
    CK(cudaMalloc(&y, n_embd * 4));
    CK(cudaMalloc(&x, n_embd * 2));
    CK(cudaMemcpy(idx, idx_h, 16, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(wts, w_h, 16, cudaMemcpyHostToDevice));
    ST(cuda::fill_random_bf16(x, n_embd, seed++, s));
    void* scratch;
    CK(cudaMalloc(&scratch, cuda::moe_scratch_bytes(1, k, E, n_ff, n_embd)));
    const cuda::MoeScratch sc = cuda::moe_scratch_carve(scratch, 1, k, E, n_ff, n_embd);
    const double us = time_graph(s, [&] {
      for (int l = 0; l < kLayers; ++l) {
        cuda::Fp4ExpertsView g{gw[l], gu_bytes, cuda::Fp4Format::kNvfp4, 2 * n_ff, n_embd, gu_rt, gu_kt, true, epi, nullptr};
        cuda::Fp4ExpertsView d{dw[l], dn_bytes, cuda::Fp4Format::kNvfp4, n_embd, n_ff, dn_rt, dn_kt, false, epi, nullptr};
        ST(cuda::bf16_fp4w_moe(g, d, E, x, 1, idx, wts, k, bias, bias, cuda::SwigluParams{}, sc, y, s));
      }
    }, 50);
    const double bytes = static_cast<double>(k * (gu_bytes + dn_bytes));
    const double gbps = bytes * kLayers / (us * 1e3);
    rows.push_back({"nvfp4 moe pair 4 of 32 experts", 1, us / kLayers, bytes, gbps, 100.0 * gbps / bw});
  }

  // attention of the 20b's shape (64 heads, 8 K/V heads, head_dim 64; the 12 full-attention layers' pages), K/V
  // made on the device: one decode row at depths 1k and 8k (split kernel), a 1,024-row prefill chunk at position 0
  // (tensor cores). "bytes" is the K/V the call reads once (its rate says little for the prefill: the keys are
  // re-read from L2 by every query tile).
  {
    const int64_t H = 64, KVH = 8, HD = 64, L = 12, max_pos = 8192;
    const cuda::PageGeom geom{L, KVH * HD};
    const int64_t n_pages = cuda::pages_for(max_pos), page_elems = cuda::page_elems(geom);
    uint16_t* pages;
    CK(cudaMalloc(&pages, static_cast<size_t>(n_pages * page_elems) * 2));
    ST(cuda::fill_random_bf16(pages, n_pages * page_elems, seed++, s));
    std::vector<uint16_t*> ptrs(static_cast<size_t>(n_pages));
    for (int64_t i = 0; i < n_pages; ++i) ptrs[static_cast<size_t>(i)] = pages + i * page_elems;
    uint16_t** table;
    CK(cudaMalloc(&table, ptrs.size() * sizeof(uint16_t*)));
    CK(cudaMemcpy(table, ptrs.data(), ptrs.size() * sizeof(uint16_t*), cudaMemcpyHostToDevice));
    const cuda::PageTable pt{table, n_pages};
    cuda::PageTable* tables;
    const cuda::PageTable both[2] = {pt, pt};
    CK(cudaMalloc(&tables, sizeof(both)));
    CK(cudaMemcpy(tables, both, sizeof(both), cudaMemcpyHostToDevice));
    const int64_t rows_max = 1024;
    float *q, *out, *sinks;
    int32_t *pos, *seq;
    CK(cudaMalloc(&q, static_cast<size_t>(rows_max * H * HD) * 4));
    CK(cudaMalloc(&out, static_cast<size_t>(rows_max * H * HD) * 4));
    CK(cudaMalloc(&sinks, H * 4));
    CK(cudaMalloc(&pos, rows_max * 4));
    CK(cudaMalloc(&seq, rows_max * 4));
    CK(cudaMemset(q, 0, static_cast<size_t>(rows_max * H * HD) * 4));  // (scores 0: every key weighs alike)
    CK(cudaMemset(sinks, 0, H * 4));
    CK(cudaMemset(seq, 0, rows_max * 4));
    std::vector<int32_t> pos_h(rows_max);
    void* scratch;
    CK(cudaMalloc(&scratch, cuda::attention_scratch_bytes(1, H, HD, max_pos)));
    for (int64_t depth : {1024, 8192}) {
      pos_h[0] = static_cast<int32_t>(depth - 1);
      CK(cudaMemcpy(pos, pos_h.data(), 4, cudaMemcpyHostToDevice));
      const cuda::RowsView rv{pos, seq, tables, 1};
      const double us = time_graph(s, [&] {
        for (int64_t l = 0; l < L; ++l)
          ST(cuda::attention(rv, cuda::LayerKv{0, l, geom}, q, H, KVH, HD, 0, sinks, 0.125f, depth, scratch, out, nullptr, s));
      }, 50);
      const double bytes = static_cast<double>(depth * 2 * KVH * HD * 2);
      const double gbps = bytes * L / (us * 1e3);
      rows.push_back({"attention decode @" + std::to_string(depth) + " (12 full layers)", 1, us / L, bytes, gbps, 100.0 * gbps / bw});
    }
    cuda::FlashArgs fa;
    fa.q = q;
    fa.n_rows = rows_max;
    fa.p0 = 0;
    fa.table = pt;
    fa.geom = geom;
    fa.n_heads = static_cast<int>(H);
    fa.n_kv_heads = static_cast<int>(KVH);
    fa.sinks = sinks;
    fa.scale = 0.125f;
    fa.out = out;
    const double us = time_graph(s, [&] {
      for (int64_t l = 0; l < L; ++l) {
        fa.gl = l;
        ST(cuda::attention_prefill(fa, HD, s));
      }
    }, 20);
    const double bytes = static_cast<double>(rows_max * 2 * KVH * HD * 2);
    const double gbps = bytes * L / (us * 1e3);
    rows.push_back({"attention prefill 1024 rows (tensor cores)", rows_max, us / L, bytes, gbps, 100.0 * gbps / bw});
    for (void* p : {static_cast<void*>(pages), static_cast<void*>(table), static_cast<void*>(tables), static_cast<void*>(q),
                    static_cast<void*>(out), static_cast<void*>(sinks), static_cast<void*>(pos), static_cast<void*>(seq), scratch})
      CK(cudaFree(p));
  }

  std::printf("device: %s (sm_%d%d, %d SMs), copy bandwidth %.0f GB/s\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, bw);
  std::printf("%-44s %6s %10s %12s %9s %6s\n", "kernel (every layer in one graph)", "tokens", "us/layer", "MB/layer", "GB/s", "%bw");
  for (const Row& r : rows)
    std::printf("%-44s %6lld %10.2f %12.2f %9.0f %5.1f%%\n", r.name.c_str(), static_cast<long long>(r.n_tok), r.us,
                r.bytes / 1e6, r.gbps, r.pct);
  const std::string path = out_dir + "/cuda_bench.json";
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "cuda_bench: cannot write %s\n", path.c_str());
    return 1;
  }
  std::fprintf(f, "{\"device\": \"%s\", \"sm\": %d, \"sms\": %d, \"copy_gbps\": %.1f, \"rows\": [\n", prop.name,
               prop.major * 10 + prop.minor, prop.multiProcessorCount, bw);
  for (size_t i = 0; i < rows.size(); ++i)
    std::fprintf(f, "  {\"kernel\": \"%s\", \"tokens\": %lld, \"us\": %.3f, \"bytes\": %.0f, \"gbps\": %.1f, \"pct_bw\": %.2f}%s\n",
                 rows[i].name.c_str(), static_cast<long long>(rows[i].n_tok), rows[i].us, rows[i].bytes, rows[i].gbps,
                 rows[i].pct, i + 1 < rows.size() ? "," : "");
  std::fprintf(f, "]}\n");
  std::fclose(f);
  return 0;
}
