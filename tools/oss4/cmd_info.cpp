// oss4 info: what a checkpoint directory holds, validated.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "model_loader.h"

namespace oss4::cli {

namespace {
int run_info(const std::string& dir) {
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
  return 0;
}
}  // namespace

void add_info(CLI::App& app, int* rc) {
  auto dir = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("info", "load and validate a checkpoint, and print its hyperparameters and size");
  sub->add_option("-m,--model", *dir, "checkpoint directory")->required();
  sub->callback([dir, rc] { *rc = run_info(*dir); });
}

}  // namespace oss4::cli
