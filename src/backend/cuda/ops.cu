// The CUDA backend's small ops (ops.h): embedding rows, RMSNorm, residual add, RoPE with the K/V store into pages,
// split attention with sinks and its combine, the router's top-k. The decisions (key ranges, online softmax,
// sink, page addresses, top-k order) are the __host__ __device__ code of attn_math.h, kv_pages.h and topk.h.
#include "backend/cuda/ops.h"

#include <string>

#include "backend/cuda/attn_math.h"
#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/topk.h"

namespace oss4::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kAttnWarps = 4;     // heads per block of the attention kernels, one warp each
constexpr int kMaxHeadDim = 128;  // 4 dims per lane in the accumulators

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// the sum over a block of 256 threads, the same value in every thread (warp sums, then the 8 in order)
__device__ float block_sum_256(float v, float* sh /* [8] */) {
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s += sh[i];
  return s;
}

__global__ void embed_kernel(const void* table, int table_f32, int64_t n_vocab, int64_t n, const int32_t* ids, float* x) {
  const int64_t t = blockIdx.x;
  const int64_t id = ids[t];
  float* xr = x + t * n;
  if (id < 0 || id >= n_vocab) {  // the host checks ids; one that got past poisons its row instead of reading out of bounds
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = __int_as_float(0x7fc00000);
    return;
  }
  if (table_f32) {
    const float* row = static_cast<const float*>(table) + id * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = row[i];
  } else {
    const uint16_t* row = static_cast<const uint16_t*>(table) + id * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = bf16_bits_to_f32(row[i]);
  }
}

// (add: x += add first, written back: the residual add fused into the norm that follows it)
__global__ void __launch_bounds__(256) rmsnorm_kernel(float* x, const float* add, const float* w, int64_t n, float eps, float* y,
                                                      uint16_t* y16) {
  __shared__ float sh[8];
  float* xr = x + blockIdx.x * n;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += 256) {
    if (add) xr[i] += add[blockIdx.x * n + i];  // (each thread reads back only what it wrote)
    ss += xr[i] * xr[i];
  }
  const float r = 1.0f / sqrtf(block_sum_256(ss, sh) / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += 256) {
    const float v = w[i] * (xr[i] * r);
    if (y) y[blockIdx.x * n + i] = v;
    if (y16) y16[blockIdx.x * n + i] = f32_to_bf16_bits(v);
  }
}

__global__ void add_kernel(float* acc, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) acc[i] += y[i];
}

__global__ void to_bf16_kernel(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = f32_to_bf16_bits(x[i]);
}

__global__ void gather_kernel(const uint16_t* src, const int32_t* idx, int64_t width, uint16_t* dst) {
  const uint16_t* s = src + int64_t{idx[blockIdx.x]} * width;
  uint16_t* d = dst + blockIdx.x * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) d[i] = s[i];
}

__global__ void rope_store_kernel(RowsView rows, LayerKv lk, float* q, float* k, const float* v, int n_heads, int n_kv,
                                  int hd, const float* rope_cs) {
  const int64_t r = blockIdx.x;
  const int64_t pos = rows.pos[r];
  const int half = hd / 2;
  const float* cs = rope_cs + pos * hd;  // [cos x half, sin x half]
  for (int e = threadIdx.x; e < n_heads * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    const float c = cs[i], sn = cs[half + i];
    float* qh = q + (r * n_heads + h) * hd;
    const float x1 = qh[i], x2 = qh[i + half];
    qh[i] = x1 * c - x2 * sn;
    qh[i + half] = x2 * c + x1 * sn;
  }
  const PageTable t = rows.tables[rows.seq[r] * 2 + lk.group];
  const int64_t kv_dim = int64_t{n_kv} * hd;
  uint16_t* krow = kv_row(t, lk.geom, lk.gl, 0, pos);
  uint16_t* vrow = kv_row(t, lk.geom, lk.gl, 1, pos);
  for (int e = threadIdx.x; e < n_kv * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    const float c = cs[i], sn = cs[half + i];
    float* kh = k + r * kv_dim + h * hd;
    const float x1 = kh[i], x2 = kh[i + half];
    const float y1 = x1 * c - x2 * sn, y2 = x2 * c + x1 * sn;
    kh[i] = y1;
    kh[i + half] = y2;
    krow[h * hd + i] = f32_to_bf16_bits(y1);
    krow[h * hd + i + half] = f32_to_bf16_bits(y2);
  }
  for (int64_t e = threadIdx.x; e < kv_dim; e += blockDim.x) vrow[e] = f32_to_bf16_bits(v[r * kv_dim + e]);
}

