// Fuzz target: encoding arbitrary bytes never crashes; valid UTF-8 round-trips through encode and decode with and
// without special tokens, and the streaming decoder reproduces decode(); invalid UTF-8 is rejected.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

const oss4::Tokenizer& tokenizer() {
  static const oss4::Tokenizer* tok = [] {
    auto t = oss4::load_tokenizer(std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken");
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      std::abort();
    }
    return new oss4::Tokenizer(std::move(t).value());
  }();
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const oss4::Tokenizer& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = oss4::utf8_first_invalid(text) == oss4::kUtf8Valid;
  for (bool allow_special : {false, true}) {
    auto ids = tok.encode(text, allow_special);
    if (ids.ok() != valid) std::abort();
    if (!valid) continue;
    auto back = tok.decode(*ids);
    if (!back.ok() || *back != text) std::abort();
    oss4::StreamingDecoder dec(tok);
    std::string streamed;
    for (int32_t id : *ids) {
      std::string chunk;
      if (!dec.push(id, &chunk).ok() || oss4::utf8_first_invalid(chunk) != oss4::kUtf8Valid) std::abort();
      streamed += chunk;
    }
    streamed += dec.flush();
    if (streamed != text) std::abort();
  }
  return 0;
}
