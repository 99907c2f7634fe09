// FP4 (NVFP4, MXFP4) weight x BF16 activation kernels: the decode/prefill matmul, the grouped MoE pair, the
// f32-activation test variant and the device copy of the exact dequant table. One file for all FP4 kernels keeps the
// CUDA compile of every target short (docs/cuda.md).
#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/kernels.h"

namespace oss4::cuda {
namespace {

constexpr int kWarps = 8;  // warps per block: they split one row tile's k-tiles, then reduce in shared memory

template <Fp4Format F>
constexpr int kTileBytes = F == Fp4Format::kNvfp4 ? 576 : 544;

// the lane's B registers for one k-step: bf16 pairs (k, k+1) and (k+8, k+9) of its token row; 0 past the row's end
// or for an absent token (the padded weights are 0 there too, and 0 * 0 keeps NaN out). The load itself is
// unconditional (row is always a valid row, k is clamped) so that the compiler can issue it early, without a branch.
__device__ __forceinline__ uint32_t load_x2(const uint16_t* row, int64_t k, int64_t n_in, bool present) {
  const uint32_t v = *reinterpret_cast<const uint32_t*>(row + (k < n_in ? k : n_in - 2));
  return (present && k < n_in) ? v : 0u;
}

// weight loads: read once per step, so they bypass L1; volatile so that the compiler issues them in program order,
// all kPrefetch k-tiles before the first mma.
__device__ __forceinline__ uint4 ld_stream_v4(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ uint2 ld_stream_v2(const void* p) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t ld_stream_u32(const void* p) {
  uint32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}

// one warp's share of a row tile: k-tiles kt0, kt0 + step, ... of the tiles starting at `tiles`, NT n-tiles of 8
// tokens (xrow[nt] = the row of the token this lane feeds, groupID = lane / 4, always a valid row; bit nt of present
// says whether that token exists), accumulated into acc[nt][0..3].
// The loads of kPrefetch k-tiles are issued before the first of them is used, so each lane keeps 4 x 24 bytes of
// weights in flight.
constexpr int kPrefetch = 4;

template <Fp4Format F, int NT>
__device__ __forceinline__ void warp_fp4_mma(const uint8_t* __restrict__ tiles, int64_t n_k_tiles, int kt0, int step,
                                             int mx_shift, const uint16_t* const (&xrow)[NT], unsigned present,
                                             int64_t n_in, float (&acc)[NT][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  for (int64_t kb = kt0; kb < n_k_tiles; kb += static_cast<int64_t>(kPrefetch) * step) {
    uint4 wv[kPrefetch];  // the lane's 16 bytes of each k-tile
    uint2 sv[kPrefetch];  // its group's scale bytes (MXFP4: .x only)
#pragma unroll
    for (int u = 0; u < kPrefetch; ++u) {
      const int64_t kt = kb + static_cast<int64_t>(u) * step;
      // past the last k-tile the last one is loaded again (unused): no branch between the loads
      const uint8_t* tile = tiles + (kt < n_k_tiles ? kt : n_k_tiles - 1) * kTileBytes<F>;
      wv[u] = ld_stream_v4(tile + 16 * lane);
      if constexpr (F == Fp4Format::kNvfp4) {
        sv[u] = ld_stream_v2(tile + kTileNibbleBytes + 8 * g);
      } else {
        sv[u].x = ld_stream_u32(tile + kTileNibbleBytes + 4 * g);
        sv[u].y = 0;
      }
    }
#pragma unroll
    for (int u = 0; u < kPrefetch; ++u) {
      // no branch here either: past the last k-tile every activation load gives 0 (k >= n_in), so the reloaded
      // last tile (finite weights: NaN scales are refused at repack) adds exactly 0
      const int64_t kt = kb + static_cast<int64_t>(u) * step;
      const uint32_t words[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
      const uint32_t sc[2] = {sv[u].x, sv[u].y};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t a[4];
        lane_a_fragment<F>(words, sc, j, mx_shift, a);
        const int64_t k = kt * kTileK + j * 16 + 2 * t;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          mma_m16n8k16_bf16(acc[nt], a, load_x2(xrow[nt], k, n_in, (present >> nt) & 1u),
                            load_x2(xrow[nt], k + 8, n_in, (present >> nt) & 1u));
      }
    }
  }
}

// sums the warps' accumulators into warp 0's (fixed order: deterministic). Returns true in warp 0.
template <int NT>
__device__ __forceinline__ bool block_reduce(float (&acc)[NT][4]) {
  __shared__ float red[kWarps - 1][NT * 4][32];  // [warp - 1, accumulator, lane] f32
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (warp > 0) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) red[warp - 1][nt * 4 + i][lane] = acc[nt][i];
  }
  __syncthreads();
  if (warp != 0) return false;
#pragma unroll
  for (int w = 0; w < kWarps - 1; ++w)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[nt][i] += red[w][nt * 4 + i][lane];
  return true;
}

__device__ __forceinline__ void store_out(float* y, int64_t i, float v) { y[i] = v; }
__device__ __forceinline__ void store_out(uint16_t* y, int64_t i, float v) { y[i] = f32_to_bf16_bits(v); }

// y [n_tok, n_out] = x [n_tok, n_in] W^T * epilogue_scale + bias. Block (row tile blockIdx.x, tokens blockIdx.y * 8 NT).
template <Fp4Format F, int NT, class Out>
__global__ void __launch_bounds__(kWarps * 32) fp4w_matmul_kernel(Fp4MatrixView w, const uint16_t* __restrict__ x,
                                                                   int64_t n_tok, const float* __restrict__ bias,
                                                                   Out* __restrict__ y) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t rt = blockIdx.x, tok0 = static_cast<int64_t>(blockIdx.y) * NT * 8;
  const uint16_t* xrow[NT];
  unsigned present = 0;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int64_t tok = tok0 + nt * 8 + g;
    xrow[nt] = x + (tok < n_tok ? tok : n_tok - 1) * w.n_in;
    present |= static_cast<unsigned>(tok < n_tok) << nt;
  }
  float acc[NT][4] = {};
  warp_fp4_mma<F, NT>(w.tiles + rt * w.n_k_tiles * kTileBytes<F>, w.n_k_tiles, warp, kWarps, w.mx_shift, xrow, present,
                      w.n_in, acc);
  if (!block_reduce<NT>(acc)) return;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t o = tile_source_row(rt, i < 2 ? g : g + 8, w.paired);
      const int64_t tok = tok0 + nt * 8 + 2 * t + (i & 1);
      if (o < w.n_out && tok < n_tok) store_out(y, tok * w.n_out + o, acc[nt][i] * w.epilogue_scale + (bias ? bias[o] : 0.0f));
    }
  }
}

