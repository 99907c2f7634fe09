// oss4._core.Request: one submitted sequence as its Python caller sees it. The engine makes its tokens; poll() takes
// the new ones and turns them into text: the UTF-8-safe decoder and the stop strings for a raw prompt (as
// /v1/completions does), or the harmony output parser for a chat (as /v1/chat/completions does: final text,
// reasoning and tool calls apart).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common.h"
#include "runtime/engine.h"
#include "serve/output.h"
#include "text/tokenizer.h"

namespace oss4::py {

class Request {
 public:
  struct Text {
    const Tokenizer* tok = nullptr;                  // null: no text (a model without tokenizer)
    const harmony::HarmonyEncoding* enc = nullptr;   // set: a chat, parsed as harmony
    std::vector<std::string> stops;                  // stop strings (the text ends before the first)
    std::vector<int32_t> hidden_ids;                 // ids that end the sequence without text of their own
    bool skip_special = true;                        // raw prompts: special tokens add no text (vLLM's default)
  };
  Request(std::shared_ptr<Sequence> seq, Text how, bool want_logprobs);
  ~Request();  // cancels the sequence if it is still running (an abandoned stream frees its KV)
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  // the tokens made since the last poll: (new ids, text delta, reasoning delta, done).
  std::tuple<std::vector<int32_t>, nb::str, nb::str, bool> poll();
  void cancel() { seq_->cancel(); }
  bool done() const { return done_; }
  const std::vector<int32_t>& token_ids() const { return token_ids_; }
  const std::string& text() const { return text_; }
  const std::string& reasoning() const { return reasoning_; }
  int64_t n_prompt() const { return seq_->n_prompt(); }
  int64_t n_reused() const { return seq_->n_reused(); }
  // vLLM's names: "stop" (a stop token or string), "length", "abort" (cancelled), "error"; "" while running
  std::string finish_reason() const;
  std::string error() const { return seq_->error_message(); }
  // [(id, logprob, [(top id, top logprob), ...])] of the tokens taken so far (with logprobs asked for)
  std::vector<std::tuple<int32_t, double, std::vector<std::pair<int32_t, double>>>> logprobs() const;
  // chat: [(call id, function name, arguments JSON text)]
  std::vector<std::tuple<std::string, std::string, std::string>> tool_calls() const;

 private:
  bool stop_hit() const { return harmony_ ? harmony_->stop_hit() : (matcher_ && matcher_->hit()); }
  void route(const std::vector<serve::OutputEvent>& ev, std::string* text, std::string* reasoning);
  void consume(int32_t id, std::string* text, std::string* reasoning);
  void finish(std::string* text, std::string* reasoning);

  std::shared_ptr<Sequence> seq_;
  Text how_;
  bool want_logprobs_;
  std::optional<serve::HarmonyOutput> harmony_;
  std::optional<StreamingDecoder> decoder_;
  std::optional<serve::StopMatcher> matcher_;
  std::vector<int32_t> token_ids_;
  std::string text_, reasoning_;
  bool done_ = false;
};

}  // namespace oss4::py
