// What a Model holds (include/oss4/model.h keeps it opaque): for code inside the repository that binds the public API
// and needs the backend under it, such as the Python package's continuous batching (python/src/oss4_module.cpp runs
// a runtime/engine.h Engine over a loaded Model's Forward).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/load.h"
#include "oss4/model.h"
#include "text/tokenizer.h"

namespace oss4 {

struct Model::Impl {
  std::string dir;
  LoadedModel run;  // the weights and their backend
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model has no tokenizer files and none was given
  std::vector<int32_t> eos;
};

}  // namespace oss4