// the f32-activation variant: one warp per (output row, token), f32 FMA over the same exact BF16 weights, read
// through the repack's index maps (not the fragment path): y [n_tok, n_out] f32.
template <Fp4Format F>
__global__ void __launch_bounds__(256) f32_fp4w_matmul_kernel(Fp4MatrixView w, const float* __restrict__ x, int64_t n_tok,
                                                              const float* __restrict__ bias, float* __restrict__ y) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * 8 + warp, tok = blockIdx.y;
  if (o >= w.n_out || tok >= n_tok) return;
  int64_t rt;
  int r;
  if (w.paired) {
    rt = (o / 2) / 8;
    r = static_cast<int>((o / 2) % 8 + 8 * (o % 2));
  } else {
    rt = o / kTileRows;
    r = static_cast<int>(o % kTileRows);
  }
  float s = 0.0f;
  for (int64_t i = lane; i < w.n_in; i += 32) {
    const uint8_t* tile = w.tiles + (rt * w.n_k_tiles + i / kTileK) * kTileBytes<F>;
    const int k = static_cast<int>(i % kTileK);
    const NibbleSlot sl = tile_nibble_slot(r, k);
    const uint32_t q = (tile[sl.lane * 16 + sl.word * 4 + sl.nibble / 2] >> (4 * (sl.nibble % 2))) & 0xfu;
    const uint32_t sb = tile[kTileNibbleBytes + tile_scale_slot(F, r, k / scale_block(F))];
    const uint32_t S = F == Fp4Format::kNvfp4 ? e4m3_to_bf16_scale_bits(sb) : e8m0_to_bf16_scale_bits(sb, w.mx_shift);
    const float wv = bf16_bits_to_f32(bf16x2_mul(e2m1_to_bf16_scaled_bits(q), S) & 0xffffu);
    s = fmaf(wv, x[tok * w.n_in + i], s);
  }
  s = warp_sum(s);
  if (lane == 0) y[tok * w.n_out + o] = s * w.epilogue_scale + (bias ? bias[o] : 0.0f);
}

