// Fuzz target: the harmony streaming parser on token streams over a small alphabet that mixes the formatting tokens,
// other specials, an id without a token, header words and ordinary text (including a character split over two byte
// tokens). Whatever the order, the parser must not crash, every message must be complete and valid UTF-8, the
// streamed deltas of a message must add up to its text, and every ordinary token's text must survive in some
// message's header or content (nothing is dropped).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "text/harmony_parse.h"
#include "text/utf8.h"

namespace {

namespace h = oss4::harmony;

struct Alphabet {
  const oss4::Tokenizer* tok = nullptr;
  const h::HarmonyEncoding* enc = nullptr;
  std::vector<int32_t> ids;  // [n] the alphabet; a byte picks ids[byte % n]
};

const Alphabet& alphabet() {
  static const Alphabet a = [] {
    auto t = oss4::load_tokenizer(std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken");
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      std::abort();
    }
    Alphabet al;
    al.tok = new oss4::Tokenizer(std::move(t).value());
    auto e = h::HarmonyEncoding::create(*al.tok);
    if (!e.ok()) std::abort();
    al.enc = new h::HarmonyEncoding(*e);
    for (const char* s : {"<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>",
                          "<|startoftext|>", "<|endoftext|>", "<|reserved_200013|>"}) {
      al.ids.push_back(al.tok->special_id(s));
    }
    al.ids.push_back(999999);  // no token
    for (const char* s : {"assistant", "user", "analysis", "final", "commentary", " to", "=", "functions", ".get", "json",
                          " hello", " ", "\n", "caf\xC3\xA9", "\xF0\x9F\xA6\xA5", "robot", ":", "tool"}) {
      auto ids = al.tok->encode(s, false);
      if (!ids.ok()) std::abort();
      for (int32_t id : *ids) al.ids.push_back(id);
    }
    return al;
  }();
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Alphabet& a = alphabet();
  if (size == 0) return 0;
  // the first byte picks the starting role: after "<|start|>assistant", or at a <|start|>
  h::HarmonyParser p(*a.enc, data[0] % 2 == 0 ? std::optional<h::Role>(h::Role::kAssistant) : std::nullopt);
  std::vector<std::string> streamed;
  std::vector<std::string> ordinary;  // texts of the ordinary tokens pushed
  auto take = [&](const h::ParseDelta& d) {
    if (d.message < 0) {
      if (!d.text.empty()) std::abort();
      return;
    }
    if (static_cast<size_t>(d.message) >= p.messages().size()) std::abort();
    streamed.resize(p.messages().size());
    streamed[static_cast<size_t>(d.message)] += d.text;
  };
  for (size_t i = 1; i < size; ++i) {
    const int32_t id = a.ids[data[i] % a.ids.size()];
    if (!a.tok->is_special(id) && !a.tok->token_bytes(id).empty()) ordinary.emplace_back(a.tok->token_bytes(id));
    take(p.push(id));
  }
  take(p.finish());
  streamed.resize(p.messages().size());
  std::string all;
  for (size_t i = 0; i < p.messages().size(); ++i) {
    const h::ParsedMessage& m = p.messages()[i];
    if (!m.complete || m.message.content.size() != 1) std::abort();
    if (oss4::utf8_first_invalid(m.text()) != oss4::kUtf8Valid) std::abort();
    if (streamed[i] != m.text()) std::abort();
    if (m.malformed == m.reason.empty()) std::abort();
    all += m.header;
    all += '\x01';
    all += m.text();
    all += '\x01';
  }
  for (const std::string& t : ordinary) {
    // a byte token of a split character may come out as U+FFFD when its partner is missing: only whole characters
    if (oss4::utf8_first_invalid(t) != oss4::kUtf8Valid) continue;
    if (all.find(t) == std::string::npos) std::abort();
  }
  return 0;
}