// one warp per (row, head, split): lanes take a key each for the scores (a 16-byte load per 8 dims of K), the block
// of 32 is folded into the running softmax (attn_math.h), then every lane adds the 32 p·v for the dims it owns.
__global__ void __launch_bounds__(kAttnWarps * 32) attention_partial_kernel(RowsView rows, LayerKv lk, const float* q, int n_heads,
                                                                            int n_kv, int hd, int64_t window, float scale,
                                                                            int n_splits_max, SoftmaxPart* parts, float* accs) {
  __shared__ float qs[kAttnWarps][kMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.x * kAttnWarps + warp;
  const int64_t r = blockIdx.y;
  const int j = blockIdx.z;
  if (h >= n_heads) return;  // (a whole warp leaves; no block-wide barrier follows)
  for (int i = lane; i < hd; i += 32) qs[warp][i] = q[(r * n_heads + h) * hd + i];
  __syncwarp();
  const KeyRange kr = split_keys(query_keys(rows.pos[r], window), j);
  const PageTable t = rows.tables[rows.seq[r] * 2 + lk.group];
  const int64_t koff = int64_t{h / (n_heads / n_kv)} * hd;
  SoftmaxPart sp;
  float acc[kMaxHeadDim / 32] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t b = kr.lo; b < kr.hi; b += 32) {
    const int64_t key = b + lane;
    const bool valid = key < kr.hi;
    float sc = -INFINITY;
    if (valid) {
      const uint16_t* kp = kv_row(t, lk.geom, lk.gl, 0, key) + koff;
      float d = 0.0f;
      for (int i = 0; i < hd; i += 8) {
        const uint4 w = *reinterpret_cast<const uint4*>(kp + i);  // (an array of the 4 words spills on sm_100f)
        const float* qq = &qs[warp][i];
        d += qq[0] * bf16_bits_to_f32(w.x & 0xffffu) + qq[1] * bf16_bits_to_f32(w.x >> 16);
        d += qq[2] * bf16_bits_to_f32(w.y & 0xffffu) + qq[3] * bf16_bits_to_f32(w.y >> 16);
        d += qq[4] * bf16_bits_to_f32(w.z & 0xffffu) + qq[5] * bf16_bits_to_f32(w.z >> 16);
        d += qq[6] * bf16_bits_to_f32(w.w & 0xffffu) + qq[7] * bf16_bits_to_f32(w.w >> 16);
      }
      sc = d * scale;
    }
    const float m_new = fmaxf(sp.m, warp_max(sc));
    const float p = valid ? expf(sc - m_new) : 0.0f;
    const float c = online_update(sp, m_new, warp_sum(p));
#pragma unroll
    for (int i = 0; i < kMaxHeadDim / 32; ++i) acc[i] *= c;
    const int nb = kr.hi - b < 32 ? static_cast<int>(kr.hi - b) : 32;
    for (int jj = 0; jj < nb; ++jj) {
      const float pj = __shfl_sync(kFull, p, jj);
      const uint16_t* vp = kv_row(t, lk.geom, lk.gl, 1, b + jj) + koff;
#pragma unroll
      for (int i = 0; i < kMaxHeadDim / 32; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) acc[i] += pj * bf16_bits_to_f32(vp[d]);
      }
    }
  }
  const int64_t slot = (r * n_heads + h) * n_splits_max + j;
  if (lane == 0) parts[slot] = sp;