// ---- MoE ----

// groups (token, slot) pairs by expert, in token order inside each expert (deterministic): one block.
__global__ void moe_group_kernel(const int32_t* __restrict__ topk_idx, const float* __restrict__ topk_w, int n_pairs, int k,
                                 int n_experts, int32_t* __restrict__ offsets, int32_t* __restrict__ pair_token,
                                 float* __restrict__ pair_weight, int32_t* __restrict__ pair_of_slot) {
  extern __shared__ int32_t count[];  // [n_experts] pairs per expert
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) count[e] = 0;
  __syncthreads();
  for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
    const int e = topk_idx[p];
    if (e >= 0 && e < n_experts) atomicAdd(&count[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = 0;
    for (int e = 0; e < n_experts; ++e) {
      offsets[e] = run;
      run += count[e];
      count[e] = offsets[e];
    }
    offsets[n_experts] = run;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) pair_of_slot[p] = -1;  // out-of-range ids contribute 0
  __syncthreads();
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
    int pos = count[e];
    for (int p = 0; p < n_pairs; ++p) {
      if (topk_idx[p] != e) continue;
      pair_token[pos] = p / k;
      pair_weight[pos] = topk_w[p];
      pair_of_slot[p] = pos;
      ++pos;
    }
  }
}

// gate_up and the clamped SwiGLU: block (row tile of 8 gate/up pairs, expert, 16-pair chunk of the expert's pairs).
// h [n_pairs, n_ff] bf16.
template <Fp4Format F>
__global__ void __launch_bounds__(kWarps * 32) moe_gate_up_swiglu_kernel(Fp4ExpertsView w, const uint16_t* __restrict__ x,
                                                                          const int32_t* __restrict__ offsets,
                                                                          const int32_t* __restrict__ pair_token,
                                                                          const float* __restrict__ bias, SwigluParams sw,
                                                                          uint16_t* __restrict__ h) {
  const int e = blockIdx.y;
  const int p0 = offsets[e] + static_cast<int>(blockIdx.z) * 16, p1 = offsets[e + 1];
  if (p0 >= p1) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t rt = blockIdx.x, n_embd = w.n_in, n_ff = w.n_out / 2;
  const uint16_t* xrow[2];
  unsigned present = 0;
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int p = p0 + nt * 8 + g;
    xrow[nt] = x + static_cast<int64_t>(pair_token[p < p1 ? p : p1 - 1]) * n_embd;
    present |= static_cast<unsigned>(p < p1) << nt;
  }
  float acc[2][4] = {};
  const uint8_t* tiles = w.tiles + e * w.expert_stride + rt * w.n_k_tiles * kTileBytes<F>;
  warp_fp4_mma<F, 2>(tiles, w.n_k_tiles, warp, kWarps, w.mx_shift ? w.mx_shift[e] : 0, xrow, present, n_embd, acc);
  if (!block_reduce<2>(acc)) return;
  const float epi = w.epilogue_scale[e];
  const int64_t j = rt * 8 + g;  // c0/c1 = gate_j, c2/c3 = up_j (tile_layout.h)
  if (j >= n_ff) return;
  const float bg = bias[e * 2 * n_ff + 2 * j], bu = bias[e * 2 * n_ff + 2 * j + 1];
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int p = p0 + nt * 8 + 2 * t + half;
      if (p >= p1) continue;
      const float gate = fminf(acc[nt][half] * epi + bg, sw.limit);
      const float up = fminf(fmaxf(acc[nt][2 + half] * epi + bu, -sw.limit), sw.limit);
      const float glu = gate / (1.0f + expf(-sw.alpha * gate));
      h[static_cast<int64_t>(p) * n_ff + j] = f32_to_bf16_bits((up + 1.0f) * glu);
    }
  }
}

