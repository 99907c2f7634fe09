#include "runtime/schedule.h"

namespace oss4 {

Status run_gpt_oss(ForwardOps& ops, const ModelConfig& c, const Batch& b, const BatchPlan& plan, KvCache* const* caches, float* logits,
                   const TraceFn& trace, bool advance_caches) {
  const int64_t n = b.size(), H = c.n_embd;
  if (!plan.logit_rows.empty() && logits == nullptr) return error("run: the batch asks for logits but no logits buffer was given");
  OSS4_TRY(ops.begin(b, plan, caches));
  auto emit = [&](const char* name, int64_t layer, Act a, int64_t width) {
    if (trace) trace(name, layer, ops.host_rows(a), n, width);
  };
  ops.embed(Act::kX);
  emit("embed", -1, Act::kX, H);
  static constexpr ProjJob kQkv[3] = {{Proj::kQ, Act::kH, Act::kQ}, {Proj::kK, Act::kH, Act::kK}, {Proj::kV, Act::kH, Act::kV}};
  static constexpr ProjJob kO[1] = {{Proj::kO, Act::kAttn, Act::kOut}};
  for (int64_t il = 0; il < c.n_layers; ++il) {
    ops.rmsnorm(il, Norm::kAttn, Act::kX, Act::kH);
    emit("attn_in", il, Act::kH, H);
    ops.linear(il, kQkv, 3);
    ops.rope_store_kv(il, Act::kQ, Act::kK, Act::kV);
    ops.attention(il, Act::kQ, Act::kAttn);
    emit("attn_out", il, Act::kAttn, c.q_dim());
    ops.linear(il, kO, 1);
    ops.add(Act::kX, Act::kOut);
    ops.rmsnorm(il, Norm::kMlp, Act::kX, Act::kH);
    emit("mlp_in", il, Act::kH, H);
    ops.moe(il, Act::kH, Act::kOut, trace ? &trace : nullptr);
    ops.add(Act::kX, Act::kOut);
    emit("layer_out", il, Act::kX, H);
  }
  OSS4_TRY(ops.status());
  if (advance_caches)
    for (const SeqRun& r : plan.runs) caches[r.seq]->advance(r.n);
  if (plan.logit_rows.empty() && !trace) return ok_status();
  ops.rmsnorm(-1, Norm::kFinal, Act::kX, Act::kH);
  emit("final_norm", c.n_layers, Act::kH, H);
  if (!plan.logit_rows.empty()) ops.lm_head(Act::kH, logits);
  return ops.status();
}

}  // namespace oss4
