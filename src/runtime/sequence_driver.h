// One sequence's generation logic, shared by the serving engine's slots (runtime/engine.h), the public API's
// generate() (src/api/model.cpp) and `oss4 chat`: which prompt tokens a cache may keep (prefix reuse), how the next
// token is chosen (the Sampler, a forced prefix, a test script) and when the sequence ends (a stop id, EOS unless
// ignore_eos, max_tokens, a full context).
//
// The engine drives many sequences through batched forward calls and uses the pieces (reuse_prefix, then
// SequenceDriver::next on each row of logits); a caller with one sequence uses drive(), which runs the whole loop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "oss4/status.h"
#include "runtime/forward.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"

namespace oss4 {

// why a sequence ended (kNone: it has not)
enum class StopReason { kNone, kStopToken, kLength, kCancelled, kError };
const char* stop_reason_name(StopReason r);  // "none", "stop", "length", "cancelled", "error"

// the prompt tokens a cache holding `held` may keep: their longest common prefix, short of the prompt's last token
// (which is evaluated again: its logits start sampling).
int64_t reusable_prefix(const std::vector<int32_t>& held, const std::vector<int32_t>& prompt);

// makes the cache (holding the tokens *held) keep reusable_prefix(*held, prompt) positions and *held those tokens.
// A cache whose rings cannot roll back that far is cleared instead. Returns the positions kept.
Result<int64_t> reuse_prefix(KvCache& cache, std::vector<int32_t>* held, const std::vector<int32_t>& prompt);

struct DriverParams {
  SamplerParams sampling;
  int64_t max_tokens = 16;                 // most tokens to generate
  std::vector<int32_t> stop_ids;           // a sampled id in this set ends the sequence (it is still reported)
  std::vector<int32_t> eos_ids;            // the model's end-of-sequence ids: they stop it too, unless ignore_eos
  bool ignore_eos = false;
  std::vector<int32_t> script;             // test facility: these ids are emitted in place of sampled ones; when they
                                           // run out the sequence ends (kStopToken) without another token
  // the reply must begin with one of these token sequences: while it is inside them only tokens that continue one are
  // kept (a single such token is emitted as it is, several are sampled among). Once one is complete, sampling is free.
  std::vector<std::vector<int32_t>> prefixes;
};

// the token chosen after one position, and whether the sequence ends with it
struct NextToken {
  int32_t id = -1;                      // -1: the sequence ended without a token (a script ran out)
  StopReason end = StopReason::kNone;   // kNone: the sequence goes on (id is evaluated next)
};

class SequenceDriver {
 public:
  // sampler: when not null, used (and advanced) in place of one made from p.sampling (a chat keeps one across turns);
  // it must outlive the driver.
  SequenceDriver(const DriverParams& p, int64_t n_vocab, Sampler* sampler = nullptr);
  SequenceDriver(const SequenceDriver&) = delete;  // sampler_ may point into the driver
  SequenceDriver& operator=(const SequenceDriver&) = delete;

  // chooses the next token from the logits [n_vocab] of the last evaluated position of a cache that now holds n_pos
  // of at most max_ctx positions, and says whether the sequence ends: at a stop or EOS id (kStopToken), at max_tokens
  // or when the context has no room for the token (kLength).
  NextToken next(const float* logits, int64_t n_pos, int64_t max_ctx);
  int64_t n_generated() const { return n_gen_; }
  const DriverParams& params() const { return p_; }

 private:
  // the next token while still inside the prefixes, or -1 when sampling is free
  int32_t constrained_token(const float* logits);

  DriverParams p_;
  int64_t n_vocab_ = 0;
  std::optional<Sampler> own_;  // the sampler when none was given
  Sampler* sampler_ = nullptr;
  std::vector<size_t> alive_;   // the prefixes the tokens so far agree with (while constrained)
  std::vector<float> masked_;   // [n_vocab] logits with the tokens no prefix allows at -inf
  int64_t n_gen_ = 0;
};

struct DriveResult {
  std::vector<int32_t> tokens;   // generated, the stop token included
  StopReason reason = StopReason::kNone;
  int64_t n_reused = 0;          // prompt tokens the cache kept
  double prefill_s = 0, decode_s = 0;
};

// called once per generated token; `last` when the sequence ends with it. Returning false stops (kCancelled).
using DriveCallback = std::function<bool(int32_t id, bool last)>;

// one sequence alone: reuses the prefix *held shares with the prompt (reuse_prefix), evaluates the rest of the prompt,
// then samples and evaluates token by token until the driver ends it. Afterwards the cache and *held hold the prompt
// and every generated token but the last (whose K/V were never needed); a failed call leaves them consistent.
// sampler: as SequenceDriver's.
Result<DriveResult> drive(Forward& f, KvCache& cache, std::vector<int32_t>* held, const std::vector<int32_t>& prompt,
                          const DriverParams& p, const DriveCallback& on_token = nullptr, Sampler* sampler = nullptr);

}  // namespace oss4
