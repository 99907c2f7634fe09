// Fuzz target: OpenAI API request bodies as `oss4 serve` reads them. Any bytes: parse_body never throws; a JSON object
// goes through the chat, responses and completions readers, and what they accept renders to a harmony prompt (or
// fails with a Status). Nothing may crash or throw: the server answers every body with a response or an error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "serve/api_request.h"

namespace {

namespace h = oss4::harmony;

const h::HarmonyEncoding& encoding() {
  static const h::HarmonyEncoding* enc = [] {
    auto t = oss4::load_tokenizer(std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken");
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      std::abort();
    }
    auto* tok = new oss4::Tokenizer(std::move(t).value());
    auto e = h::HarmonyEncoding::create(*tok);
    if (!e.ok()) std::abort();
    return new h::HarmonyEncoding(*e);
  }();
  return *enc;
}

void render(const oss4::serve::Parsed<oss4::serve::ChatRequest>& r) {
  if (!r.ok()) {
    if (r.error.message.empty()) std::abort();  // every refusal says why
    return;
  }
  std::vector<int32_t> ids;  // [n] the prompt
  (void)encoding().render_conversation_for_completion(r.value->conv, h::Role::kAssistant, h::RenderConfig{}, &ids);
  // tool_choice: a forced call names an offered tool, and gives one header per allowed tool
  namespace s = oss4::serve;
  const s::ChatRequest& c = *r.value;
  std::vector<std::vector<int32_t>> prefixes;  // [n_allowed][n] forced header tokens
  if (!s::tool_call_prefixes(c, encoding(), &prefixes).ok()) return;
  size_t want = 0;
  if (c.tool_choice == s::ToolChoice::kRequired) want = c.tool_names.size();
  if (c.tool_choice == s::ToolChoice::kFunction) {
    want = 1;
    bool offered = false;
    for (const auto& n : c.tool_names) offered = offered || n == c.forced_tool;
    if (!offered) std::abort();
  }
  if (prefixes.size() != want) std::abort();
  for (const auto& p : prefixes) {
    if (p.size() < 4 || p.front() != encoding().ids().channel || p.back() != encoding().ids().message) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace s = oss4::serve;
  auto body = s::parse_body(std::string(reinterpret_cast<const char*>(data), size));
  if (!body.ok()) return 0;
  render(s::parse_chat_request(*body.value));
  render(s::parse_responses_request(*body.value));
  auto c = s::parse_completion_request(*body.value);
  if (!c.ok() && c.error.message.empty()) std::abort();
  (void)s::api_error_json(c.error).dump();
  return 0;
}
