// The serving engine: continuous batching over one model, without HTTP (src/serve/ puts HTTP in front of it).
// Requests (token ids in) queue, join the running batch between steps while the KV budget allows, and advance
// together: every step is one Forward::run whose batch holds the running sequences' decode tokens and the prefill
// chunks scheduled this step (a mixed step); a prefill longer than one chunk per sequence takes further runs or steps.
// Each sequence's generation logic (sampling, forced prefixes, stops, limits) is its SequenceDriver's. Finished
// sequences park their KV cache so that a later prompt sharing a prefix (a system prompt, earlier turns, an agent
// loop) starts from it instead of recomputing it.
//
// Server sequences keep full-length K/V on every layer (KvCache sliding_ring = false; sliding-window layers then
// restrict attention by position only), so a parked cache can be rolled back to any shared prefix, sliding-window
// layers included. The price is memory: a sliding layer holds all positions instead of window + chunk.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "runtime/forward.h"
#include "runtime/kv_cache.h"
#include "runtime/logprobs.h"
#include "runtime/sampler.h"
#include "runtime/sequence_driver.h"

namespace oss4 {

struct EngineConfig {
  int64_t max_seqs = 16;                  // sequences decoded together in one step
  int64_t max_queue = 256;                // waiting requests; beyond this submit() refuses (HTTP 429)
  int64_t ctx = 4096;                     // most positions of one sequence (prompt + generated)
  int64_t chunk = 128;                    // prefill chunk (tokens per forward call)
  int64_t kv_budget_bytes = int64_t{4} << 30;  // K/V of running and parked sequences together
  bool prefix_reuse = true;               // park finished caches and start new prompts from the longest shared prefix
  // prompt tokens prefilled per scheduler step (all new sequences together) before the running sequences take their
  // decode step, in whole chunks (rounded down to a multiple of `chunk`, at least one); 0: whole prompts at once
  int64_t prefill_chunk = 256;
};

struct GenRequest {
  std::vector<int32_t> prompt;       // [n_prompt] token ids, at least one
  SamplerParams sampling;
  int64_t max_tokens = 256;          // most tokens to generate (0: none, only with score_prompt)
  int64_t top_logprobs = -1;         // >= 0: report each generated token's log-probability and this many most likely
  bool score_prompt = false;         // report the prompt's log-probabilities (with top_logprobs, at least 0); such a
                                     // prompt is evaluated whole (no prefix reuse), every position's logits
  std::vector<int32_t> stop_ids;     // a sampled id in this set ends the sequence (it is still reported)
  std::vector<int32_t> script;       // test facility: when set, these ids are emitted in place of sampled ones
  // the reply must begin with one of these token sequences (a forced tool call, tool_choice): while it is inside
  // them, only tokens that continue one are kept: a single such token is emitted as it is, several are sampled among
  // (the others masked). Once one sequence is complete, sampling is free.
  std::vector<std::vector<int32_t>> prefixes;
};

// one token's log-probability under the model (log-softmax of its raw logits: no temperature, top-p or masking) and
// the most likely tokens at that position, most likely first.
struct TokenLogprob {
  int32_t id = -1;
  double logprob = 0;
  std::vector<TopLogprob> top;
};

// one request's sequence as its client sees it: tokens come out as the engine samples them. Thread-safe.
class Sequence {
 public:
  // waits until there are new tokens or the sequence ended, at most `timeout`; moves the new tokens into *out
  // (appending). Returns true once the sequence has ended and every token was taken.
  bool wait(std::vector<int32_t>* out, std::chrono::milliseconds timeout);
  // asks the engine to stop this sequence and free its KV cache before its next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  StopReason finish_reason() const;
  std::string error_message() const;
  int64_t n_prompt() const { return n_prompt_; }
  int64_t n_reused() const;          // prompt tokens whose K/V came from a parked cache
  int64_t n_generated() const;
  double ttft_seconds() const;       // submit to first token; -1 before it
  // with GenRequest::top_logprobs >= 0: the generated tokens' log-probabilities from index `from` on (those of the
  // tokens wait() handed out are there by then)
  std::vector<TokenLogprob> logprobs(size_t from = 0) const;
  // with GenRequest::score_prompt: [n_prompt], complete once the first token (or the end) came; the first token has
  // no log-probability (logprob NaN, no top)
  std::vector<TokenLogprob> prompt_logprobs() const;

