// The CPU backend's prepare step: the weights in the layouts its kernels run fastest on, built once from the host
// ModelWeights (which stay as they are).
//  - Row-major NVFP4 matrices (the attention projections of ModelOpt's export, an lm_head stored or quantized as
//    NVFP4) are transposed to the input-major layout of the exported experts ([n_in/2, n_out] codes, [n_in/16, n_out]
//    scales): its decode GEMV reads contiguous rows on every thread and its GEMM shares the experts' panel decoder
//    (measured in docs/benchmarks.md). The bytes stay the same, only their order changes, so results differ from the
//    row-major kernels by f32 summation order alone.
//  - LmHeadType::kNvfp4 quantizes a dense lm_head straight into that layout.
//  - For the AVX-512 rung (WeightLayout::kTiles32), every NVFP4 matrix whose shape fits, experts included, goes into
//    32-output tiles instead (numeric/nvfp4_tiles.h), the layout its VNNI and f32 kernels read in one stream.
// The checkpoint pages a prepared copy replaces are released (they read back from the file if touched).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/options.h"
#include "core/page_buffer.h"
#include "core/thread_pool.h"
#include "model/weights.h"
#include "oss4/status.h"

namespace oss4 {

// whether an NVFP4 matrix [n_out, n_in] runs in the input-major layout (its output tile is 32 wide).
bool repack_wants_in_major(int64_t n_out, int64_t n_in);

struct CpuLayerWeights {
  LinearWeight wq, wk, wv, wo;  // as ModelWeights' LayerWeights, or their input-major or tiled copies
  std::vector<LinearWeight> gate_up, down;  // [n_experts] the same for the experts
};

struct CpuWeights {
  std::vector<CpuLayerWeights> layers;  // [n_layers]
  LinearWeight lm_head;                // [n_vocab, n_embd] as it runs
  std::vector<std::vector<uint8_t>> owned;  // the bytes of a quantized lm_head
  std::vector<PageBuffer> repacked;         // the bytes of the input-major or tiled copies: codes, scales per matrix
  size_t repacked_bytes = 0;           // bytes of the input-major or tiled copies
};

// the weights of m as the CPU kernels run them; lm_head: the option's checks and quantization (options.h); nvfp4:
// kInMajor (the AVX2 and reference rungs) or kTiles32 (the AVX-512 rung); progress (optional, called on this thread):
// matrices repacked of those to repack.
Result<CpuWeights> cpu_prepare_weights(const ModelWeights& m, LmHeadType lm_head, ThreadPool& pool,
                                       WeightLayout nvfp4 = WeightLayout::kInMajor, const ProgressFn& progress = nullptr);

}  // namespace oss4
