// oss4 chat: multi-turn harmony chat. Each user turn is rendered with the whole history (earlier chain of thought
// dropped, as harmony renders it), the model's reply streams as it is sampled (analysis dimmed or hidden, final
// plain), and the KV cache is kept across turns: when the new prompt extends the tokens already in the cache only
// the new tokens are evaluated, otherwise the prompt is prefilled again.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "runtime/forward.h"
#include "commands.h"
#include "model_loader.h"
#include "runtime/sampler.h"
#include "runtime/sequence_driver.h"
#include "text/harmony_parse.h"

namespace oss4::cli {

namespace {
namespace h = oss4::harmony;

struct ChatArgs {
  std::string model, tokenizer, system, developer, effort = "medium";
  RunOptions run;
  bool has_system = false, has_developer = false, hide_reasoning = false, quiet = false;
  int64_t n_predict = 2048, ctx = 8192, chunk = 128;
  SamplerParams sp;
};

// prints the deltas of one assistant turn: a blank line between messages, analysis faint on a terminal.
class TurnPrinter {
 public:
  TurnPrinter(bool hide_reasoning, bool color) : hide_(hide_reasoning), color_(color) {}

  void print(const h::HarmonyParser& p, const h::ParseDelta& d) {
    if (d.message < 0 || d.text.empty()) return;
    const h::ParsedMessage& m = p.messages()[static_cast<size_t>(d.message)];
    const bool analysis = m.message.channel == "analysis";
    if (analysis && hide_) return;
    if (d.message != current_) {
      style(false);
      if (printed_) std::fputs("\n", stdout);
      current_ = d.message;
      style(analysis);
      if (m.message.recipient) std::printf("[to=%s] ", m.message.recipient->c_str());
    }
    std::fwrite(d.text.data(), 1, d.text.size(), stdout);
    std::fflush(stdout);
    printed_ = true;
  }

  void end_turn() {
    style(false);
    std::fputs("\n", stdout);
    std::fflush(stdout);
  }

 private:
  void style(bool faint) {
    if (!color_ || faint == faint_) return;
    std::fputs(faint ? "\x1b[2m" : "\x1b[0m", stdout);
    faint_ = faint;
  }

  bool hide_, color_;
  bool faint_ = false, printed_ = false;
  int64_t current_ = -1;
};

Status validate(const ChatArgs& a) {
  OSS4_TRY(validate_sampler_params(a.sp).with_context("--temperature/--top-p"));
  if (!h::reasoning_effort_from_name(a.effort)) return error("--reasoning-effort: expected low, medium or high, got '" + a.effort + "'");
  if (a.n_predict < 1) return error("-n: the number of tokens to generate must be at least 1");
  if (a.ctx < 2) return error("--ctx: the context size must be at least 2");
  if (a.chunk < 1) return error("--chunk: must be at least 1");
  return ok_status();
}

std::string default_tokenizer(const std::string& model) {
  const std::string in_model = model + "/tokenizer.json";
  return std::filesystem::exists(in_model) ? in_model : default_vocab_path();
}

class ChatSession {
 public:
  ChatSession(const ChatArgs& a, const ModelWeights& m, Forward& fwd, const h::HarmonyEncoding& enc, std::unique_ptr<KvCache> cache)
      : a_(a), m_(m), enc_(enc), cache_(std::move(cache)), fwd_(fwd), sampler_(a.sp) {
    h::SystemContent sys;
    if (a.has_system) sys.model_identity = a.system;
    sys.reasoning_effort = h::reasoning_effort_from_name(a.effort);
    conv_.messages.push_back(h::Message::system(std::move(sys)));
    if (a.has_developer) {
      h::DeveloperContent dev;
      dev.instructions = a.developer;
      conv_.messages.push_back(h::Message::developer(std::move(dev)));
    }
  }