#pragma unroll
  for (int i = 0; i < kMaxHeadDim / 32; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) accs[slot * hd + d] = acc[i];
  }
}

// one warp per (row, head): the row's splits combined with the head's sink (attn_math.h)
__global__ void __launch_bounds__(kAttnWarps * 32) attention_combine_kernel(RowsView rows, int n_heads, int hd, int64_t window,
                                                                            const float* sinks, int n_splits_max,
                                                                            const SoftmaxPart* parts, const float* accs,
                                                                            float* out, uint16_t* out16) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.x * kAttnWarps + warp;
  const int64_t r = blockIdx.y;
  if (h >= n_heads) return;
  const KeyRange kr = query_keys(rows.pos[r], window);
  const int64_t n = n_key_splits(kr.hi - kr.lo);
  const int64_t base = (r * n_heads + h) * n_splits_max;
  const SinkCombine c = sink_combine(parts + base, n, sinks ? sinks[h] : 0.0f, sinks != nullptr);
  for (int d = lane; d < hd; d += 32) {
    float o = 0.0f;
    for (int64_t jj = 0; jj < n; ++jj) o += accs[(base + jj) * hd + d] * chunk_weight(c, parts[base + jj]);
    const int64_t i = (r * n_heads + h) * hd + d;
    if (out) out[i] = o;
    if (out16) out16[i] = f32_to_bf16_bits(o);
  }
}

// the device's side of flash_attention.h's Warp policy
struct DeviceWarp {
  __device__ int lane() const { return static_cast<int>(threadIdx.x & 31); }
  __device__ float shfl_xor(float v, int mask) const { return __shfl_xor_sync(kFull, v, mask); }
  __device__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) const { mma_m16n8k16_bf16(c, a, b0, b1); }
};

// one warp per (16 query rows, head), kAttnWarps heads per block
template <int HD>
__global__ void __launch_bounds__(kAttnWarps * 32) flash_prefill_kernel(FlashArgs a) {
  const int h = static_cast<int>(blockIdx.y) * kAttnWarps + static_cast<int>(threadIdx.x / 32);
  if (h >= a.n_heads) return;  // (a whole warp)
  DeviceWarp w;
  flash_attention_tile<HD>(w, a, blockIdx.x, h);
}

__global__ void topk_kernel(const float* logits, int64_t n_tok, int n_exp, int k, int32_t* idx, float* w) {
  const int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (t < n_tok) topk_softmax_row(logits + t * n_exp, n_exp, k, idx + t * k, w + t * k);
}

unsigned grid_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

std::string dims(std::initializer_list<std::pair<const char*, int64_t>> d) {
  std::string s = "[";
  for (const auto& [k, v] : d) s += (s.size() > 1 ? ", " : "") + std::string(k) + " " + std::to_string(v);
  return s + "]";
}

}  // namespace

Status embed_rows(const void* table, bool table_f32, int64_t n_vocab, int64_t n, const int32_t* ids, int64_t n_tok, float* x,
                  Stream s) {
  const std::string sh = dims({{"n_vocab", n_vocab}, {"n", n}, {"n_tok", n_tok}});
  if (!table || !ids || !x || n <= 0 || n_tok <= 0 || n_tok > 2147483647) return error("embed_rows: bad arguments " + sh);
  embed_kernel<<<static_cast<unsigned>(n_tok), 256, 0, s>>>(table, table_f32 ? 1 : 0, n_vocab, n, ids, x);
  return launch_status("embed_rows", sh);
}

