// oss4 info: what a checkpoint directory holds, validated.
#include <cstdio>
#include <memory>

#include "backend/cuda/device_plan.h"
#include "commands.h"
#include "model_loader.h"
#ifdef OSS4_HAVE_CUDA
#include "backend/cuda/cuda_forward.h"
#endif

namespace oss4::cli {

namespace {
struct InfoArgs {
  std::string dir, device = "cpu", lm_head = "stored";
  int64_t ctx = 8192, seqs = 1, chunk = 512;
};

// the CUDA backend's device memory for this checkpoint (device_plan.h): computed, nothing is uploaded
int print_device_plan(const ModelWeights& m, const InfoArgs& a) {
  auto lm = parse_lm_head_type(a.lm_head);
  if (!lm.ok()) return fail(lm.status().with_context("--lm-head"));
  auto p = cuda::plan_device_memory(m, *lm, a.ctx, a.chunk, a.seqs);
  if (!p.ok()) return fail(p.status());
  std::printf("device memory   planned for --device cuda (%lld sequences of %lld positions, chunks of %lld):\n",
              static_cast<long long>(a.seqs), static_cast<long long>(a.ctx), static_cast<long long>(a.chunk));
  for (const auto& it : p->items) std::printf("  %-66s %12s\n", it.what.c_str(), format_bytes(static_cast<double>(it.bytes)).c_str());
  std::printf("  %-66s %12s\n", "total (weights + K/V + scratch; the CUDA context comes on top)", format_bytes(static_cast<double>(p->total())).c_str());
#ifdef OSS4_HAVE_CUDA
  if (cuda_device_count() > 0) {
    auto d = cuda_device_summary();
    if (d.ok()) std::printf("  device 0: %s\n", d->c_str());
  }
#endif
  return 0;
}

int run_info(const InfoArgs& a) {
  const std::string& dir = a.dir;
  auto m = load_with_progress(dir, true);
  if (!m.ok()) return fail(m.status());
  const ModelConfig& c = m->cfg;
  int64_t n_sliding = 0;
  for (auto k : c.layer_types) n_sliding += k == LayerKind::kSliding;
  std::printf("checkpoint      %s (%s experts)\n", dir.c_str(), checkpoint_kind_name(m->checkpoint_kind));
  std::printf("layers          %lld (%lld sliding, window %lld)\n", static_cast<long long>(c.n_layers), static_cast<long long>(n_sliding),
              static_cast<long long>(c.sliding_window));
  std::printf("hidden          %lld; heads %lld q / %lld kv x %lld\n", static_cast<long long>(c.n_embd), static_cast<long long>(c.n_heads),
              static_cast<long long>(c.n_kv_heads), static_cast<long long>(c.head_dim));
  std::printf("experts         %lld, %lld per token, intermediate %lld\n", static_cast<long long>(c.n_experts),
              static_cast<long long>(c.n_experts_used), static_cast<long long>(c.n_ff));
  std::printf("vocab           %lld; lm_head %s%s\n", static_cast<long long>(c.n_vocab), weight_type_name(m->lm_head.type),
              m->lm_head.data == m->embed.data ? " (tied to the embedding)" : "");
  std::printf("rope            theta %g%s", c.rope.theta, c.rope.yarn ? "" : "\n");
  if (c.rope.yarn)
    std::printf(", yarn factor %g, beta %g/%g, original ctx %lld, concentration %.6f\n", c.rope.factor, c.rope.beta_fast, c.rope.beta_slow,
                static_cast<long long>(c.rope.original_max_position_embeddings), m->rope.concentration);
  std::printf("tensors         %zu, %s\n", m->store.names().size(), format_bytes(static_cast<double>(m->store.total_bytes())).c_str());
  std::printf("bytes/token     %s (weights one decoded token reads)\n", format_bytes(static_cast<double>(m->weight_bytes_per_token())).c_str());
  if (a.device == "cuda") return print_device_plan(*m, a);
  if (a.device != "cpu") return fail(error("--device: cpu or cuda, not '" + a.device + "'"));
  return 0;
}
}  // namespace

void add_info(CLI::App& app, int* rc) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* sub = app.add_subcommand("info", "load and validate a checkpoint, and print its hyperparameters and size (with "
                                             "--device cuda: the device memory the CUDA backend plans for it)");
  sub->add_option("-m,--model", a->dir, "checkpoint directory")->required();
  sub->add_option("--device", a->device, "cpu, or cuda: also print the planned device memory (no GPU needed)")->capture_default_str();
  sub->add_option("--ctx", a->ctx, "positions per sequence for the plan")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  sub->add_option("--seqs", a->seqs, "sequences for the plan")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--chunk", a->chunk, "prefill chunk for the plan")->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--lm-head", a->lm_head, kLmHeadHelp)->capture_default_str();
  sub->callback([a, rc] { *rc = run_info(*a); });
}

}  // namespace oss4::cli
