// oss4._core.Tokenizer: the o200k_harmony tokenizer, loaded on its own (a file, a model directory, the built-in
// vocabulary) or a loaded model's (LLM.get_tokenizer(): it keeps that model alive).
#pragma once

#include <memory>

#include "common.h"
#include "text/tokenizer.h"

namespace oss4::py {

struct PyTokenizer {
  std::shared_ptr<const Tokenizer> owned;  // set when this object loaded it
  const Tokenizer* tok = nullptr;
  nb::object owner;                        // the model that owns *tok, or None
};

}  // namespace oss4::py