  Status turn(const std::string& user_text, int turn_no) {
    conv_.messages.push_back(h::Message::text(h::Role::kUser, user_text));
    std::vector<int32_t> prompt;
    OSS4_TRY(enc_.render_conversation_for_completion(conv_, h::Role::kAssistant, h::RenderConfig{}, &prompt));
    const auto n_prompt = static_cast<int64_t>(prompt.size());
    if (n_prompt + a_.n_predict > cache_->max_ctx()) {
      return error("turn " + std::to_string(turn_no) + ": the conversation (" + std::to_string(n_prompt) + " tokens) + " +
                   std::to_string(a_.n_predict) + " to generate exceeds the context size " + std::to_string(cache_->max_ctx()) + " (--ctx)");
    }
    // the driver reuses what the cache holds of the new prompt (with the sliding layers' rings, only when it extends
    // the tokens held or goes back within the rings' spare slots; otherwise the prompt is prefilled again)
    DriverParams dp;
    dp.sampling = a_.sp;
    dp.max_tokens = a_.n_predict;
    dp.stop_ids = {enc_.ids().return_, enc_.ids().call};
    for (int64_t e : m_.cfg.eos_token_ids) dp.eos_ids.push_back(static_cast<int32_t>(e));
    h::HarmonyParser parser(enc_, h::Role::kAssistant);
    TurnPrinter printer(a_.hide_reasoning, isatty(STDOUT_FILENO) != 0);
    auto on_token = [&](int32_t tok, bool) {
      // <|return|> and <|call|> close the message in the parser; another end-of-sequence id is not harmony text
      const bool harmony_stop = tok == enc_.ids().return_ || tok == enc_.ids().call;
      if (harmony_stop || std::find(dp.eos_ids.begin(), dp.eos_ids.end(), tok) == dp.eos_ids.end()) printer.print(parser, parser.push(tok));
      return true;
    };
    OSS4_ASSIGN_OR_RETURN(DriveResult d, drive(fwd_, *cache_, &cached_, prompt, dp, on_token, &sampler_));
    printer.print(parser, parser.finish());
    printer.end_turn();
    const int64_t n_gen = static_cast<int64_t>(d.tokens.size());
    const char* stop = "max tokens";
    if (d.reason == StopReason::kStopToken) {
      const int32_t tok = d.tokens.back();
      stop = tok == enc_.ids().call ? "<|call|>" : tok == enc_.ids().return_ ? "<|return|>" : "end of sequence";
    }

    int n_malformed = 0;
    for (const h::ParsedMessage& pm : parser.messages()) {
      n_malformed += pm.malformed;
      if (pm.text().empty() && !pm.message.recipient) continue;  // nothing worth keeping in the history
      conv_.messages.push_back(pm.message);
    }
    if (!a_.quiet) {
      const double pre = d.prefill_s, dec = d.decode_s;
      std::fprintf(stderr, "[turn %d: prompt %lld tokens (%lld reused from the cache) in %.2f s; %lld generated in %.2f s (%.2f tok/s); stop: %s; %zu messages%s]\n",
                   turn_no, static_cast<long long>(n_prompt), static_cast<long long>(d.n_reused), pre, static_cast<long long>(n_gen), dec,
                   dec > 0 ? static_cast<double>(n_gen) / dec : 0.0, stop, parser.messages().size(),
                   n_malformed > 0 ? (", " + std::to_string(n_malformed) + " malformed").c_str() : "");
    }
    return ok_status();
  }

 private:
  const ChatArgs& a_;
  const ModelWeights& m_;
  const h::HarmonyEncoding& enc_;
  std::unique_ptr<KvCache> cache_;
  Forward& fwd_;
  Sampler sampler_;
  h::Conversation conv_;
  std::vector<int32_t> cached_;  // [cache_->n_pos()] the tokens whose K/V the cache holds, in order
};

int run_chat(ChatArgs a) {
  Status s = validate(a);
  if (!s.ok()) return fail(s);
  if (a.tokenizer.empty()) a.tokenizer = default_tokenizer(a.model);
  auto tok = load_tokenizer(a.tokenizer);
  if (!tok.ok()) return fail(tok.status());
  auto enc = h::HarmonyEncoding::create(*tok);
  if (!enc.ok()) return fail(enc.status().with_context(a.tokenizer));
  auto loaded = load_to_run(a.model, a.quiet, a.run);
  if (!loaded.ok()) return fail(loaded.status());
  const ModelWeights* m = loaded->weights.get();
  if (m->cfg.n_vocab <= enc->ids().call) {
    return fail(error(a.model + ": vocabulary of " + std::to_string(m->cfg.n_vocab) + " ids has no room for the harmony tokens of " + a.tokenizer));
  }
  auto cache = loaded->fwd->new_cache(std::min<int64_t>(a.ctx, m->cfg.max_position_embeddings), a.chunk);
  if (!cache.ok()) return fail(cache.status());
  ChatSession chat(a, *m, *loaded->fwd, *enc, std::move(cache).value());
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::string line;
  for (int turn_no = 1;; ++turn_no) {
    if (interactive) {
      std::fputs(">>> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      --turn_no;
      continue;
    }
    s = chat.turn(line, turn_no);
    if (!s.ok()) return fail(s);
  }
  if (interactive) std::fputs("\n", stdout);
  return 0;
}
}  // namespace

void add_chat(CLI::App& app, int* rc) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* sub = app.add_subcommand("chat", "multi-turn harmony chat: one user turn per line of stdin; replies stream to stdout");
  sub->add_option("-m,--model", a->model, "checkpoint directory")->required();
  add_run_options(sub, &a->run);
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or .tiktoken (default: the model's tokenizer.json, else the built-in o200k_base vocabulary)");
  CLI::Option* sys = sub->add_option("--system", a->system, "model identity line of the system message (default: harmony's)");
  CLI::Option* dev = sub->add_option("--developer", a->developer, "developer instructions (the usual 'system prompt')");
  sub->add_option("--reasoning-effort", a->effort, "low, medium or high")->capture_default_str();
  sub->add_flag("--hide-reasoning", a->hide_reasoning, "do not print the analysis channel (chain of thought)");
  sub->add_option("-n,--n-predict", a->n_predict, "most tokens to generate per turn")->capture_default_str();
  sub->add_option("--temperature", a->sp.temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-p", a->sp.top_p, "nucleus sampling mass, (0, 1]")->capture_default_str();
  sub->add_option("--seed", a->sp.seed, "sampling seed")->capture_default_str();
  sub->add_option("--ctx", a->ctx, "context size (KV cache positions) for the whole conversation")->capture_default_str();
  sub->add_option("--chunk", a->chunk, "prefill chunk size (tokens per forward call)")->capture_default_str();
  sub->add_flag("-q,--quiet", a->quiet, "no progress or per-turn statistics on stderr");
  sub->callback([a, rc, sys, dev] {
    a->has_system = sys->count() > 0;
    a->has_developer = dev->count() > 0;
    *rc = run_chat(*a);
  });
}

}  // namespace oss4::cli
