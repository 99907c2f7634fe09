// oss4 generate: prefill token ids, then sample and stream new tokens.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "model_loader.h"
#include "oss4/model.h"
#include "runtime/sampler.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct GenerateArgs {
  std::string model, ids, prompt, tokenizer;
  RunOptions run;
  bool print_ids = false, literal_specials = false;
  int64_t n_predict = 32, ctx = 4096, chunk = 128;
  SamplerParams sp;
  bool ignore_eos = false, quiet = false;
};

int run_generate(const GenerateArgs& a) {
  Status ps = validate_sampler_params(a.sp);
  if (!ps.ok()) return fail(ps);
  if (a.ids.empty() == a.prompt.empty()) return fail(error("give exactly one of --ids and --prompt"));
  // text in (and out) needs the tokenizer: the model's tokenizer.json, --tokenizer, or the shipped vocabulary. It is
  // read before the weights, so a bad prompt fails at once
  std::unique_ptr<Tokenizer> tok;
  if (!a.prompt.empty() || !a.tokenizer.empty()) {
    auto t = load_model_tokenizer(a.model, a.tokenizer);
    if (!t.ok()) return fail(t.status());
    tok = std::make_unique<Tokenizer>(std::move(t).value());
  }
  auto ids = a.prompt.empty() ? parse_ids(a.ids) : tok->encode(a.prompt, /*allow_special=*/!a.literal_specials);
  if (!ids.ok()) return fail(ids.status().with_context("--prompt"));
  if (ids->empty()) return fail(error("--prompt: the prompt has no tokens"));

  ModelOptions mo;
  mo.lm_head = a.run.lm_head;
  mo.activations = a.run.activations;
  mo.threads = a.run.threads;
  mo.device = a.run.device;
  mo.kernels = a.run.kernels;
  mo.tokenizer = a.tokenizer;
  LoadProgress progress(a.model, a.quiet);
  mo.progress = progress.fn();
  auto model = Model::load(a.model, mo);
  progress.finish();
  if (!model.ok()) return fail(model.status());
  // a one-shot run: sliding-window layers keep only their window
  auto ctx = (*model)->new_context({.n_ctx = a.ctx, .chunk = a.chunk, .rewindable = false});
  if (!ctx.ok()) return fail(ctx.status());

  SamplingParams sp;
  sp.temperature = a.sp.temperature;
  sp.top_p = a.sp.top_p;
  sp.top_k = a.sp.top_k;
  sp.seed = a.sp.seed;
  sp.max_tokens = a.n_predict;
  sp.ignore_eos = a.ignore_eos;
  const bool text_out = tok && !a.print_ids;
  bool first = true;
  auto r = generate(**ctx, *ids, sp, [&](int32_t id, std::string_view text) {
    if (text_out) {
      std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
      std::printf(first ? "%d" : " %d", id);
    }
    first = false;
    std::fflush(stdout);
    return true;
  });
  std::printf("\n");
  std::fflush(stdout);  // the text before the stderr summary, also when both go to one pipe
  if (!r.ok()) return fail(r.status().message().find("context size") != std::string::npos ? r.status().with_context("--ctx") : r.status());
  const auto n_gen = static_cast<int64_t>(r->token_ids.size());
  if (!a.quiet) {
    std::fprintf(stderr, "prefill: %zu tokens in %.3f s (%.2f tok/s); decode: %lld tokens in %.3f s (%.2f tok/s)\n", ids->size(),
                 r->prefill_s, static_cast<double>(ids->size()) / r->prefill_s, static_cast<long long>(n_gen), r->decode_s,
                 n_gen > 1 ? (n_gen - 1) / r->decode_s : 0.0);
  }
  return 0;
}
}  // namespace

void add_generate(CLI::App& app, int* rc) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* sub = app.add_subcommand("generate", "continue a prompt (token ids or raw text); new tokens stream to stdout as they are made");
  sub->add_option("-m,--model", a->model, "checkpoint directory")->required();
  sub->add_option("--ids", a->ids, "prompt as token ids, comma-separated (output: ids)");
  sub->add_option("--prompt", a->prompt, "prompt as raw text; special tokens such as <|start|> are recognized (output: text)");
  sub->add_option("--tokenizer", a->tokenizer, "model directory, tokenizer.json or .tiktoken (default: the model's tokenizer.json, "
                                               "else the shipped o200k vocabulary)");
  sub->add_flag("--literal-specials", a->literal_specials, "encode special-token strings in --prompt as plain text");
  sub->add_flag("--print-ids", a->print_ids, "print token ids even for a text prompt");
  sub->add_option("-n,--n-predict", a->n_predict, "tokens to generate")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--temperature", a->sp.temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-p", a->sp.top_p, "nucleus sampling mass, (0, 1]")->capture_default_str();
  sub->add_option("--top-k", a->sp.top_k, "keep the k most likely tokens; 0 = off")->capture_default_str();
  sub->add_option("--seed", a->sp.seed, "sampling seed")->capture_default_str();
  sub->add_option("--ctx", a->ctx, "context size (KV cache positions)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--chunk", a->chunk, "prefill chunk size (tokens per forward call)")->capture_default_str()->check(CLI::PositiveNumber);
  add_run_options(sub, &a->run);
  sub->add_flag("--ignore-eos", a->ignore_eos, "keep going past end-of-sequence tokens");
  sub->add_flag("-q,--quiet", a->quiet, "no progress or timing on stderr");
  sub->callback([a, rc] { *rc = run_generate(*a); });
}

}  // namespace oss4::cli
