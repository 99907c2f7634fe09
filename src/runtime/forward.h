// The backend seam: what the rest of oss4 runs a model through. A backend (src/backend/NAME/) implements Forward, made
// by make_forward (backend/backend.h) from the loaded weights and BackendOptions; nothing above the backends names
// one. It owns its memory and layouts: the K/V storage (new_cache), the weights in the layout its kernels read
// (prepared at creation from the host ModelWeights, which stay the source of truth) and its scratch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "oss4/status.h"
#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace oss4 {

enum class LogitsMode { kNone, kLast, kAll };

// called with named intermediates: "embed" (layer -1), "layer_out" (residual after each layer), "final_norm";
// and the inputs of the quantized linears (calibration): "attn_in" (normed input of q/k/v), "attn_out" (input of
// o_proj), "mlp_in" (normed input of the router and experts' gate_up) and "expert_act" (inputs of the experts'
// down_proj, one row per routed (token, expert) pair, grouped by expert). data is [n_tok, n] f32 host memory for the
// rows given (every row of the batch, or the routed pairs).
using TraceFn = std::function<void(const char* name, int64_t layer, const float* data, int64_t n_tok, int64_t n)>;

// what a backend is running as, for logs and benchmark tables
struct BackendInfo {
  std::string device;       // "cpu", "cuda:0"
  std::string kernels;      // the kernel rung: "ref", "avx2", "sm_90a"
  std::string activations;  // "f32", "q8", "bf16"
  std::string lm_head;      // the lm_head as it runs: "bf16", "nvfp4", "f32"
  int threads = 1;          // host threads the kernels use
  size_t weight_bytes_per_token = 0;  // bytes of weights one decoded token reads as the backend runs them
  size_t device_weight_bytes = 0;     // bytes of device memory the weights take (a GPU backend; 0 on the CPU)
};

class Forward {
 public:
  virtual ~Forward() = default;

  virtual const ModelConfig& config() const = 0;
  virtual BackendInfo info() const = 0;
  // a KV cache of the kind this backend's kernels read (see HostKvCache for max_ctx, max_chunk and sliding_ring).
  virtual Result<std::unique_ptr<KvCache>> new_cache(int64_t max_ctx, int64_t max_chunk, bool sliding_ring = true) const = 0;
  // bytes of K/V one position takes in a cache without rings (every layer, K and V), what admission budgets count.
  virtual int64_t kv_bytes_per_position() const = 0;
  // evaluates a batch (batch.h) against its sequences' caches (caches[seq]), appending each row's K/V and advancing
  // each cache by its rows. logits: [rows that asked, n_vocab] in batch order, host memory the caller sized (null when
  // no row asks).
  // On an error the caches may hold part of the batch's K/V past their n_pos(); their n_pos() has not moved.
  virtual Status run(const Batch& b, KvCache* const* caches, int64_t n_caches, float* logits,
                     const TraceFn& trace = nullptr) = 0;
};

// ids [n_tok] of one sequence at positions cache.n_pos() onward, as run() calls of at most cache.max_chunk() tokens.
// logits: [n_tok, n_vocab] for kAll, [n_vocab] of the last token for kLast, untouched for kNone.
Status eval(Forward& f, KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, std::vector<float>* logits,
            const TraceFn& trace = nullptr);

}  // namespace oss4