Status f32_rmsnorm(const float* x, const float* w, int64_t n_tok, int64_t n, float eps, float* y, uint16_t* y16, Stream s) {
  const std::string sh = dims({{"n_tok", n_tok}, {"n", n}});
  if (!x || !w || (!y && !y16) || n <= 0 || n_tok <= 0 || n_tok > 2147483647) return error("f32_rmsnorm: bad arguments " + sh);
  rmsnorm_kernel<<<static_cast<unsigned>(n_tok), 256, 0, s>>>(const_cast<float*>(x), nullptr, w, n, eps, y, y16);
  return launch_status("f32_rmsnorm", sh);
}

Status f32_add_rmsnorm(float* x, const float* add, const float* w, int64_t n_tok, int64_t n, float eps, float* y, uint16_t* y16,
                       Stream s) {
  const std::string sh = dims({{"n_tok", n_tok}, {"n", n}});
  if (!x || !add || !w || (!y && !y16) || n <= 0 || n_tok <= 0 || n_tok > 2147483647 || y == x)
    return error("f32_add_rmsnorm: bad arguments " + sh);
  rmsnorm_kernel<<<static_cast<unsigned>(n_tok), 256, 0, s>>>(x, add, w, n, eps, y, y16);
  return launch_status("f32_add_rmsnorm", sh);
}

Status f32_add(float* acc, const float* y, int64_t n, Stream s) {
  if (!acc || !y || n <= 0) return error("f32_add: bad arguments " + dims({{"n", n}}));
  add_kernel<<<grid_for(n, 256), 256, 0, s>>>(acc, y, n);
  return launch_status("f32_add", dims({{"n", n}}));
}

Status f32_to_bf16(const float* x, int64_t n, uint16_t* y, Stream s) {
  if (!x || !y || n <= 0) return error("f32_to_bf16: bad arguments " + dims({{"n", n}}));
  to_bf16_kernel<<<grid_for(n, 256), 256, 0, s>>>(x, n, y);
  return launch_status("f32_to_bf16", dims({{"n", n}}));
}

Status gather_rows_bf16(const uint16_t* src, const int32_t* idx, int64_t n_idx, int64_t width, uint16_t* dst, Stream s) {
  const std::string sh = dims({{"n_idx", n_idx}, {"width", width}});
  if (!src || !idx || !dst || n_idx <= 0 || width <= 0 || n_idx > 2147483647) return error("gather_rows_bf16: bad arguments " + sh);
  gather_kernel<<<static_cast<unsigned>(n_idx), 256, 0, s>>>(src, idx, width, dst);
  return launch_status("gather_rows_bf16", sh);
}

Status rope_store_kv(const RowsView& rows, const LayerKv& lk, float* q, float* k, const float* v, int64_t n_heads,
                     int64_t n_kv_heads, int64_t head_dim, const float* rope_cs, Stream s) {
  const std::string sh = dims({{"n_rows", rows.n_rows}, {"n_heads", n_heads}, {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim}});
  if (!rows.pos || !rows.seq || !rows.tables || !q || !k || !v || !rope_cs || rows.n_rows <= 0 || rows.n_rows > 2147483647 ||
      head_dim % 2 != 0 || n_heads <= 0 || n_kv_heads <= 0 || lk.geom.kv_dim != n_kv_heads * head_dim)
    return error("rope_store_kv: bad arguments " + sh);
  rope_store_kernel<<<static_cast<unsigned>(rows.n_rows), 128, 0, s>>>(rows, lk, q, k, v, static_cast<int>(n_heads),
                                                                      static_cast<int>(n_kv_heads), static_cast<int>(head_dim),
                                                                      rope_cs);
  return launch_status("rope_store_kv", sh);
}


