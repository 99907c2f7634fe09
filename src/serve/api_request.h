// OpenAI API requests read into what the engine needs: /v1/chat/completions and /v1/responses become a harmony
// conversation (rendered to a completion prompt), /v1/completions a raw prompt. Validation gives OpenAI-shaped
// errors (message, type, param, code); unknown fields are ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "format/json_read.h"
#include "runtime/sampler.h"
#include "text/harmony_render.h"

namespace oss4::serve {

using Json = nlohmann::ordered_json;

// an error as the OpenAI API returns it: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};
Json api_error_json(const ApiError& e);
ApiError invalid(std::string message, std::string param = "", std::string code = "");

// sampling and length settings shared by the three endpoints.
struct GenSettings {
  SamplerParams sampling;
  std::optional<int64_t> max_tokens;  // none: up to the context
  std::vector<std::string> stop;      // stop strings (at most 4)
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  // log-probabilities: -1 none; else each token's and this many most likely tokens' (chat: logprobs true and
  // top_logprobs; completions: the integer logprobs)
  int64_t logprobs = -1;
  bool echo = false;                  // completions: the prompt comes back before the completion (scored with logprobs)
};

// a function tool call the model made (or one in the request's history).
struct ToolCall {
  std::string id, name, arguments;
};

// tool_choice: kAuto (the model decides; the default), kNone (the tools are not rendered), kRequired (the reply must
// call one of the tools) or kFunction (it must call ChatRequest::forced_tool).
enum class ToolChoice { kAuto, kNone, kRequired, kFunction };

struct ChatRequest {
  harmony::Conversation conv;
  GenSettings gen;
  bool has_tools = false;
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string forced_tool;              // kFunction: the function's name
  std::vector<std::string> tool_names;  // the function tools offered, in order
};

struct CompletionRequest {
  std::string prompt_text;               // when the prompt is text
  std::vector<int32_t> prompt_ids;       // when it is token ids
  bool prompt_is_ids = false;
  GenSettings gen;
};

// a parsed request or the error for it.
template <class T>
struct Parsed {
  std::optional<T> value;
  ApiError error;
  bool ok() const { return value.has_value(); }
};

Parsed<ChatRequest> parse_chat_request(const Json& body);

// what a reply must begin with under tool_choice: for "required" one sequence per tool, for a named function one:
// the tokens of "<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>" (the prompt ends with
// "<|start|>assistant"). None for "auto" and "none". See GenRequest::prefixes.
Status tool_call_prefixes(const ChatRequest& r, const harmony::HarmonyEncoding& enc, std::vector<std::vector<int32_t>>* out);
Parsed<ChatRequest> parse_responses_request(const Json& body);
Parsed<CompletionRequest> parse_completion_request(const Json& body);

// the body as JSON, or the error for malformed JSON, a body that is not an object or one nested deeper than
// kMaxJsonDepth (format/json_read.h: rendering and printing recurse).
Parsed<Json> parse_body(const std::string& body);

}  // namespace oss4::serve
