// oss4's public API: load a gpt-oss checkpoint, hold conversations' KV state, generate. The CLI's `generate` uses it,
// and a Python package can bind it as it is (nothing here names a backend, a kernel or an internal header).
//
//   auto model = oss4::Model::load("gpt-oss-20b-nvfp4");            // any checkpoint form oss4 reads
//   auto ctx = (*model)->new_context({.n_ctx = 4096});
//   auto prompt = (*model)->encode("<|start|>user<|message|>Hi<|end|><|start|>assistant", /*allow_special=*/true);
//   auto out = oss4::generate(**ctx, *prompt, {.temperature = 0, .max_tokens = 64},
//                             [](int32_t id, std::string_view text) { fputs(std::string(text).c_str(), stdout); return true; });
//
// Each Model has its own backend with its own options (device, activations, threads): two models in one process may
// differ. A Model's contexts share its backend, so use one model's contexts from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

struct ModelOptions {
  std::string device = "auto";      // auto (a CUDA GPU when one is visible, else the CPU) | cpu | cuda
  std::string lm_head = "stored";   // stored | bf16 | nvfp4 (a BF16 lm_head quantized at load)
  std::string activations = "auto"; // auto (f32 on the CPU, bf16 on CUDA) | f32 (W4A16) | bf16 | q8 (8-bit, CPU)
  std::string kernels = "auto";     // CPU kernel rung: auto | ref | avx2 | avx512
  int threads = 0;                  // 0: every core
  std::string tokenizer;            // tokenizer.json / .tiktoken; default: the model's tokenizer.json, else built in
  std::function<void(int64_t done, int64_t total)> progress;  // loading progress in layers, or empty
};

struct ContextOptions {
  int64_t n_ctx = 4096;       // the most positions the context may hold (capped at the model's maximum)
  int64_t chunk = 128;        // prefill chunk: the most tokens one forward call evaluates
  // true: sliding-window layers keep every position too, so truncate() (and prefix reuse) can go back to any
  // length; false: they keep a ring of the window (less memory), and truncate() can only go back within it.
  bool rewindable = true;
};

struct SamplingParams {
  float temperature = 1.0f;   // 0: greedy
  float top_p = 1.0f;         // (0, 1]
  int64_t top_k = 0;          // 0: off
  uint64_t seed = 0;
  int64_t max_tokens = 16;    // at least 1
  std::vector<int32_t> stop_token_ids;  // stop after any of these (besides the model's EOS ids)
  bool ignore_eos = false;    // do not stop at the model's EOS ids (stop_token_ids still stop)
};

enum class FinishReason { kLength, kStop, kCancelled };
const char* finish_reason_name(FinishReason r);  // "length", "stop", "cancelled"

class Context;

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(const std::string& dir, const ModelOptions& opt = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& dir() const;
  int64_t n_vocab() const;
  int64_t max_context() const;  // max_position_embeddings
  const std::vector<int32_t>& eos_token_ids() const;  // generation_config.json's (else config.json's)

  Result<std::vector<int32_t>> encode(std::string_view text, bool allow_special) const;
  Result<std::string> decode(const std::vector<int32_t>& ids) const;

  Result<std::unique_ptr<Context>> new_context(const ContextOptions& opt = {}) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// one sequence's state: the tokens evaluated so far and their K/V. Not thread-safe; one per conversation.
class Context {
 public:
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const std::vector<int32_t>& tokens() const;
  int64_t n_ctx() const;
  // evaluates ids after the tokens held; logits of the last one [n_vocab] f32 into *last_logits when not null.
  Status append(const std::vector<int32_t>& ids, std::vector<float>* last_logits);
  // keeps the first n tokens (n <= tokens().size()) and forgets the rest, so a prompt that extends them reuses them.
  Status truncate(int64_t n);

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  friend class Model;
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct GenerateResult {
  std::vector<int32_t> token_ids;   // the generated tokens, the stop token included
  std::string text;                 // their text (empty when the model has no tokenizer)
  FinishReason finish_reason = FinishReason::kLength;
  int64_t n_prompt = 0;             // prompt tokens
  int64_t n_reused = 0;             // of those, already in the context (not evaluated again)
  double prefill_s = 0, decode_s = 0;
};

// called once per generated token with its id and the text it completes (UTF-8 safe: bytes of a character
// that is not whole yet come with a later token); returning false stops generation (FinishReason::kCancelled).
using TokenCallback = std::function<bool(int32_t id, std::string_view text)>;

// makes the context hold `prompt` (reusing the longest common prefix of what it holds), then samples up to
// max_tokens tokens, stopping after an EOS id (unless ignore_eos) or a stop_token_ids id. The context keeps the
// prompt and every generated token but the last, whose K/V were never needed.
Result<GenerateResult> generate(Context& ctx, const std::vector<int32_t>& prompt, const SamplingParams& p,
                                const TokenCallback& on_token = nullptr);

}  // namespace oss4
