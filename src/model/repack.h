// Layout changes at load that the CPU kernels run faster on. Row-major NVFP4 matrices (the attention projections of
// ModelOpt's export, an lm_head requantized with --lm-head nvfp4) are transposed to the input-major layout of the
// exported experts ([n_in/2, n_out] codes, [n_in/16, n_out] scales): its decode GEMV reads contiguous rows on every
// thread and its GEMM shares the experts' panel decoder (measured in docs/benchmarks.md). The bytes stay the same,
// only their order changes, so results differ from the row-major kernels by f32 summation order alone.
#pragma once

#include "model/weights.h"
#include "oss4/status.h"

namespace oss4 {

// whether an NVFP4 matrix [n_out, n_in] runs in the input-major layout (its output tile is 32 wide).
bool repack_wants_in_major(int64_t n_out, int64_t n_in);

// repacks every row-major NVFP4 attention projection and lm_head whose n_out is a multiple of 32 (the in-major
// kernels' output tile); the copies live in m.owned and the checkpoint pages they came from are released.
// Returns the number of bytes repacked.
Result<size_t> repack_nvfp4_in_major(ModelWeights& m);

}  // namespace oss4