Status attention(const RowsView& rows, const LayerKv& lk, const float* q, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                 int64_t window, const float* sinks, float scale, int64_t max_keys, void* scratch, float* out, uint16_t* out16,
                 Stream s) {
  const std::string sh = dims({{"n_rows", rows.n_rows}, {"n_heads", n_heads}, {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim},
                               {"max_keys", max_keys}, {"window", window}});
  if (!rows.pos || !rows.seq || !rows.tables || !q || !scratch || (!out && !out16) || rows.n_rows <= 0 ||
      rows.n_rows > 65535 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || head_dim % 8 != 0 ||
      head_dim > kMaxHeadDim || max_keys <= 0 || lk.geom.kv_dim != n_kv_heads * head_dim)
    return error("attention: bad arguments " + sh);
  const int64_t n_splits = n_key_splits(max_keys);
  if (n_splits > 65535) return error("attention: too many keys " + sh);
  const int64_t slots = rows.n_rows * n_heads * n_splits;
  auto* parts = static_cast<SoftmaxPart*>(scratch);  // (the carve of attention_scratch_bytes, scratch.cpp)
  auto* accs = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + attention_scratch_acc_offset(slots));
  const unsigned hb = static_cast<unsigned>((n_heads + kAttnWarps - 1) / kAttnWarps);
  attention_partial_kernel<<<dim3(hb, static_cast<unsigned>(rows.n_rows), static_cast<unsigned>(n_splits)), kAttnWarps * 32, 0, s>>>(
      rows, lk, q, static_cast<int>(n_heads), static_cast<int>(n_kv_heads), static_cast<int>(head_dim), window, scale,
      static_cast<int>(n_splits), parts, accs);
  OSS4_TRY(launch_status("attention (partials)", sh));
  attention_combine_kernel<<<dim3(hb, static_cast<unsigned>(rows.n_rows)), kAttnWarps * 32, 0, s>>>(
      rows, static_cast<int>(n_heads), static_cast<int>(head_dim), window, sinks, static_cast<int>(n_splits), parts, accs, out, out16);
  return launch_status("attention (combine)", sh);
}

Status attention_prefill(const FlashArgs& a, int64_t head_dim, Stream s) {
  const std::string sh = dims({{"n_rows", a.n_rows}, {"p0", a.p0}, {"n_heads", a.n_heads}, {"n_kv_heads", a.n_kv_heads},
                               {"head_dim", head_dim}, {"window", a.window}});
  if (!a.q || !a.table.pages || (!a.out && !a.out16) || a.n_rows <= 0 || a.p0 < 0 || a.n_heads <= 0 || a.n_kv_heads <= 0 ||
      a.n_heads % a.n_kv_heads != 0 || a.geom.kv_dim != a.n_kv_heads * head_dim || (a.n_rows + 15) / 16 > 2147483647)
    return error("attention_prefill: bad arguments " + sh);
  const dim3 grid(static_cast<unsigned>((a.n_rows + 15) / 16), static_cast<unsigned>((a.n_heads + kAttnWarps - 1) / kAttnWarps));
  switch (head_dim) {
    // (the head sizes of gpt-oss and of the golden test models; 128 spills on sm_100f at 128 threads per block)
    case 16: flash_prefill_kernel<16><<<grid, kAttnWarps * 32, 0, s>>>(a); break;
    case 64: flash_prefill_kernel<64><<<grid, kAttnWarps * 32, 0, s>>>(a); break;
    default: return error("attention_prefill: head_dim must be 16 or 64 " + sh);
  }
  return launch_status("attention_prefill", sh);
}

Status router_topk(const float* logits, int64_t n_tok, int64_t n_experts, int64_t k, int32_t* idx, float* w, Stream s) {
  const std::string sh = dims({{"n_tok", n_tok}, {"n_experts", n_experts}, {"k", k}});
  if (!logits || !idx || !w || n_tok <= 0 || k <= 0 || k > kMaxTopK || k > n_experts) return error("router_topk: bad arguments " + sh);
  topk_kernel<<<static_cast<unsigned>((n_tok + 127) / 128), 128, 0, s>>>(logits, n_tok, static_cast<int>(n_experts),
                                                                         static_cast<int>(k), idx, w);
  return launch_status("router_topk", sh);
}


}  // namespace oss4::cuda