// down with the bias and the router weight in the epilogue: y_pair [n_pairs, n_embd] f32.
template <Fp4Format F>
__global__ void __launch_bounds__(kWarps * 32) moe_down_kernel(Fp4ExpertsView w, const uint16_t* __restrict__ h,
                                                                const int32_t* __restrict__ offsets,
                                                                const float* __restrict__ pair_weight,
                                                                const float* __restrict__ bias, float* __restrict__ y_pair) {
  const int e = blockIdx.y;
  const int p0 = offsets[e] + static_cast<int>(blockIdx.z) * 16, p1 = offsets[e + 1];
  if (p0 >= p1) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t rt = blockIdx.x, n_ff = w.n_in, n_embd = w.n_out;
  const uint16_t* hrow[2];
  unsigned present = 0;
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int p = p0 + nt * 8 + g;
    hrow[nt] = h + static_cast<int64_t>(p < p1 ? p : p1 - 1) * n_ff;
    present |= static_cast<unsigned>(p < p1) << nt;
  }
  float acc[2][4] = {};
  const uint8_t* tiles = w.tiles + e * w.expert_stride + rt * w.n_k_tiles * kTileBytes<F>;
  warp_fp4_mma<F, 2>(tiles, w.n_k_tiles, warp, kWarps, w.mx_shift ? w.mx_shift[e] : 0, hrow, present, n_ff, acc);
  if (!block_reduce<2>(acc)) return;
  const float epi = w.epilogue_scale[e];
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t o = rt * kTileRows + (i < 2 ? g : g + 8);
      const int p = p0 + nt * 8 + 2 * t + (i & 1);
      if (o < n_embd && p < p1) y_pair[static_cast<int64_t>(p) * n_embd + o] = (acc[nt][i] * epi + bias[e * n_embd + o]) * pair_weight[p];
    }
  }
}

// y [n_tok, n_embd] = sum over slots, in slot order, of the pairs' rows.
__global__ void moe_combine_kernel(const float* __restrict__ y_pair, const int32_t* __restrict__ pair_of_slot, int64_t n_tok,
                                   int k, int64_t n_embd, float* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tok * n_embd) return;
  const int64_t tok = i / n_embd, o = i % n_embd;
  float s = 0.0f;
  for (int slot = 0; slot < k; ++slot) {
    const int p = pair_of_slot[tok * k + slot];
    if (p >= 0) s += y_pair[static_cast<int64_t>(p) * n_embd + o];
  }
  y[i] = s;
}

__global__ void dequant_table_kernel(uint16_t* out, uint16_t* out_mx) {
  const uint32_t s = threadIdx.x;
  for (uint32_t q = 0; q < 16; ++q) {
    out[s * 16 + q] = static_cast<uint16_t>(bf16x2_mul(e2m1_to_bf16_scaled_bits(q), e4m3_to_bf16_scale_bits(s)) & 0xffffu);
    if (s < 255)
      out_mx[s * 16 + q] = static_cast<uint16_t>(
          bf16x2_mul(e2m1_to_bf16_scaled_bits(q), e8m0_to_bf16_scale_bits(s, static_cast<int>(s) - 126)) & 0xffffu);
  }
}

__device__ __forceinline__ uint32_t hash32(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + i;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}

__global__ void fill_tiles_kernel(uint8_t* tiles, int64_t n_bytes, int tile_bytes, int mx, uint64_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_bytes;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t r = hash32(seed, static_cast<uint64_t>(i));
    const bool scale = (i % tile_bytes) >= kTileNibbleBytes;
    tiles[i] = static_cast<uint8_t>(!scale ? r : mx ? 120 + r % 11 : 0x20 + r % 0x28);
  }
}

__global__ void fill_bf16_kernel(uint16_t* x, int64_t n, uint64_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(hash32(seed, static_cast<uint64_t>(i)) >> 8) * 0x1p-24f;  // [0, 1)
    x[i] = f32_to_bf16_bits(4.0f * u - 2.0f);
  }
}

Status check_view(const char* op, const Fp4MatrixView& w, int64_t n_tok, const void* x, const void* y) {
  if (w.tiles == nullptr || x == nullptr || y == nullptr) return error(std::string(op) + ": null pointer");
  if (n_tok <= 0 || w.n_out <= 0 || w.n_in <= 0 || w.n_k_tiles * kTileK < w.n_in || w.n_in % 16 != 0)
    return error(std::string(op) + ": bad shape " + shape_str(w.n_out, w.n_in, n_tok));
  if ((n_tok + 15) / 16 > 65535) return error(std::string(op) + ": too many tokens " + std::to_string(n_tok));
  return ok_status();
}

