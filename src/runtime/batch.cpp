#include "runtime/batch.h"

#include <string>

#include "runtime/kv_cache.h"

namespace oss4 {

void Batch::clear() {
  ids.clear();
  pos.clear();
  seq.clear();
  logits.clear();
}

void Batch::add(int32_t id, int64_t p, int32_t s, bool want_logits) {
  ids.push_back(id);
  pos.push_back(p);
  seq.push_back(s);
  logits.push_back(want_logits ? 1 : 0);
}

void Batch::add_run(const int32_t* run_ids, int64_t n, int64_t n_pos, int32_t s, bool last_logits, bool all_logits) {
  for (int64_t i = 0; i < n; ++i) add(run_ids[i], n_pos + i, s, all_logits || (last_logits && i == n - 1));
}

Status check_batch(const Batch& b, KvCache* const* caches, int64_t n_caches, const ModelConfig& cfg, BatchPlan* plan) {
  const int64_t n = b.size();
  plan->runs.clear();
  plan->logit_rows.clear();
  if (n < 1) return error("nothing to evaluate: no tokens");
  if (static_cast<int64_t>(b.pos.size()) != n || static_cast<int64_t>(b.seq.size()) != n || static_cast<int64_t>(b.logits.size()) != n) {
    return error("batch: ids, pos, seq and logits must have one entry per row (" + std::to_string(n) + ")");
  }
  std::vector<uint8_t> seen(static_cast<size_t>(n_caches), 0);  // [n_caches] whether a run of that sequence came
  for (int64_t i = 0; i < n; ++i) {
    const std::string row = "row " + std::to_string(i);
    if (b.ids[i] < 0 || b.ids[i] >= cfg.n_vocab) {
      return error("token id " + std::to_string(b.ids[i]) + " at " + row + " is outside the vocabulary [0, " + std::to_string(cfg.n_vocab) + ")");
    }
    const int32_t s = b.seq[i];
    if (s < 0 || s >= n_caches || caches[s] == nullptr) return error(row + ": sequence " + std::to_string(s) + " has no cache");
    if (i == 0 || b.seq[i - 1] != s) {
      if (seen[static_cast<size_t>(s)]) return error(row + ": the rows of sequence " + std::to_string(s) + " are not contiguous");
      seen[static_cast<size_t>(s)] = 1;
      plan->runs.push_back({s, i, 0});
    }
    SeqRun& r = plan->runs.back();
    const int64_t want = caches[s]->n_pos() + r.n;
    if (b.pos[i] != want) {
      return error(row + ": position " + std::to_string(b.pos[i]) + " of sequence " + std::to_string(s) + " should be " + std::to_string(want) +
                   " (positions follow the cache's)");
    }
    ++r.n;
    if (b.logits[i]) plan->logit_rows.push_back(i);
  }
  for (size_t a = 0; a < plan->runs.size(); ++a) {
    for (size_t o = 0; o < a; ++o) {
      if (caches[plan->runs[o].seq] == caches[plan->runs[a].seq]) {
        return error("batch: sequences " + std::to_string(plan->runs[o].seq) + " and " + std::to_string(plan->runs[a].seq) + " share a KV cache");
      }
    }
  }
  for (const SeqRun& r : plan->runs) OSS4_TRY(caches[r.seq]->reserve(r.n).with_context("sequence " + std::to_string(r.seq)));
  return ok_status();
}

}  // namespace oss4
