#include "runtime/forward.h"

#include <algorithm>

namespace oss4 {

Status eval(Forward& f, KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, std::vector<float>* logits,
            const TraceFn& trace) {
  const ModelConfig& c = f.config();
  for (int64_t i = 0; i < n_tok; ++i) {
    if (ids[i] < 0 || ids[i] >= c.n_vocab) {
      return error("token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) + " is outside the vocabulary [0, " +
                   std::to_string(c.n_vocab) + ")");
    }
  }
  if (n_tok < 1) return error("nothing to evaluate: no tokens");
  if (cache.n_pos() + n_tok > cache.max_ctx()) {
    return error("context overflow: " + std::to_string(cache.n_pos()) + " cached + " + std::to_string(n_tok) +
                 " new tokens exceed the context size " + std::to_string(cache.max_ctx()));
  }
  if (logits != nullptr && mode != LogitsMode::kNone) {
    logits->assign(mode == LogitsMode::kAll ? static_cast<size_t>(n_tok * c.n_vocab) : static_cast<size_t>(c.n_vocab), 0.0f);
  }
  Batch b;
  KvCache* const caches[1] = {&cache};
  for (int64_t done = 0; done < n_tok;) {
    const int64_t n = std::min(cache.max_chunk(), n_tok - done);
    const bool all = logits != nullptr && mode == LogitsMode::kAll;
    const bool last = logits != nullptr && mode == LogitsMode::kLast && done + n == n_tok;
    b.clear();
    b.add_run(ids + done, n, cache.n_pos(), 0, last, all);
    float* out = all ? logits->data() + done * c.n_vocab : last ? logits->data() : nullptr;  // [rows asked, n_vocab]
    OSS4_TRY(f.run(b, caches, 1, out, trace));
    done += n;
  }
  return ok_status();
}

}  // namespace oss4
