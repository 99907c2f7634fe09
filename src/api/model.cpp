// The public API (include/oss4/model.h) over the backend seam: Model holds the loaded weights, their backend
// (runtime/forward.h) and the tokenizer, Context a KV cache of the backend's kind and its tokens.
#include "oss4/model.h"

#include <algorithm>

#include "api/load.h"
#include "api/model_impl.h"
#include "core/mapped_file.h"
#include "runtime/forward.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"
#include "runtime/sequence_driver.h"
#include "text/tokenizer.h"

namespace oss4 {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

struct Context::Impl {
  const Model::Impl* model = nullptr;
  std::unique_ptr<KvCache> cache;
  std::vector<int32_t> tokens;  // [cache->n_pos()] the ids whose K/V the cache holds
  Impl(const Model::Impl* m, std::unique_ptr<KvCache> c) : model(m), cache(std::move(c)) {}
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::~Context() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& dir, const ModelOptions& opt) {
  RunOptions ro;
  ro.device = opt.device;
  ro.lm_head = opt.lm_head;
  ro.activations = opt.activations;
  ro.kernels = opt.kernels;
  ro.threads = opt.threads;
  OSS4_TRY(backend_options(ro).status());  // bad options fail before the tokenizer and the weights load
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  // the tokenizer first: a bad --tokenizer fails before minutes of loading
  if (!opt.tokenizer.empty() || file_exists(dir + "/tokenizer.json")) {
    OSS4_ASSIGN_OR_RETURN(Tokenizer tok, load_model_tokenizer(dir, opt.tokenizer));
    impl->tokenizer = std::make_unique<Tokenizer>(std::move(tok));
  }
  OSS4_ASSIGN_OR_RETURN(impl->run, load_model_to_run(dir, ro, opt.progress));
  for (int64_t e : impl->run.weights->cfg.eos_token_ids) impl->eos.push_back(static_cast<int32_t>(e));
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const std::string& Model::dir() const { return impl_->dir; }
int64_t Model::n_vocab() const { return impl_->run.weights->cfg.n_vocab; }
int64_t Model::max_context() const { return impl_->run.weights->cfg.max_position_embeddings; }
const std::vector<int32_t>& Model::eos_token_ids() const { return impl_->eos; }

Result<std::vector<int32_t>> Model::encode(std::string_view text, bool allow_special) const {
  if (!impl_->tokenizer) return error(impl_->dir + ": no tokenizer.json (give ModelOptions::tokenizer)");
  return impl_->tokenizer->encode(text, allow_special);
}

Result<std::string> Model::decode(const std::vector<int32_t>& ids) const {
  if (!impl_->tokenizer) return error(impl_->dir + ": no tokenizer.json (give ModelOptions::tokenizer)");
  return impl_->tokenizer->decode(ids);
}

Result<std::unique_ptr<Context>> Model::new_context(const ContextOptions& opt) const {
  if (opt.n_ctx < 2) return error("n_ctx: the context size must be at least 2, not " + std::to_string(opt.n_ctx));
  if (opt.chunk < 1) return error("chunk: must be at least 1, not " + std::to_string(opt.chunk));
  const int64_t n_ctx = std::min(opt.n_ctx, max_context());
  OSS4_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, impl_->run.fwd->new_cache(n_ctx, opt.chunk, /*sliding_ring=*/!opt.rewindable));
  return std::unique_ptr<Context>(new Context(std::make_unique<Context::Impl>(impl_.get(), std::move(cache))));
}

const std::vector<int32_t>& Context::tokens() const { return impl_->tokens; }
int64_t Context::n_ctx() const { return impl_->cache->max_ctx(); }

Status Context::append(const std::vector<int32_t>& ids, std::vector<float>* last_logits) {
  Impl& c = *impl_;
  if (ids.empty()) return error("append: no tokens");
  const int64_t n = static_cast<int64_t>(ids.size());
  if (c.cache->n_pos() + n > c.cache->max_ctx()) {
    return error(std::to_string(c.cache->n_pos()) + " tokens held + " + std::to_string(n) + " new exceed the context size " +
                 std::to_string(c.cache->max_ctx()));
  }
  const int64_t before = c.cache->n_pos();
  Status s = eval(*c.model->run.fwd, *c.cache, ids.data(), n, last_logits ? LogitsMode::kLast : LogitsMode::kNone, last_logits);
  if (!s.ok()) {
    // a failed call may have written part of its chunks: forget them, the tokens did not go in
    (void)c.cache->truncate(before);
    return s;
  }
  c.tokens.insert(c.tokens.end(), ids.begin(), ids.end());
  return ok_status();
}

Status Context::truncate(int64_t n) {
  Impl& c = *impl_;
  if (n < 0 || n > static_cast<int64_t>(c.tokens.size())) {
    return error("truncate: " + std::to_string(n) + " is outside [0, " + std::to_string(c.tokens.size()) + "]");
  }
  OSS4_TRY(c.cache->truncate(n));
  c.tokens.resize(static_cast<size_t>(n));
  return ok_status();
}

Result<GenerateResult> generate(Context& ctx, const std::vector<int32_t>& prompt, const SamplingParams& p, const TokenCallback& on_token) {
  Context::Impl& c = ctx.impl();
  const Model::Impl& m = *c.model;
  const int64_t n_vocab = m.run.weights->cfg.n_vocab;
  SamplerParams sp;
  sp.temperature = p.temperature;
  sp.top_p = p.top_p;
  sp.top_k = p.top_k;
  sp.seed = p.seed;
  OSS4_TRY(validate_sampler_params(sp));
  if (p.max_tokens < 1) return error("max_tokens: must be at least 1, not " + std::to_string(p.max_tokens));
  if (prompt.empty()) return error("the prompt has no tokens");
  for (int32_t id : prompt) {
    if (id < 0 || id >= n_vocab) return error("prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  }
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  if (n_prompt + p.max_tokens > ctx.n_ctx()) {
    return error("prompt of " + std::to_string(n_prompt) + " tokens + " + std::to_string(p.max_tokens) + " to generate exceeds the context size " +
                 std::to_string(ctx.n_ctx()));
  }

  DriverParams dp;
  dp.sampling = sp;
  dp.max_tokens = p.max_tokens;
  dp.stop_ids = p.stop_token_ids;
  dp.eos_ids = m.eos;
  dp.ignore_eos = p.ignore_eos;
  GenerateResult r;
  r.n_prompt = n_prompt;
  std::unique_ptr<StreamingDecoder> detok = m.tokenizer ? std::make_unique<StreamingDecoder>(*m.tokenizer) : nullptr;
  std::string piece;
  Status text_status;  // a detokenizer error ends generation and is returned
  auto on_id = [&](int32_t id, bool last) {
    piece.clear();
    if (detok && id < m.tokenizer->n_vocab()) {
      text_status = detok->push(id, &piece);
      if (!text_status.ok()) return false;
    }
    if (last && detok) piece += detok->flush();
    r.text += piece;
    return !on_token || on_token(id, piece);
  };
  OSS4_ASSIGN_OR_RETURN(DriveResult d, drive(*m.run.fwd, *c.cache, &c.tokens, prompt, dp, on_id));
  OSS4_TRY(text_status);
  r.token_ids = std::move(d.tokens);
  r.finish_reason = d.reason == StopReason::kStopToken ? FinishReason::kStop
                    : d.reason == StopReason::kCancelled ? FinishReason::kCancelled
                                                         : FinishReason::kLength;
  r.n_reused = d.n_reused;
  r.prefill_s = d.prefill_s;
  r.decode_s = d.decode_s;
  return r;
}

}  // namespace oss4
