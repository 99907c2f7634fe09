// Log-probabilities in OpenAI's shapes: chat completions' `logprobs.content` ({token, logprob, bytes, top_logprobs}
// per token) and legacy completions' `logprobs` ({tokens, token_logprobs, top_logprobs, text_offset}).
//
// A token whose bytes are not whole UTF-8 (a piece of a multi-byte character) is written as OpenAI writes it: in the
// legacy shape as the text "bytes:\xe2\x80" (every byte as \xNN); in the chat shape the token text has U+FFFD in place
// of the broken bytes and `bytes` holds the exact bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "serve/engine_names.h"
#include "text/tokenizer.h"

namespace oss4::serve {

using Json = nlohmann::ordered_json;  // as api_request.h: fields keep their order

// legacy completions' token text: the bytes when they are whole UTF-8, else "bytes:\xNN..."
std::string legacy_token_text(std::string_view bytes);

// chat completions' logprobs.content: one entry per token
Json chat_logprobs_content(const Tokenizer& tok, const std::vector<TokenLogprob>& lps);

// legacy completions' logprobs object of tokens in order (with echo: the prompt's first, whose first token has no
// log-probability: null). text_offset counts characters (UTF-8 lead bytes) from the start of the prompt text
// (offset0: the characters before the first token listed: 0 with echo, the prompt's without).
Json legacy_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps, int64_t offset0);

// walks a sequence's generated log-probabilities in step with the tokens an output (HarmonyOutput, TextOutput)
// consumed: the engine reports every generated token, the handlers push all but the `skip` ids (other eos ids).
class LogprobCursor {
 public:
  LogprobCursor(const Sequence& seq, std::vector<int32_t> skip) : seq_(seq), skip_(std::move(skip)) {}
  // the log-probabilities of the pushed tokens after those already taken, up to n_pushed in all
  std::vector<TokenLogprob> take(int64_t n_pushed);

 private:
  const Sequence& seq_;
  std::vector<int32_t> skip_;
  size_t n_seen_ = 0;    // generated tokens looked at
  int64_t n_taken_ = 0;  // pushed tokens handed out
};

// characters of UTF-8 text, counting every byte that does not continue a character (so broken bytes count too)
int64_t utf8_chars(std::string_view s);

}  // namespace oss4::serve
