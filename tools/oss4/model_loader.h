// Loading a model for a command, with progress and one-line errors.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "api/load.h"
#include "core/progress.h"
#include "model/weights.h"

namespace oss4::cli {

// a "loading DIR" progress bar on stderr (none when quiet), fed by the loader's ProgressFn; label and unit name
// another phase ("preparing weights", "matrices")
class LoadProgress {
 public:
  LoadProgress(std::string dir, bool quiet, std::string label = "loading ", std::string unit = "layers")
      : dir_(std::move(dir)), label_(std::move(label)), unit_(std::move(unit)), quiet_(quiet) {}
  ProgressFn fn() {
    return [this](int64_t done, int64_t total) {
      if (quiet_) return;
      if (!p_) p_ = std::make_unique<Progress>(label_ + dir_, total, unit_);
      p_->update(done);
    };
  }
  void finish() {
    if (p_) p_->finish();
  }

 private:
  std::string dir_, label_, unit_;
  bool quiet_;
  std::unique_ptr<Progress> p_;
};

inline Result<ModelWeights> load_with_progress(const std::string& dir, bool quiet) {
  LoadProgress p(dir, quiet);
  auto m = load_model(dir, p.fn());
  p.finish();
  return m;
}

inline constexpr const char* kLmHeadHelp =
    "lm_head weights: stored (as the checkpoint has them: BF16, or NVFP4 from oss4 quantize --lm-head nvfp4), bf16 (a BF16 "
    "lm_head as stored), or nvfp4 (a BF16 one quantized at load; see oss4 compare --lm-head-b)";
inline constexpr const char* kActivationsHelp =
    "activations of the NVFP4 matmuls: auto (default: f32 on the CPU, bf16 on CUDA), f32 (W4A16 as specified), bf16 "
    "(rounded to BF16: BF16 dot products in the AVX-512 prefill; every matmul input on CUDA) or q8 (CPU opt-in fast path: "
    "quantized to 8 bits per 16 inputs); see oss4 compare --activations-b";

inline constexpr const char* kKernelsHelp =
    "CPU kernel rung: auto (OSS4_KERNELS, else the best this CPU runs), ref (the scalar reference, one thread), avx2 or avx512 (AVX-512 with VNNI and VBMI: NVFP4 in 32-output tiles, AVX2 elsewhere)";

// how a command runs the model: RunOptions (api/load.h), the options every running command takes
inline void add_run_options(CLI::App* sub, RunOptions* o, bool with_threads = true) {
  sub->add_option("--lm-head", o->lm_head, kLmHeadHelp)->capture_default_str();
  sub->add_option("--activations", o->activations, kActivationsHelp)->capture_default_str();
  sub->add_option("--device", o->device, "where the model runs: auto (a CUDA GPU when one is visible, else the CPU), cpu or cuda")->capture_default_str();
  sub->add_option("--kernels", o->kernels, kKernelsHelp)->capture_default_str();
  if (with_threads) sub->add_option("-t,--threads", o->threads, "threads (default: OSS4_THREADS or every core)")->check(CLI::NonNegativeNumber);
}

// loads a model and makes its backend, with progress (api/load.h: the weights, then the backend's prepare step).
inline Result<LoadedModel> load_to_run(const std::string& dir, bool quiet, const RunOptions& o) {
  LoadProgress p(dir, quiet), prep(dir, quiet, "preparing the weights of ", "matrices");
  // the loading bar is finished when the first prepare report comes (the backend starts after the last layer)
  const ProgressFn load_fn = p.fn(), prep_inner = prep.fn();
  const ProgressFn prep_fn = [&](int64_t done, int64_t total) {
    p.finish();
    prep_inner(done, total);
  };
  auto m = load_model_to_run(dir, o, load_fn, prep_fn);
  p.finish();
  prep.finish();
  return m;
}

}  // namespace oss4::cli
