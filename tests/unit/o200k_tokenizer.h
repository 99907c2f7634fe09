// The real o200k_harmony tokenizer (data/o200k_base.tiktoken) and its harmony encoding, made once per test binary.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "text/harmony_render.h"
#include "text/tokenizer.h"

namespace oss4::test {

inline const Tokenizer& o200k_tokenizer() {
  static const Tokenizer* tok = [] {
    auto t = load_tokenizer(std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken");
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      std::abort();
    }
    return new Tokenizer(std::move(t).value());
  }();
  return *tok;
}

inline const harmony::HarmonyEncoding& o200k_harmony() {
  static const harmony::HarmonyEncoding enc = *harmony::HarmonyEncoding::create(o200k_tokenizer());
  return enc;
}

}  // namespace oss4::test
