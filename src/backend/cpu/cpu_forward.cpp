#include "backend/cpu/cpu_forward.h"

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/prepare.h"
#include "core/thread_pool.h"
#include "runtime/schedule.h"

namespace oss4 {

namespace {

class CpuForward final : public Forward {
 public:
  CpuForward(const ModelWeights& m, std::unique_ptr<ThreadPool> pool, CpuExec ex, CpuWeights w, const BackendOptions& o)
      : m_(m), pool_(std::move(pool)), w_(std::move(w)), ops_(m, w_, CpuExec{ex.isa, ex.act, pool_.get()}), isa_(ex.isa), o_(o) {}

  const ModelConfig& config() const override { return m_.cfg; }

  BackendInfo info() const override {
    BackendInfo i;
    i.device = "cpu";
    i.kernels = kernel_isa_name(isa_);
    i.activations = act_precision_name(o_.activations);
    i.lm_head = weight_type_name(w_.lm_head.type);
    i.threads = pool_->n_threads();
    i.weight_bytes_per_token = m_.weight_bytes_per_token() - m_.lm_head.nbytes() + w_.lm_head.nbytes();
    return i;
  }

  Result<std::unique_ptr<KvCache>> new_cache(int64_t max_ctx, int64_t max_chunk, bool sliding_ring) const override {
    OSS4_ASSIGN_OR_RETURN(std::unique_ptr<HostKvCache> c, HostKvCache::create(m_.cfg, max_ctx, max_chunk, sliding_ring));
    return std::unique_ptr<KvCache>(std::move(c));
  }

  int64_t kv_bytes_per_position() const override { return HostKvCache::bytes_per_position(m_.cfg); }

  Status run(const Batch& b, KvCache* const* caches, int64_t n_caches, float* logits, const TraceFn& trace) override {
    OSS4_TRY(check_batch(b, caches, n_caches, m_.cfg, &plan_));
    return run_gpt_oss(ops_, m_.cfg, b, plan_, caches, logits, trace);
  }

 private:
  const ModelWeights& m_;
  std::unique_ptr<ThreadPool> pool_;
  CpuWeights w_;
  CpuOps ops_;
  KernelIsa isa_;
  BackendOptions o_;
  BatchPlan plan_;
};

}  // namespace

Status check_cpu_options(const BackendOptions& o) { return resolve_kernel_isa(o.kernels).status().with_context("--kernels"); }

Result<std::unique_ptr<Forward>> make_cpu_forward(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress) {
  auto isa_r = resolve_kernel_isa(o.kernels);
  if (!isa_r.ok()) return isa_r.status().with_context("--kernels");
  const KernelIsa isa = *isa_r;
  // (the reference rung runs its kernels on the calling thread; the pool then serves the prepare step)
  auto pool = std::make_unique<ThreadPool>(resolve_threads(o.threads));
  // the AVX-512 rung's kernels read NVFP4 in 32-output tiles, the others the input-major layout
  const WeightLayout nvfp4 = isa == KernelIsa::kAvx512 ? WeightLayout::kTiles32 : WeightLayout::kInMajor;
  OSS4_ASSIGN_OR_RETURN(CpuWeights w, cpu_prepare_weights(m, o.lm_head, *pool, nvfp4, progress));
  return std::unique_ptr<Forward>(new CpuForward(m, std::move(pool), CpuExec{isa, o.activations, nullptr}, std::move(w), o));
}

}  // namespace oss4
