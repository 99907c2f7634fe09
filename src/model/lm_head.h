// The lm_head option: gpt-oss checkpoints (and ModelOpt's NVFP4 export by default) keep lm_head in BF16, about
// 1.16 GB that every decoded token reads. Quantizing it to NVFP4, at load time or once with `oss4 quantize --lm-head
// nvfp4`, cuts that to 0.33 GB; `oss4 compare` shows the accuracy it costs (--lm-head-b nvfp4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/weights.h"

namespace oss4 {

// an lm_head in NVFP4 by ModelOpt's rules (global amax = max |w|, E4M3 block scales per 16 inputs), quantized in
// parallel tasks of 256 rows
struct LmHeadNvfp4 {
  std::vector<uint8_t> packed;  // [n_vocab, n_embd/2] row-major, or [n_embd/2, n_vocab] in-major
  std::vector<uint8_t> scales;  // [n_vocab, n_embd/16] or [n_embd/16, n_vocab] E4M3
  float scale2 = 0.0f;
  bool in_major = false;
};
// rows [r0, r1) of a dense (BF16 or F32) [n_vocab, n_embd] lm_head as f32: out [r1 - r0, n_embd]
void lm_head_rows_f32(const LinearWeight& w, int64_t r0, int64_t r1, float* out);

// w: a dense [n_vocab, n_embd] BF16 or F32 lm_head; in_major: the CPU kernels' layout, else ModelOpt's export layout.
// Runs in tasks of 256 rows on pool.
Status nvfp4_quantize_lm_head(const LinearWeight& w, bool in_major, ThreadPool& pool, LmHeadNvfp4* out);

}  // namespace oss4