template <int NT, class Out>
void launch_matmul(const Fp4MatrixView& w, const uint16_t* x, int64_t n_tok, const float* bias, Out* y, Stream s) {
  const dim3 grid(static_cast<unsigned>(w.n_row_tiles), static_cast<unsigned>((n_tok + NT * 8 - 1) / (NT * 8)));
  if (w.format == Fp4Format::kNvfp4)
    fp4w_matmul_kernel<Fp4Format::kNvfp4, NT, Out><<<grid, kWarps * 32, 0, s>>>(w, x, n_tok, bias, y);
  else
    fp4w_matmul_kernel<Fp4Format::kMxfp4, NT, Out><<<grid, kWarps * 32, 0, s>>>(w, x, n_tok, bias, y);
}

template <class Out>
Status matmul_any(const char* op, const Fp4MatrixView& w, const uint16_t* x, int64_t n_tok, const float* bias, Out* y, Stream s) {
  OSS4_TRY(check_view(op, w, n_tok, x, y));
  if (n_tok <= 8)
    launch_matmul<1>(w, x, n_tok, bias, y, s);
  else
    launch_matmul<2>(w, x, n_tok, bias, y, s);
  return launch_status(op, shape_str(w.n_out, w.n_in, n_tok));
}

}  // namespace

Status bf16_fp4w_matmul(const Fp4MatrixView& w, const uint16_t* x, int64_t n_tok, const float* bias, float* y, Stream s) {
  return matmul_any("bf16_fp4w_matmul", w, x, n_tok, bias, y, s);
}

Status bf16_fp4w_matmul_bf16out(const Fp4MatrixView& w, const uint16_t* x, int64_t n_tok, const float* bias, uint16_t* y,
                                Stream s) {
  return matmul_any("bf16_fp4w_matmul_bf16out", w, x, n_tok, bias, y, s);
}

Status f32_fp4w_matmul(const Fp4MatrixView& w, const float* x, int64_t n_tok, const float* bias, float* y, Stream s) {
  OSS4_TRY(check_view("f32_fp4w_matmul", w, n_tok, x, y));
  const dim3 grid(static_cast<unsigned>((w.n_out + 7) / 8), static_cast<unsigned>(n_tok));
  if (w.format == Fp4Format::kNvfp4)
    f32_fp4w_matmul_kernel<Fp4Format::kNvfp4><<<grid, 256, 0, s>>>(w, x, n_tok, bias, y);
  else
    f32_fp4w_matmul_kernel<Fp4Format::kMxfp4><<<grid, 256, 0, s>>>(w, x, n_tok, bias, y);
  return launch_status("f32_fp4w_matmul", shape_str(w.n_out, w.n_in, n_tok));
}

// (moe_scratch_bytes and moe_scratch_carve: scratch.cpp, plain C++, so the device memory plan counts the same bytes)

