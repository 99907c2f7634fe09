// oss4 perplexity: llama-perplexity's perplexity over consecutive chunks of a text, with its standard error; saves
// the model's per-token distributions (--save-logits) and measures KL divergence against saved ones (--kl-base).
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "runtime/forward.h"
#include "commands.h"
#include "core/mapped_file.h"
#include "eval/perplexity.h"
#include "eval/saved_logits.h"
#include "model_loader.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct PerplexityArgs {
  std::string model, file, tokenizer, save_logits, kl_base;
  RunOptions run;
  int64_t ctx = 512, chunks = -1, chunk = 128, save_top_k = 32;
  bool json = false, quiet = false;
};

// the same file (one inode), whatever the path says
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return a == b;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

nlohmann::json kl_json(const KlSummary& k) {
  return {{"mean_kl", k.kl.mean},           {"mean_kl_stderr", k.kl.stderr_}, {"median_kl", k.median},
          {"p90_kl", k.p90},                {"p99_kl", k.p99},                {"p999_kl", k.p999},
          {"max_kl", k.max},                {"min_kl", k.min},                {"top1_agreement", k.top1_same.mean},
          {"top1_agreement_stderr", k.top1_same.stderr_}, {"ppl_base", k.ppl_base},
          {"mean_ln_ppl_ratio", k.ln_ppl_ratio.mean},     {"mean_ln_ppl_ratio_stderr", k.ln_ppl_ratio.stderr_},
          {"delta_ppl", k.delta_ppl},       {"delta_ppl_stderr", k.delta_ppl_stderr}, {"corr_ln_ppl", k.corr_nll}};
}

void print_kl(const PerplexityResult& r) {
  const KlSummary& k = r.kl_summary;
  std::printf("====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r.ppl, r.ppl_stderr);
  std::printf("Mean PPL(base)                : %10.6f\n", k.ppl_base);
  std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * k.corr_nll);
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", k.ln_ppl_ratio.mean, k.ln_ppl_ratio.stderr_);
  std::printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", k.delta_ppl, k.delta_ppl_stderr);
  std::printf("\n====== KL divergence statistics ======\n");
  // %g, not llama.cpp's %f: a good quantization's divergence is below 1e-6 nats on many tokens
  std::printf("Mean    KLD: %12.6g ± %12.6g\n", k.kl.mean, k.kl.stderr_);
  std::printf("Maximum KLD: %12.6g\n99.9%%   KLD: %12.6g\n99.0%%   KLD: %12.6g\n90.0%%   KLD: %12.6g\n", k.max, k.p999, k.p99, k.p90);
  std::printf("Median  KLD: %12.6g\nMinimum KLD: %12.6g\n", k.median, k.min);
  std::printf("\n====== Token probability statistics ======\n");
  std::printf("Same top p: %6.3f ± %6.3f %%\n", 100.0 * k.top1_same.mean, 100.0 * k.top1_same.stderr_);
}

