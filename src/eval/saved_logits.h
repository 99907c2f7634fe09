// The base model's per-token distributions that `oss4 perplexity --save-logits` writes and `--kl-base` reads back.
//
// What is kept, per scored token (the second half of every chunk): the top_k most likely tokens with their
// log-probabilities, the probability mass of all the others (the "rest"), and the log-probability of the token that
// came next in the text. With the default top_k = 32 that is 32 x 8 + 8 = 264 bytes per scored token (the full
// o200k distribution in f32 would be 804 KB): a 20b run over 300k scored tokens keeps ~80 MB. KL divergence is then
// computed over the top_k tokens plus one bucket for the rest, which is a lower bound of the full KL (merging
// outcomes never increases it) and equals it when top_k = n_vocab.
//
// The file is safetensors (validated by the project's reader), tensors:
//   ids           I32 [n_chunks * ctx]         the evaluated tokens, so a run against it checks it scores the same text
//   top_ids       I32 [n_scored, top_k]        most likely first
//   top_logprobs  F32 [n_scored, top_k]
//   rest_mass     F32 [n_scored]               1 - sum of the top_k probabilities, summed directly over the others
//   target_logprob F32 [n_scored]
// metadata: format "oss4-saved-logits-1", ctx, n_chunks, n_vocab, top_k.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

struct SavedLogits {
  int64_t ctx = 0, n_chunks = 0, n_vocab = 0, top_k = 0;
  std::vector<int32_t> ids;            // [n_chunks * ctx]
  std::vector<int32_t> top_ids;        // [n_scored, top_k]
  std::vector<float> top_logprobs;     // [n_scored, top_k]
  std::vector<float> rest_mass;        // [n_scored]
  std::vector<float> target_logprob;   // [n_scored]

  int64_t n_scored() const { return static_cast<int64_t>(target_logprob.size()); }
};

// scored tokens of one chunk of ctx tokens: predictions at positions ctx/2 .. ctx-2 (llama-perplexity's second half).
inline int64_t scored_per_chunk(int64_t ctx) { return ctx - 1 - ctx / 2; }

// written atomically (path.tmp.<pid>, then renamed); the sizes must agree with each other.
Status write_saved_logits(const std::string& path, const SavedLogits& s);
// reads and validates a file written by write_saved_logits (shapes, ids inside n_vocab, finite values).
Result<SavedLogits> read_saved_logits(const std::string& path);

}  // namespace oss4
