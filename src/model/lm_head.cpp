#include "model/lm_head.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "core/thread_pool.h"
#include "core/transpose.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"

namespace oss4 {

namespace {
constexpr int64_t kRowsPerTask = 256;
}  // namespace

void lm_head_rows_f32(const LinearWeight& w, int64_t r0, int64_t r1, float* out) {
  const int64_t n = (r1 - r0) * w.n_in;
  if (w.type == WeightType::kBF16) {
    const uint16_t* src = reinterpret_cast<const uint16_t*>(w.data) + r0 * w.n_in;
    for (int64_t k = 0; k < n; ++k) out[k] = bf16_to_f32(src[k]);
  } else {
    const float* src = reinterpret_cast<const float*>(w.data) + r0 * w.n_in;
    for (int64_t k = 0; k < n; ++k) out[k] = src[k];
  }
}

Status nvfp4_quantize_lm_head(const LinearWeight& w, bool in_major, ThreadPool& pool, LmHeadNvfp4* out) {
  if ((w.type != WeightType::kBF16 && w.type != WeightType::kF32) || w.in_major())
    return error("lm_head '" + w.name + "' is " + weight_type_name(w.type) + "; only a dense [n_vocab, n_embd] BF16 or F32 lm_head can be quantized");
  if (w.n_in % kNvfp4Block != 0) return error("lm_head '" + w.name + "': n_embd " + std::to_string(w.n_in) + " is not a multiple of 16");
  const int64_t n_tasks = (w.n_out + kRowsPerTask - 1) / kRowsPerTask;
  // pass 1: the global amax ModelOpt calibrates weight_scale_2 from
  std::vector<float> task_amax(static_cast<size_t>(n_tasks), 0.0f);  // [n_tasks]
  pool.run(n_tasks, [&](int64_t t) {
    const int64_t r0 = t * kRowsPerTask, r1 = std::min(w.n_out, r0 + kRowsPerTask);
    std::vector<float> rows(static_cast<size_t>((r1 - r0) * w.n_in));  // [r1 - r0, n_in] f32
    lm_head_rows_f32(w, r0, r1, rows.data());
    float a = 0.0f;
    for (float v : rows) a = std::max(a, std::fabs(v));
    task_amax[static_cast<size_t>(t)] = a;
  });
  const float amax = *std::max_element(task_amax.begin(), task_amax.end());
  // pass 2: quantize block rows with that amax (every task gets the same weight_scale_2). Each task quantizes its
  // rows row-major into its own buffer and, for the input-major layout, transposes them into place, so the 0.3 GB
  // result is written once and in parallel.
  const int64_t n_cb = w.n_in / 2, n_sb = w.n_in / kNvfp4Block;  // code and scale bytes per row
  std::vector<uint8_t>& packed = out->packed;  // [n_vocab, n_embd/2] or [n_embd/2, n_vocab] u8
  std::vector<uint8_t>& scales = out->scales;  // [n_vocab, n_embd/16] or [n_embd/16, n_vocab] e4m3
  packed.assign(static_cast<size_t>(w.n_out * n_cb), 0);
  scales.assign(static_cast<size_t>(w.n_out * n_sb), 0);
  std::mutex mu;
  Status first_error;
  float scale2 = 0.0f;
  pool.run(n_tasks, [&](int64_t t) {
    const int64_t r0 = t * kRowsPerTask, r1 = std::min(w.n_out, r0 + kRowsPerTask), nr = r1 - r0;
    std::vector<float> rows(static_cast<size_t>(nr * w.n_in));  // [nr, n_in] f32
    lm_head_rows_f32(w, r0, r1, rows.data());
    std::vector<uint8_t> tp, ts;  // [nr, n_cb], [nr, n_sb] row-major, when transposing
    if (in_major) {
      tp.resize(static_cast<size_t>(nr * n_cb));
      ts.resize(static_cast<size_t>(nr * n_sb));
    }
    float s2 = 0.0f;
    Status s = nvfp4_quantize_ref(rows.data(), nr, w.n_in, amax, in_major ? tp.data() : packed.data() + r0 * n_cb,
                                  in_major ? ts.data() : scales.data() + r0 * n_sb, &s2, w.name);
    if (s.ok() && in_major) {
      transpose_u8(tp.data(), nr, n_cb, n_cb, packed.data() + r0, w.n_out);
      transpose_u8(ts.data(), nr, n_sb, n_sb, scales.data() + r0, w.n_out);
    }
    std::lock_guard<std::mutex> lk(mu);
    if (!s.ok() && first_error.ok()) first_error = s;
    scale2 = s2;
  });
  OSS4_TRY(first_error);
  out->scale2 = scale2;
  out->in_major = in_major;
  return ok_status();
}

}  // namespace oss4
