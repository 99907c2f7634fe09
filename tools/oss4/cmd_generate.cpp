// oss4 generate: prefill token ids, then sample and stream new tokens.
#include <chrono>
#include <cstdio>
#include <memory>

#include "backend/cpu/forward.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "model_loader.h"
#include "runtime/sampler.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct GenerateArgs {
  std::string model, ids, prompt, tokenizer;
  RunOptions run;
  bool print_ids = false, literal_specials = false;
  int64_t n_predict = 32, ctx = 4096, chunk = 128;
  int threads = 0;
  SamplerParams sp;
  bool ignore_eos = false, quiet = false;
};

int run_generate(const GenerateArgs& a) {
  Status ps = validate_sampler_params(a.sp);
  if (!ps.ok()) return fail(ps);
  if (a.ids.empty() == a.prompt.empty()) return fail(error("give exactly one of --ids and --prompt"));
  // text in (and out) needs the tokenizer: the model's tokenizer.json, --tokenizer, or the shipped vocabulary
  std::unique_ptr<Tokenizer> tok;
  if (!a.prompt.empty() || !a.tokenizer.empty()) {
    auto t = load_model_tokenizer(a.model, a.tokenizer);
    if (!t.ok()) return fail(t.status());
    tok = std::make_unique<Tokenizer>(std::move(t).value());
  }
  auto ids = a.prompt.empty() ? parse_ids(a.ids) : tok->encode(a.prompt, /*allow_special=*/!a.literal_specials);
  if (!ids.ok()) return fail(ids.status().with_context("--prompt"));
  if (ids->empty()) return fail(error("--prompt: the prompt has no tokens"));
  set_kernel_threads(a.threads);
  auto m = load_to_run(a.model, a.quiet, a.run);
  if (!m.ok()) return fail(m.status());
  const ModelConfig& c = m->cfg;
  const int64_t ctx = std::min<int64_t>(a.ctx, c.max_position_embeddings);
  if (static_cast<int64_t>(ids->size()) + a.n_predict > ctx) {
    return fail(error("prompt of " + std::to_string(ids->size()) + " tokens + " + std::to_string(a.n_predict) +
                      " to generate exceeds the context size " + std::to_string(ctx) + " (--ctx)"));
  }
  auto cache = KvCache::create(c, ctx, a.chunk);
  if (!cache.ok()) return fail(cache.status());
  CpuForward fwd(*m);
  Sampler sampler(a.sp);
  std::vector<float> logits;  // [n_vocab]
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  Status s = fwd.eval(*cache, ids->data(), static_cast<int64_t>(ids->size()), LogitsMode::kLast, &logits);
  if (!s.ok()) return fail(s);
  const auto t1 = clock::now();
  const bool text_out = tok && !a.print_ids;
  std::unique_ptr<StreamingDecoder> detok = text_out ? std::make_unique<StreamingDecoder>(*tok) : nullptr;
  std::string piece;
  int64_t n_gen = 0;
  for (; n_gen < a.n_predict; ++n_gen) {
    int32_t id = sampler.sample(logits.data(), c.n_vocab);
    if (text_out) {
      piece.clear();
      if (id < tok->n_vocab()) {
        s = detok->push(id, &piece);
        if (!s.ok()) return fail(s);
      }
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    } else {
      std::printf(n_gen == 0 ? "%d" : " %d", id);
    }
    std::fflush(stdout);
    bool eos = false;
    for (int64_t e : c.eos_token_ids) eos = eos || e == id;
    if (eos && !a.ignore_eos) {
      ++n_gen;
      break;
    }
    if (n_gen + 1 == a.n_predict) {
      ++n_gen;
      break;
    }
    s = fwd.eval(*cache, &id, 1, LogitsMode::kLast, &logits);
    if (!s.ok()) return fail(s);
  }
  if (detok) {
    piece = detok->flush();
    std::fwrite(piece.data(), 1, piece.size(), stdout);
  }
  std::printf("\n");
  std::fflush(stdout);  // the text before the stderr summary, also when both go to one pipe
  const auto t2 = clock::now();
  const double pre = std::chrono::duration<double>(t1 - t0).count(), dec = std::chrono::duration<double>(t2 - t1).count();
  if (!a.quiet) {
    std::fprintf(stderr, "prefill: %zu tokens in %.3f s (%.2f tok/s); decode: %lld tokens in %.3f s (%.2f tok/s)\n", ids->size(), pre,
                 static_cast<double>(ids->size()) / pre, static_cast<long long>(n_gen), dec, n_gen > 1 ? (n_gen - 1) / dec : 0.0);
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
  sub->add_option("-t,--threads", a->threads, "threads (default: OSS4_THREADS or every core)")->check(CLI::NonNegativeNumber);
  sub->add_flag("--ignore-eos", a->ignore_eos, "keep going past end-of-sequence tokens");
  sub->add_flag("-q,--quiet", a->quiet, "no progress or timing on stderr");
  sub->callback([a, rc] { *rc = run_generate(*a); });
}

}  // namespace oss4::cli
