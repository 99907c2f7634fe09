// oss4 compare: how far two checkpoints of one model are apart on the same tokens.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "runtime/forward.h"
#include "commands.h"
#include "eval/compare.h"
#include "model_loader.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct CompareArgs {
  std::vector<std::string> models;
  std::string ids, text, tokenizer, lm_head_b = "stored", activations_b = "auto", device_a = "cpu", device_b = "cpu";
  int64_t chunk = 128;
  bool json = false, per_position = false, quiet = false;
};

// the default text when neither --ids nor --text is given: ordinary prose and a little code.
constexpr const char* kDefaultText =
    "The quick brown fox jumps over the lazy dog. In 1905, Einstein published four papers that changed physics; "
    "one of them explained the photoelectric effect.\nfor (int i = 0; i < n; ++i) sum += x[i] * y[i];\n"
    "Le renard brun saute par-dessus le chien paresseux. 東京は日本の首都です。";

Result<std::vector<float>> model_logits(const std::string& dir, const std::vector<int32_t>& ids, int64_t chunk, bool quiet,
                                        const RunOptions& run, int64_t* n_vocab) {
  OSS4_ASSIGN_OR_RETURN(LoadedModel m, load_to_run(dir, quiet, run));
  const auto n = static_cast<int64_t>(ids.size());
  OSS4_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, m.fwd->new_cache(n, chunk));
  std::vector<float> logits;  // [n, n_vocab]
  OSS4_TRY(eval(*m.fwd, *cache, ids.data(), n, LogitsMode::kAll, &logits).with_context(dir));
  *n_vocab = m.weights->cfg.n_vocab;
  return logits;
}

int run_compare(const CompareArgs& a) {
  if (a.models.size() != 2) return fail(error("give two checkpoints: -m A -m B"));
  if (!a.ids.empty() && !a.text.empty()) return fail(error("give at most one of --ids and --text"));
  Result<std::vector<int32_t>> ids = error("no tokens");
  if (!a.ids.empty()) {
    ids = parse_ids(a.ids);
  } else {
    auto tok = load_model_tokenizer(a.models[0], a.tokenizer);
    if (!tok.ok()) return fail(tok.status());
    ids = tok->encode(a.text.empty() ? kDefaultText : a.text, /*allow_special=*/false);
  }
  if (!ids.ok()) return fail(ids.status());
  if (ids->empty()) return fail(error("no tokens to compare"));
  int64_t va = 0, vb = 0;
  // A runs as stored on the default path of its device; B with the options under test. One model in memory at a time.
  RunOptions run_a, run_b;
  run_a.device = a.device_a;
  run_b.device = a.device_b;
  run_b.lm_head = a.lm_head_b;
  run_b.activations = a.activations_b;
  auto la = model_logits(a.models[0], *ids, a.chunk, a.quiet, run_a, &va);
  if (!la.ok()) return fail(la.status());
  auto lb = model_logits(a.models[1], *ids, a.chunk, a.quiet, run_b, &vb);
  if (!lb.ok()) return fail(lb.status());
  if (va != vb) return fail(error("vocabulary sizes differ: " + std::to_string(va) + " vs " + std::to_string(vb)));
  const auto n = static_cast<int64_t>(ids->size());
  CompareSummary s = compare_logits(la->data(), lb->data(), n, va);
  if (a.json) {
    nlohmann::json j = {{"a", a.models[0]},          {"b", a.models[1]},          {"n_positions", n},
                        {"b_lm_head", a.lm_head_b},  {"b_activations", a.activations_b},
                        {"a_device", a.device_a},    {"b_device", a.device_b},
                        {"mean_kl", s.mean_kl},      {"max_kl", s.max_kl},        {"top1_agreement", s.top1_agreement},
                        {"max_abs_diff", s.max_abs_diff}, {"max_rel_diff", s.max_rel_diff}};
    if (a.per_position) {
      for (const auto& p : s.positions)
        j["positions"].push_back({{"kl", p.kl}, {"top1_agree", p.top1_agree}, {"max_abs_diff", p.max_abs_diff}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  if (a.per_position) {
    std::printf("| pos | KL (nats) | top-1 | max |dlogit| |\n|---:|---:|:---:|---:|\n");
    for (int64_t t = 0; t < n; ++t) {
      const auto& p = s.positions[static_cast<size_t>(t)];
      std::printf("| %lld | %.3e | %s | %.4g |\n", static_cast<long long>(t), p.kl, p.top1_agree ? "yes" : "no", p.max_abs_diff);
    }
  }
  std::printf("positions        %lld\nmean KL          %.4e nats\nmax KL           %.4e nats\ntop-1 agreement  %.2f%%\n"
              "max |dlogit|     %.4g (%.3g of max |logit|)\n",
              static_cast<long long>(n), s.mean_kl, s.max_kl, 100.0 * s.top1_agreement, s.max_abs_diff, s.max_rel_diff);
  return 0;
}
}  // namespace

void add_compare(CLI::App& app, int* rc) {
  auto a = std::make_shared<CompareArgs>();
  CLI::App* sub = app.add_subcommand("compare", "per-position KL divergence, top-1 agreement and max logit difference of two "
                                                "checkpoints of one model (the first is the reference)");
  sub->add_option("-m,--model", a->models, "checkpoint directory; give it twice: -m A -m B")->required()->expected(2);
  sub->add_option("--ids", a->ids, "token ids, comma-separated");
  sub->add_option("--text", a->text, "text, tokenized with A's tokenizer (default: a short built-in mixed text)");
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer for --text (default: A's tokenizer.json, else the shipped vocabulary)");
  sub->add_option("--chunk", a->chunk, "prefill chunk size")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--lm-head-b", a->lm_head_b, "lm_head of B: stored, bf16 or nvfp4 (a BF16 lm_head quantized at load); "
                                               "-m X -m X --lm-head-b nvfp4 shows what the NVFP4 lm_head costs")
      ->capture_default_str();
  sub->add_option("--activations-b", a->activations_b, "activations of B's NVFP4 matmuls: auto (its device's default), f32, bf16 or q8; "
                                                       "-m X -m X --activations-b q8 shows what the 8-bit-activation fast path costs")
      ->capture_default_str();
  sub->add_option("--device-a", a->device_a, "where A runs: cpu (default: the reference), cuda or auto")->capture_default_str();
  sub->add_option("--device-b", a->device_b, "where B runs: cpu, cuda or auto; -m X -m X --device-b cuda shows how far the GPU is "
                                             "from the CPU")
      ->capture_default_str();
  sub->add_flag("--per-position", a->per_position, "print every position, not only the summary");
  sub->add_flag("--json", a->json, "print one JSON object");
  sub->add_flag("-q,--quiet", a->quiet, "no progress on stderr");
  sub->callback([a, rc] { *rc = run_compare(*a); });
}

}  // namespace oss4::cli
