// The gpt-oss forward pass, written once for every backend, over a small op table (ForwardOps) each backend implements
// with its own kernels. The schedule names activations and weights, it never touches their memory: activations are
// the backend's buffers (Act, each [batch rows, width]), weights are named by layer and role, which the backend maps to
// what it prepared. A backend may fuse inside an op, or override Forward::run altogether (a fused decode step).
//
//   x = embed(ids)
//   for each layer l:
//     h = rmsnorm(x, attn_norm[l]);  q, k, v = h Wq, h Wk, h Wv (+ biases)    one grouped linear call
//     rope(q, k); store k, v at each row's position in its sequence's cache
//     attn = attention(q, the sequence's cache, sinks[l], window if sliding)
//     out = attn Wo + bo;  x += out
//     h = rmsnorm(x, mlp_norm[l]);  out = moe(h) (route, group, gate_up, SwiGLU, down, combine);  x += out
//   h = rmsnorm(x, final_norm);  logits = h lm_head, for the rows that ask
#pragma once

#include <cstdint>

#include "runtime/batch.h"
#include "runtime/forward.h"

namespace oss4 {

// the activation buffers, [batch rows, width] each: width n_embd (kX, kH, kOut), q_dim (kQ, kAttn), kv_dim (kK, kV)
enum class Act { kX, kH, kQ, kK, kV, kAttn, kOut };
enum class Norm { kAttn, kMlp, kFinal };
// the attention projections of a layer; each has its bias when the checkpoint has one
enum class Proj { kQ, kK, kV, kO };

struct ProjJob {
  Proj w = Proj::kQ;
  Act in = Act::kH, out = Act::kQ;
};

class ForwardOps {
 public:
  virtual ~ForwardOps() = default;
  // sizes the activation buffers for the batch's rows and takes its ids, positions and runs (plan: check_batch's)
  virtual Status begin(const Batch& b, const BatchPlan& plan, KvCache* const* caches) = 0;
  virtual void embed(Act out) = 0;
  // layer is ignored for Norm::kFinal; out may be in
  virtual void rmsnorm(int64_t layer, Norm w, Act in, Act out) = 0;
  // the jobs of one layer as one grouped call (they share their input: one parallel region)
  virtual void linear(int64_t layer, const ProjJob* jobs, int64_t n_jobs) = 0;
  // RoPE on q and k in place, then k and v stored at each row's position in its sequence's cache
  virtual void rope_store_kv(int64_t layer, Act q, Act k, Act v) = 0;
  // attention with the layer's sinks (and its sliding window) of each sequence's rows against its cache
  virtual void attention(int64_t layer, Act q, Act out) = 0;
  // the mixture of experts as one op: router, top-k softmax, rows grouped by expert, gate_up, clamped SwiGLU, down,
  // the routing-weighted sum. trace (may be null) gets "expert_act".
  virtual void moe(int64_t layer, Act in, Act out, const TraceFn* trace) = 0;
  // acc += y
  virtual void add(Act acc, Act y) = 0;
  // logits [rows that ask, n_vocab] (host memory) of the rows of `in` the batch asks logits for
  virtual void lm_head(Act in, float* logits) = 0;
  // rows of an activation [batch rows, width] as host f32, for traces; valid until the next op
  virtual const float* host_rows(Act a) = 0;
  // the first error of the ops since begin (a device backend's launches fail after the call that made them; it
  // waits for the device here). run_gpt_oss asks before the caches advance and after the lm_head.
  virtual Status status() { return ok_status(); }
};

// the schedule above on one checked batch; advances each cache by its rows once every layer has stored its K/V
// (advance_caches false: the caller does, e.g. a backend that records the ops into a CUDA graph and runs it later).
Status run_gpt_oss(ForwardOps& ops, const ModelConfig& c, const Batch& b, const BatchPlan& plan, KvCache* const* caches, float* logits,
                   const TraceFn& trace, bool advance_caches = true);

}  // namespace oss4
