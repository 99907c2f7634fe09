// The model's output as the API returns it. HarmonyOutput runs the harmony parser over generated tokens and splits
// the messages into parts: reasoning (the analysis channel), text (final, or commentary without a recipient) and
// tool calls (a recipient such as functions.get_weather, arguments as the content). TextOutput decodes raw
// completions. Both apply stop strings to text, holding back what could be the start of one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "text/harmony_parse.h"

namespace oss4::serve {

// finds stop strings in streamed text: holds back a tail that could still become a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // appends text; returns what may be released now. After a match, hit() is true and the rest is dropped.
  std::string push(const std::string& text);
  // the end of the text: releases what was held back.
  std::string flush();
  bool hit() const { return hit_; }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;
  bool hit_ = false;
};

enum class PartKind { kReasoning, kText, kToolCall };

struct OutputPart {
  PartKind kind = PartKind::kText;
  std::string text;             // reasoning or text; a tool call's arguments
  std::string tool_name;        // kToolCall: "get_weather" (recipient without "functions.")
  std::string call_id;          // kToolCall: "call_…"
  bool closed = false;
};

// what one token changed: a part opened, text appended to it, or it closed.
struct OutputEvent {
  enum class Type { kOpen, kDelta, kClose } type = Type::kDelta;
  size_t part = 0;
  std::string text;  // kDelta
};

class HarmonyOutput {
 public:
  HarmonyOutput(const harmony::HarmonyEncoding& enc, std::vector<std::string> stops, std::string call_id_prefix);
  // consumes one generated token.
  std::vector<OutputEvent> push(int32_t id);
  // the end of generation: closes what is open.
  std::vector<OutputEvent> finish();

  const std::vector<OutputPart>& parts() const { return parts_; }
  bool stop_hit() const { return stop_.hit(); }
  bool has_tool_calls() const;
  // every text part, joined; every reasoning part, joined.
  std::string text() const;
  std::string reasoning() const;
  // one entry per pushed token: true when the token is content, for chat completions' logprobs.content: an
  // ordinary token inside the body of a text part's message, or a token of a header that never reached <|message|>
  // and whose raw text became a text part (malformed output). Message headers, structural special tokens,
  // reasoning and tool calls are not content. Read at the end of a turn: a header's tokens become content only once
  // the header is known to be cut off.
  std::vector<bool> content_tokens() const;

 private:
  void route(const harmony::ParseDelta& d, std::vector<OutputEvent>* ev);
  // closes part pi: a text part first releases what the stop matcher held (a delta), then the close event.
  void close_part(size_t pi, std::vector<OutputEvent>* ev);
  void close_open(std::vector<OutputEvent>* ev);

  harmony::HarmonyParser parser_;
  StopMatcher stop_;
  std::string call_prefix_;
  std::vector<OutputPart> parts_;
  std::vector<int64_t> part_of_msg_;  // [n_messages] part index of each parser message (-1: none yet)
  size_t n_closed_msgs_ = 0;
  // [n pushed] the message each token belongs to (-1: none), and whether it was read as a header (not a body)
  struct TokenPlace {
    int64_t message = -1;
    bool header = false;
  };
  std::vector<TokenPlace> token_places_;
  const harmony::HarmonyEncoding& enc_;
};

// raw text out of token ids (the completions endpoint).
class TextOutput {
 public:
  TextOutput(const Tokenizer& tok, std::vector<std::string> stops) : dec_(tok), stop_(std::move(stops)) {}
  std::string push(int32_t id);
  std::string finish();
  bool stop_hit() const { return stop_.hit(); }
  int64_t n_pushed() const { return n_pushed_; }  // tokens pushed (their log-probabilities are the reply's)

 private:
  int64_t n_pushed_ = 0;
  StreamingDecoder dec_;
  StopMatcher stop_;
};

}  // namespace oss4::serve
