// One forward call's tokens, as llama.cpp's llama_batch: row i is token ids[i] of sequence seq[i] at position pos[i],
// and logits[i] says whether the caller wants that row's logits. A prefill chunk is one sequence's run of rows, a
// decode step one row per sequence, a mixed step both. A sequence's rows are contiguous and their positions
// consecutive, starting where its cache ends (check_batch enforces it), so attention reads each sequence's own cache.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "oss4/status.h"

namespace oss4 {

class KvCache;

struct Batch {
  std::vector<int32_t> ids;     // [n] token ids
  std::vector<int64_t> pos;     // [n] positions
  std::vector<int32_t> seq;     // [n] the sequence: an index into the caches the call is given
  std::vector<uint8_t> logits;  // [n] 1: return this row's logits

  int64_t size() const { return static_cast<int64_t>(ids.size()); }
  void clear();
  void add(int32_t id, int64_t pos, int32_t seq, bool want_logits);
  // n tokens of one sequence whose cache holds n_pos positions; logits for the last of them, or for all
  void add_run(const int32_t* ids, int64_t n, int64_t n_pos, int32_t seq, bool last_logits, bool all_logits = false);
};

// one sequence's rows in a checked batch
struct SeqRun {
  int32_t seq = 0;
  int64_t row0 = 0, n = 0;  // rows row0 .. row0 + n - 1, positions pos[row0] ..
};

// what check_batch learns: each sequence's rows, and the rows that want logits, in batch order
struct BatchPlan {
  std::vector<SeqRun> runs;           // [n_runs] in batch order
  std::vector<int64_t> logit_rows;    // [n_logits]
};

// checks a batch against its caches (ids in the vocabulary, every seq index valid, each sequence's rows contiguous with
// positions consecutive from its cache's n_pos(), no cache given twice, the context and chunk limits) and reserves
// the caches' room. Errors name the row and sequence; nothing is evaluated.
Status check_batch(const Batch& b, KvCache* const* caches, int64_t n_caches, const ModelConfig& cfg, BatchPlan* plan);

}  // namespace oss4
