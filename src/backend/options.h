// What a caller chooses about how a model runs, given once when its backend is made (backend.h). Nothing of it is
// process-wide: two backends in one process may run with different options.
#pragma once

#include <string>

#include "oss4/status.h"

namespace oss4 {

// numeric path of the 4-bit matmuls. kF32 (default): activations stay f32, W4A16 as the checkpoint specifies.
// kQ8 (opt-in, faster on the CPU): activations are quantized to int8 per 16 inputs before every in-major NVFP4
// matmul (the experts of NVFP4 checkpoints, and the attention and lm_head after the CPU's repack), see
// backend/cpu/q8_ref.h; other weights keep f32 activations. `oss4 compare --activations-b q8` reports what it costs.
// kBf16: the activations of every NVFP4 matmul rounded to BF16 (nearest even) first; the products with the 4-bit
// weights stay exact and the sums f32, so it differs from kF32 by the activations' rounding alone. It lets the
// AVX-512 rung's prefill run BF16 dot products (vdpbf16ps) where the CPU has them.
enum class ActPrecision { kF32, kQ8, kBf16 };
const char* act_precision_name(ActPrecision p);
// "f32" / "q8" / "bf16" -> precision; error for anything else.
Result<ActPrecision> parse_act_precision(const char* name);

// the lm_head as it runs: kStored as the checkpoint has it (BF16, or NVFP4 from oss4 quantize --lm-head nvfp4); kBf16
// a BF16 (or F32) one as stored, an error for any other; kNvfp4 a dense one quantized to NVFP4 by ModelOpt's rules
// when the backend prepares its weights (model/lm_head.h), an NVFP4-stored one as it is.
enum class LmHeadType { kStored, kBf16, kNvfp4 };
const char* lm_head_type_name(LmHeadType t);
Result<LmHeadType> parse_lm_head_type(const std::string& name);

struct BackendOptions {
  std::string device = "auto";  // auto (CUDA when a device is visible, else the CPU) | cpu | cuda
  std::string kernels = "auto";  // the CPU kernel rung: auto (OSS4_KERNELS, else the best this CPU runs) | ref | avx2 | avx512
  ActPrecision activations = ActPrecision::kF32;
  // false: the caller left activations at the default, which is the backend's own (f32 on the CPU, bf16 on CUDA)
  bool activations_given = false;
  LmHeadType lm_head = LmHeadType::kStored;
  int threads = 0;  // host threads for the kernels; 0: OSS4_THREADS, else every core
};

}  // namespace oss4