Status bf16_fp4w_moe(const Fp4ExpertsView& gu, const Fp4ExpertsView& dn, int64_t n_experts, const uint16_t* x, int64_t n_tok,
                     const int32_t* topk_idx, const float* topk_w, int64_t k, const float* gate_up_bias,
                     const float* down_bias, SwigluParams sw, const MoeScratch& sc, float* y, Stream s) {
  const std::string shapes = "[n_tok " + std::to_string(n_tok) + ", k " + std::to_string(k) + ", experts " +
                             std::to_string(n_experts) + ", n_embd " + std::to_string(gu.n_in) + ", n_ff " +
                             std::to_string(gu.n_out / 2) + "]";
  if (!gu.paired || dn.paired || gu.format != dn.format || gu.n_out != 2 * dn.n_in || dn.n_out != gu.n_in ||
      gu.n_in % 16 != 0 || dn.n_in % 16 != 0)
    return error("bf16_fp4w_moe: gate_up must be paired [2 n_ff, n_embd] and down [n_embd, n_ff], one format " + shapes);
  if (n_tok <= 0 || k <= 0 || n_experts <= 0 || n_experts > 1024 || n_tok * k > (int64_t{1} << 30) ||
      (n_tok * k + 15) / 16 > 65535)
    return error("bf16_fp4w_moe: bad sizes " + shapes);
  if (!x || !topk_idx || !topk_w || !gate_up_bias || !down_bias || !y || !gu.epilogue_scale || !dn.epilogue_scale ||
      !sc.expert_offsets || !sc.h || !sc.y_pair)
    return error("bf16_fp4w_moe: null pointer " + shapes);
  const int n_pairs = static_cast<int>(n_tok * k);
  moe_group_kernel<<<1, 256, static_cast<size_t>(n_experts) * 4, s>>>(topk_idx, topk_w, n_pairs, static_cast<int>(k),
                                                                    static_cast<int>(n_experts), sc.expert_offsets,
                                                                    sc.pair_token, sc.pair_weight, sc.pair_of_slot);
  // enough 16-pair chunks for one expert to hold every pair (even if a router repeated an id within a token);
  // the chunks past an expert's pairs exit at once
  const unsigned chunks = static_cast<unsigned>((n_pairs + 15) / 16);
  const dim3 g1(static_cast<unsigned>(gu.n_row_tiles), static_cast<unsigned>(n_experts), chunks);
  const dim3 g2(static_cast<unsigned>(dn.n_row_tiles), static_cast<unsigned>(n_experts), chunks);
  if (gu.format == Fp4Format::kNvfp4) {
    moe_gate_up_swiglu_kernel<Fp4Format::kNvfp4><<<g1, kWarps * 32, 0, s>>>(gu, x, sc.expert_offsets, sc.pair_token, gate_up_bias, sw, sc.h);
    moe_down_kernel<Fp4Format::kNvfp4><<<g2, kWarps * 32, 0, s>>>(dn, sc.h, sc.expert_offsets, sc.pair_weight, down_bias, sc.y_pair);
  } else {
    moe_gate_up_swiglu_kernel<Fp4Format::kMxfp4><<<g1, kWarps * 32, 0, s>>>(gu, x, sc.expert_offsets, sc.pair_token, gate_up_bias, sw, sc.h);
    moe_down_kernel<Fp4Format::kMxfp4><<<g2, kWarps * 32, 0, s>>>(dn, sc.h, sc.expert_offsets, sc.pair_weight, down_bias, sc.y_pair);
  }
  const int64_t n_out = n_tok * dn.n_out;
  moe_combine_kernel<<<static_cast<unsigned>((n_out + 255) / 256), 256, 0, s>>>(sc.y_pair, sc.pair_of_slot, n_tok,
                                                                               static_cast<int>(k), dn.n_out, y);
  return launch_status("bf16_fp4w_moe", shapes);
}

Status fill_random_fp4_tiles(uint8_t* tiles, int64_t n_tiles, Fp4Format f, uint64_t seed, Stream s) {
  if (tiles == nullptr || n_tiles <= 0) return error("fill_random_fp4_tiles: bad arguments");
  fill_tiles_kernel<<<1024, 256, 0, s>>>(tiles, n_tiles * tile_bytes(f), tile_bytes(f), f == Fp4Format::kMxfp4, seed);
  return launch_status("fill_random_fp4_tiles", "[" + std::to_string(n_tiles) + " tiles]");
}

Status fill_random_bf16(uint16_t* x, int64_t n, uint64_t seed, Stream s) {
  if (x == nullptr || n <= 0) return error("fill_random_bf16: bad arguments");
  fill_bf16_kernel<<<256, 256, 0, s>>>(x, n, seed);
  return launch_status("fill_random_bf16", "[" + std::to_string(n) + "]");
}

Status fp4_dequant_table_on_device(uint16_t* out_host, uint16_t* out_mx_host) {
  uint16_t* d = nullptr;  // [256 + 255, 16] bf16 bits
  if (cudaMalloc(&d, (256 + 255) * 16 * 2) != cudaSuccess) return error("fp4_dequant_table_on_device: cudaMalloc failed");
  dequant_table_kernel<<<1, 256>>>(d, d + 256 * 16);
  Status st = launch_status("fp4_dequant_table_on_device", "");
  if (st.ok() && cudaMemcpy(out_host, d, 256 * 16 * 2, cudaMemcpyDeviceToHost) != cudaSuccess)
    st = error("fp4_dequant_table_on_device: copy failed");
  if (st.ok() && cudaMemcpy(out_mx_host, d + 256 * 16, 255 * 16 * 2, cudaMemcpyDeviceToHost) != cudaSuccess)
    st = error("fp4_dequant_table_on_device: copy failed");
  cudaFree(d);
  return st;
}

}  // namespace oss4::cuda