int run_perplexity_cmd(const PerplexityArgs& a) {
  if (!a.save_logits.empty() && (same_file(a.save_logits, a.file) || (!a.kl_base.empty() && same_file(a.save_logits, a.kl_base)))) {
    return fail(error("--save-logits " + a.save_logits + " would overwrite an input"));
  }
  if (a.save_top_k < 1) return fail(error("--save-top-k must be at least 1"));
  if (a.chunks < -1) return fail(error("--chunks must be at least 1"));
  auto text = read_text_file(a.file);
  if (!text.ok()) return fail(text.status().with_context("--file"));
  std::unique_ptr<SavedLogits> base;
  if (!a.kl_base.empty()) {
    auto b = read_saved_logits(a.kl_base);
    if (!b.ok()) return fail(b.status().with_context("--kl-base"));
    base = std::make_unique<SavedLogits>(std::move(b).value());
  }
  auto tok = load_model_tokenizer(a.model, a.tokenizer);
  if (!tok.ok()) return fail(tok.status());
  auto ids = tok->encode(*text, /*allow_special=*/false);
  if (!ids.ok()) return fail(ids.status().with_context(a.file));
  auto loaded = load_to_run(a.model, a.quiet, a.run);
  if (!loaded.ok()) return fail(loaded.status());
  Forward& fwd = *loaded->fwd;
  PerplexityConfig cfg;
  cfg.ctx = a.ctx;
  cfg.max_chunks = a.chunks;
  cfg.eval_chunk = a.chunk;
  cfg.save_top_k = a.save_logits.empty() ? 0 : a.save_top_k;
  if (!a.quiet) {
    const int64_t n_chunks = a.chunks >= 0 ? std::min<int64_t>(a.chunks, static_cast<int64_t>(ids->size()) / a.ctx)
                                           : static_cast<int64_t>(ids->size()) / a.ctx;
    std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %lld, scoring %lld tokens of each\n", ids->size(),
                 static_cast<long long>(n_chunks), static_cast<long long>(a.ctx), static_cast<long long>(scored_per_chunk(a.ctx)));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_perplexity(fwd, *ids, cfg, base.get(), [&](int64_t done, int64_t total, double ppl) {
    if (a.quiet) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // one line per chunk, as llama-perplexity prints its running estimate
    std::fprintf(stderr, "[%lld/%lld] ppl %.4f, %.1f tok/s, %.0f s left\n", static_cast<long long>(done), static_cast<long long>(total), ppl,
                 static_cast<double>(done * a.ctx) / s, s / static_cast<double>(done) * static_cast<double>(total - done));
  });
  if (!r.ok()) return fail(r.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.save_logits.empty()) {
    Status s = write_saved_logits(a.save_logits, r->saved);
    if (!s.ok()) return fail(s.with_context("--save-logits"));
    if (!a.quiet) std::fprintf(stderr, "saved %lld positions (top %lld) to %s\n", static_cast<long long>(r->saved.n_scored()),
                               static_cast<long long>(a.save_top_k), a.save_logits.c_str());
  }
  const double tok_s = secs > 0 ? static_cast<double>(r->n_chunks * r->ctx) / secs : 0.0;
  if (a.json) {
    nlohmann::json j = {{"model", a.model},         {"file", a.file},        {"ctx", r->ctx},
                        {"n_chunks", r->n_chunks},  {"n_text_tokens", r->n_text_tokens},
                        {"n_scored", r->nll.size()}, {"ppl", r->ppl},        {"ppl_stderr", r->ppl_stderr},
                        {"chunk_ppl", r->chunk_ppl}, {"seconds", secs},      {"tok_s", tok_s}};
    if (base) j["kl"] = kl_json(r->kl_summary);
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  if (base) {
    print_kl(*r);
  } else {
    std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r->ppl, r->ppl_stderr);
  }
  if (!a.quiet) std::fprintf(stderr, "%lld tokens in %.2f s: %.1f tok/s (prefill)\n", static_cast<long long>(r->n_chunks * r->ctx), secs, tok_s);
  return 0;
}
}  // namespace

void add_perplexity(CLI::App& app, int* rc) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* sub = app.add_subcommand("perplexity", "perplexity of a text as llama-perplexity computes it (± its standard error); "
                                                   "--save-logits / --kl-base: KL divergence against a base model");
  sub->add_option("-m,--model", a->model, "checkpoint directory")->required();
  add_run_options(sub, &a->run);
  sub->add_option("--file", a->file, "text file (UTF-8), tokenized without special tokens")->required();
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer (default: the model's tokenizer.json, else the shipped vocabulary)");
  sub->add_option("--ctx", a->ctx, "tokens per chunk; the second half of each is scored")->capture_default_str();
  sub->add_option("--chunks", a->chunks, "score at most this many chunks (default: every whole chunk of the text)");
  sub->add_option("--chunk", a->chunk, "tokens per forward call")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--save-logits", a->save_logits, "write the scored tokens' distributions here (top --save-top-k and the rest's mass; "
                                                   "safetensors, atomically) for a later --kl-base run");
  sub->add_option("--save-top-k", a->save_top_k, "tokens kept per position by --save-logits")->capture_default_str();
  sub->add_option("--kl-base", a->kl_base, "a --save-logits file of the base model on the same text and --ctx: print KL divergence, "
                                           "top-1 agreement and PPL against it");
  sub->add_flag("--json", a->json, "print one JSON object");
  sub->add_flag("-q,--quiet", a->quiet, "no progress on stderr");
  sub->callback([a, rc] { *rc = run_perplexity_cmd(*a); });
}

}  // namespace oss4::cli
