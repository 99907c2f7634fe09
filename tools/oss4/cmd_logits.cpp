// oss4 logits: float32 logits of every position of a prompt, saved as .npy [n_ids, vocab_size].
#include <cstdio>
#include <memory>

#include "runtime/forward.h"
#include "commands.h"
#include "format/npy.h"
#include "model_loader.h"

namespace oss4::cli {

namespace {
struct LogitsArgs {
  std::string model, ids, out;
  RunOptions run;
  int64_t chunk = 128;
  bool quiet = false;
};

int run_logits(const LogitsArgs& a) {
  auto ids = parse_ids(a.ids);
  if (!ids.ok()) return fail(ids.status());
  auto loaded = load_to_run(a.model, a.quiet, a.run);
  if (!loaded.ok()) return fail(loaded.status());
  const ModelWeights* m = loaded->weights.get();
  const int64_t n = static_cast<int64_t>(ids->size());
  if (n > m->cfg.max_position_embeddings)
    return fail(error(std::to_string(n) + " ids exceed max_position_embeddings " + std::to_string(m->cfg.max_position_embeddings)));
  auto cache = loaded->fwd->new_cache(n, a.chunk);
  if (!cache.ok()) return fail(cache.status());
  std::vector<float> logits;  // [n, n_vocab]
  Status s = eval(*loaded->fwd, **cache, ids->data(), n, LogitsMode::kAll, &logits);
  if (!s.ok()) return fail(s);
  s = write_npy_f32(a.out, logits.data(), {n, m->cfg.n_vocab});
  if (!s.ok()) return fail(s);
  if (!a.quiet) std::fprintf(stderr, "wrote %s: float32 [%lld, %lld]\n", a.out.c_str(), static_cast<long long>(n), static_cast<long long>(m->cfg.n_vocab));
  return 0;
}
}  // namespace

void add_logits(CLI::App& app, int* rc) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* sub = app.add_subcommand("logits", "write float32 logits of every position to a .npy file, shape [n_ids, vocab_size]");
  sub->add_option("-m,--model", a->model, "checkpoint directory (no tokenizer files needed)")->required();
  add_run_options(sub, &a->run);
  sub->add_option("--ids", a->ids, "token ids, comma-separated")->required();
  sub->add_option("--out", a->out, "output .npy path (written atomically)")->required();
  sub->add_option("--chunk", a->chunk, "prefill chunk size (tokens per forward call)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_flag("-q,--quiet", a->quiet, "no progress on stderr");
  sub->callback([a, rc] { *rc = run_logits(*a); });
}

}  // namespace oss4::cli