 private:
  friend class Engine;
  void push(int32_t id, TokenLogprob* lp);  // lp: moved into logprobs() when not null
  void end(StopReason r, std::string message = "");

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> pending_;  // [n] tokens not yet taken by wait()
  std::vector<TokenLogprob> logprobs_;         // [n_generated] when asked for
  std::vector<TokenLogprob> prompt_logprobs_;  // [n_prompt] when asked for
  bool ended_ = false;
  StopReason reason_ = StopReason::kNone;
  std::string error_;
  int64_t n_prompt_ = 0, n_reused_ = 0, n_generated_ = 0;
  std::chrono::steady_clock::time_point t_submit_;
  double ttft_ = -1;
  std::atomic<bool> cancelled_{false};
};

enum class SubmitError { kNone, kInvalid, kTooLong, kOverloaded };

struct SubmitResult {
  std::shared_ptr<Sequence> seq;  // set when err == kNone
  SubmitError err = SubmitError::kNone;
  std::string message;
};

struct EngineStats {
  int64_t n_running = 0, n_waiting = 0, n_parked = 0;
  int64_t kv_bytes_used = 0;       // allocated K/V of running and parked sequences
  int64_t kv_bytes_reserved = 0;   // what admission counts: running plans + parked caches
  int64_t kv_bytes_parked = 0;     // allocated K/V of parked sequences (kv_bytes_used once nothing runs)
  int64_t kv_bytes_budget = 0;
  int64_t n_prompt_tokens = 0, n_reused_tokens = 0, n_generated_tokens = 0;
  int64_t n_finished = 0, n_cancelled = 0, n_rejected = 0;
  int64_t n_steps = 0;             // scheduler steps that ran the model
  int64_t n_runs = 0;              // Forward::run calls (a step makes one, more while a prefill spans several chunks)
  int64_t n_mixed_steps = 0;       // steps whose first run served both running sequences' decode tokens and prefill
  int64_t n_prefill_calls = 0;     // prefills (one per sequence per step that prefilled some of its prompt)
  double decode_tok_per_s = 0;     // tokens per second of the last decode-only runs (moving average)
};

class Engine {
 public:
  // the backend (and the weights it runs) must outlive the engine, which is its only user while it runs.
  static Result<std::unique_ptr<Engine>> create(Forward& fwd, const EngineConfig& cfg);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // queues a request. Refuses (without queueing) a prompt that is empty, has ids outside the vocabulary, does not fit
  // the context or the KV budget (kInvalid, kTooLong), or a full queue (kOverloaded).
  SubmitResult submit(GenRequest r);

  // runs the scheduler on its own thread until stop() (or the destructor).
  void start();
  void stop();
  // one scheduler iteration on the caller's thread (tests; only when not started): admit; one run of the running
  // sequences' decode tokens together with the prefill chunks the step's budget allows (further runs for prompts
  // longer than a chunk); a decode run for the sequences whose prompt completed in this step; retire. Returns false
  // when there was nothing to do.
  bool step();

  EngineStats stats() const;
  const EngineConfig& config() const { return cfg_; }
  const ModelConfig& model_config() const { return mc_; }
  // bytes of K/V one position takes (every layer, K and V), as the backend stores them.
  int64_t bytes_per_position() const { return bytes_per_pos_; }

 private:
  struct Slot {
    std::shared_ptr<Sequence> seq;
    GenRequest req;
    std::unique_ptr<KvCache> cache;
    std::vector<int32_t> cached;  // [cache->n_pos()] the tokens whose K/V the cache holds, in order
    std::optional<SequenceDriver> driver;  // made once the prompt is in the cache
    int32_t next = -1;            // sampled, not yet evaluated
    int64_t plan_bytes = 0;       // K/V reserved for prompt + max_tokens
    int64_t n_done = 0;           // prompt tokens whose K/V the cache holds (reused or prefilled so far)
    bool prefill_started = false;
    bool prefilled = false;       // the whole prompt is in the cache and the first token sampled
    bool done = false;
    bool live() const { return !done && !seq->cancelled(); }
  };
  struct Parked {
    std::vector<int32_t> tokens;  // [n_pos] the tokens whose K/V the cache holds
    std::unique_ptr<KvCache> cache;
  };
  // one sequence's rows in a step's run: a decode token (n = 1, the slot's next) or prefill prompt tokens
  // [from, from + n) (at most the cache's max_chunk; `last`: they end the prompt)
  struct Rows {
    Slot* s = nullptr;
    bool decode = false;
    int64_t from = 0, n = 0;
    bool last = false;
  };

  Engine(Forward& fwd, const EngineConfig& cfg);
  void loop();
  // moves waiting requests into the batch while slots and the KV budget allow. Holds mu_.
  void admit_locked();
  int64_t reserved_bytes_locked() const;
  // a slot's first prefill: keeps what its cache (a parked one sharing the prompt's longest prefix) holds of the
  // prompt, or makes a new cache.
  Status start_prefill(Slot& s);
  // prompt tokens one step may prefill (whole chunks), or INT64_MAX
  int64_t prefill_budget() const;
  // a scored prompt's n next tokens, one chunk per eval with every position's logits (not batched with others)
  Status score_prefill(Slot& s, int64_t n);
  // the prompt is in the cache: counts it, makes the driver and takes the first token from the logits [n_vocab] of
  // its last position
  void finish_prefill(Slot& s, const float* logits);
  // one Forward::run over the rows, in order; then each decode slot takes its next token, each prefill slot its
  // prompt tokens (and, with the last ones, its first token). On an error the slots of the run end.
  void run_rows(const std::vector<Rows>& rows);
  // chooses (SequenceDriver::next) the next token of a slot from logits [n_vocab] and reports it; may end the slot.
  void emit(Slot& s, const float* logits);
  // log-probabilities of the prompt tokens after the positions of rows [n_rows, n_vocab] that begin at position `from`
  void score_prompt_rows(Slot& s, const float* rows, int64_t n_rows, int64_t from);
  void retire_locked();

  const EngineConfig cfg_;
  Forward& fwd_;
  const ModelConfig& mc_;
  int64_t bytes_per_pos_ = 0;
  std::vector<float> logits_;  // [rows asking in a run, n_vocab]

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Slot>> waiting_;
  std::vector<std::unique_ptr<Slot>> running_;
  std::list<Parked> parked_;   // most recently used first
  EngineStats st_;
  std::thread thread_;
  bool stop_ = false;
  bool started_ = false;
};

}  // namespace oss4
