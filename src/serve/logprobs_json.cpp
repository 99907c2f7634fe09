#include "serve/logprobs_json.h"

#include <algorithm>
#include <cmath>

#include "text/utf8.h"

namespace oss4::serve {

namespace {

// OpenAI's value for a log-probability that is not finite (JSON has no -inf)
Json logprob_value(double lp) { return std::isfinite(lp) ? Json(lp) : Json(-9999.0); }

Json byte_array(std::string_view b) {
  Json a = Json::array();
  for (unsigned char c : b) a.push_back(static_cast<int>(c));
  return a;
}

// the token's text with U+FFFD in place of bytes that are not whole UTF-8
std::string lossy_text(std::string_view b) {
  std::string out;
  while (!b.empty()) {
    const size_t bad = utf8_first_invalid(b);
    out.append(b.substr(0, std::min(bad, b.size())));
    if (bad >= b.size()) break;
    out += "\xEF\xBF\xBD";
    b.remove_prefix(bad + 1);
  }
  return out;
}

}  // namespace

std::vector<TokenLogprob> LogprobCursor::take(int64_t n_pushed) {
  std::vector<TokenLogprob> out;
  if (n_taken_ >= n_pushed) return out;
  for (TokenLogprob& t : seq_.logprobs(n_seen_)) {
    if (n_taken_ >= n_pushed) break;
    ++n_seen_;
    if (std::find(skip_.begin(), skip_.end(), t.id) != skip_.end()) continue;
    ++n_taken_;
    out.push_back(std::move(t));
  }
  return out;
}

int64_t utf8_chars(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string legacy_token_text(std::string_view bytes) {
  if (utf8_first_invalid(bytes) >= bytes.size()) return std::string(bytes);
  static const char* hex = "0123456789abcdef";
  std::string s = "bytes:";
  for (unsigned char c : bytes) {
    s += "\\x";
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

Json chat_logprobs_content(const Tokenizer& tok, const std::vector<TokenLogprob>& lps) {
  auto entry = [&](int32_t id, double lp) {
    const std::string_view b = tok.token_bytes(id);
    return Json{{"token", lossy_text(b)}, {"logprob", logprob_value(lp)}, {"bytes", byte_array(b)}};
  };
  Json content = Json::array();
  for (const TokenLogprob& t : lps) {
    Json e = entry(t.id, t.logprob);
    Json top = Json::array();
    for (const TopLogprob& c : t.top) top.push_back(entry(c.id, c.logprob));
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return content;
}

Json legacy_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps, int64_t offset0) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(), text_offset = Json::array();
  int64_t at = offset0;
  for (const TokenLogprob& t : lps) {
    const std::string_view b = tok.token_bytes(t.id);
    tokens.push_back(legacy_token_text(b));
    text_offset.push_back(at);
    at += utf8_chars(b);
    if (std::isnan(t.logprob)) {  // the prompt's first token: nothing before it to predict it
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      continue;
    }
    token_logprobs.push_back(logprob_value(t.logprob));
    Json top = Json::object();
    for (const TopLogprob& c : t.top) top[legacy_token_text(tok.token_bytes(c.id))] = logprob_value(c.logprob);
    top_logprobs.push_back(std::move(top));
  }
  return Json{{"tokens", std::move(tokens)}, {"token_logprobs", std::move(token_logprobs)}, {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(text_offset)}};
}

}  // namespace oss4::serve
