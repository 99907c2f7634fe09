// Loading a model for a command, with progress and one-line errors.
#pragma once

#include <cstdio>
#include <memory>

#include "core/progress.h"
#include "model/weights.h"

namespace oss4::cli {

inline Result<ModelWeights> load_with_progress(const std::string& dir, bool quiet) {
  std::unique_ptr<Progress> p;
  auto m = load_model(dir, [&](int64_t done, int64_t total) {
    if (quiet) return;
    if (!p) p = std::make_unique<Progress>("loading " + dir, total, "layers");
    p->update(done);
  });
  if (p) p->finish();
  return m;
}

}  // namespace oss4::cli
