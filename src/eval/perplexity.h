// Perplexity as llama.cpp's llama-perplexity computes it, and KL divergence against a base model's saved
// distributions (its --kl-divergence). The text's tokens are cut into consecutive chunks of ctx tokens; each chunk is
// evaluated from an empty cache, and only its second half is scored (every prediction there has at least ctx/2
// tokens of context): the predictions at positions ctx/2 .. ctx-2 of the next token. One forward pass per chunk (the
// prefill; no second pass).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/forward.h"
#include "eval/saved_logits.h"

namespace oss4 {

struct PerplexityConfig {
  int64_t ctx = 512;        // tokens per chunk
  int64_t max_chunks = -1;  // chunks to score (-1: every whole chunk of the text)
  int64_t eval_chunk = 128; // tokens per forward call
  int64_t save_top_k = 0;   // > 0: fill PerplexityResult::saved with this many tokens per scored position
};

// mean of per-token values with the standard error of that mean
struct MeanStderr {
  double mean = 0, stderr_ = 0;
};
MeanStderr mean_stderr(const std::vector<double>& v);

struct KlSummary {
  MeanStderr kl;                   // nats, per token
  double median = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, min = 0;
  MeanStderr top1_same;            // fraction of tokens whose most likely token agrees with the base's
  double ppl_base = 0;             // the base's perplexity on the same tokens
  MeanStderr ln_ppl_ratio;         // mean of nll - nll_base: ln(PPL / PPL(base))
  double delta_ppl = 0, delta_ppl_stderr = 0;  // PPL - PPL(base)
  double corr_nll = 0;             // correlation of the per-token nll with the base's
};

struct PerplexityResult {
  int64_t n_chunks = 0, ctx = 0, n_text_tokens = 0;
  std::vector<double> nll;         // [n_scored] -log p(next token), in order
  std::vector<double> chunk_ppl;   // [n_chunks] perplexity of each chunk's scored tokens
  double ppl = 0, ppl_stderr = 0;  // exp(mean nll) and its standard error (first order)
  // with a base: per scored token
  std::vector<double> kl;          // [n_scored]
  std::vector<uint8_t> top1_same;  // [n_scored]
  KlSummary kl_summary;
  SavedLogits saved;               // when save_top_k > 0
};

// called after each chunk: (chunks done, chunks in all, perplexity so far)
using PerplexityProgress = std::function<void(int64_t done, int64_t total, double ppl_so_far)>;

// ids: the whole text's tokens. base (optional): saved distributions of a run over the same tokens with the same ctx
// and at least as many chunks (an error otherwise).
Result<PerplexityResult> run_perplexity(Forward& fwd, const std::vector<int32_t>& ids, const PerplexityConfig& cfg,
                                        const SavedLogits* base, const PerplexityProgress& progress = nullptr);

// KL(base || model) over the base's top_k tokens plus one bucket for the rest: the model's logits [n_vocab] against
// base position `pos`. *top1_same: argmax of the logits equals the base's most likely token.
double kl_against_saved(const SavedLogits& base, int64_t pos, const float* logits, double lse, int32_t argmax, bool* top1_same);

}  // namespace oss4
