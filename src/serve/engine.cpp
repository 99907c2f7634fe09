#include "serve/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

namespace oss4::serve {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStopToken: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

// ---- Sequence: the client's side ----

bool Sequence::wait(std::vector<int32_t>* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !pending_.empty() || ended_; });
  out->insert(out->end(), pending_.begin(), pending_.end());
  pending_.clear();
  return ended_;
}

FinishReason Sequence::finish_reason() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reason_;
}

std::string Sequence::error_message() const {
  std::lock_guard<std::mutex> lk(mu_);
  return error_;
}

int64_t Sequence::n_reused() const {
  std::lock_guard<std::mutex> lk(mu_);
  return n_reused_;
}

int64_t Sequence::n_generated() const {
  std::lock_guard<std::mutex> lk(mu_);
  return n_generated_;
}

double Sequence::ttft_seconds() const {
  std::lock_guard<std::mutex> lk(mu_);
  return ttft_;
}

std::vector<TokenLogprob> Sequence::logprobs(size_t from) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (from >= logprobs_.size()) return {};
  return std::vector<TokenLogprob>(logprobs_.begin() + static_cast<std::ptrdiff_t>(from), logprobs_.end());
}

std::vector<TokenLogprob> Sequence::prompt_logprobs() const {
  std::lock_guard<std::mutex> lk(mu_);
  return prompt_logprobs_;
}

void Sequence::push(int32_t id, TokenLogprob* lp) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (ttft_ < 0) ttft_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_submit_).count();
    pending_.push_back(id);
    if (lp != nullptr) logprobs_.push_back(std::move(*lp));
    ++n_generated_;
  }
  cv_.notify_all();
}

void Sequence::end(FinishReason r, std::string message) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (ended_) return;
    ended_ = true;
    reason_ = r;
    error_ = std::move(message);
  }
  cv_.notify_all();
}

// ---- Engine ----

Engine::Engine(Forward& fwd, const EngineConfig& cfg) : cfg_(cfg), fwd_(fwd), mc_(fwd.config()) {
  bytes_per_pos_ = fwd.kv_bytes_per_position();
  st_.kv_bytes_budget = cfg.kv_budget_bytes;
}

Result<std::unique_ptr<Engine>> Engine::create(Forward& fwd, const EngineConfig& cfg) {
  const ModelConfig& mc = fwd.config();
  if (cfg.max_seqs < 1) return error("max_seqs must be at least 1, got " + std::to_string(cfg.max_seqs));
  if (cfg.max_queue < 0) return error("max_queue must not be negative");
  if (cfg.ctx < 2) return error("the context size must be at least 2, got " + std::to_string(cfg.ctx));
  if (cfg.chunk < 1) return error("the prefill chunk must be at least 1");
  if (cfg.prefill_chunk < 0) return error("the prefill budget per step must not be negative (0: whole prompts)");
  if (cfg.ctx > mc.max_position_embeddings) {
    return error("context size " + std::to_string(cfg.ctx) + " exceeds the model's " + std::to_string(mc.max_position_embeddings) + " positions");
  }
  std::unique_ptr<Engine> e(new Engine(fwd, cfg));
  if (cfg.kv_budget_bytes < 2 * e->bytes_per_pos_) {
    return error("KV budget of " + std::to_string(cfg.kv_budget_bytes) + " bytes holds less than two positions (" +
                 std::to_string(e->bytes_per_pos_) + " bytes each)");
  }
  return e;
}

Engine::~Engine() { stop(); }

SubmitResult Engine::submit(GenRequest r) {
  SubmitResult out;
  auto reject = [&](SubmitError e, std::string msg) {
    out.err = e;
    out.message = std::move(msg);
    std::lock_guard<std::mutex> lk(mu_);
    ++st_.n_rejected;
    return out;
  };
  const auto n_prompt = static_cast<int64_t>(r.prompt.size());
  if (n_prompt == 0) return reject(SubmitError::kInvalid, "the prompt has no tokens");
  for (int32_t id : r.prompt) {
    if (id < 0 || id >= mc_.n_vocab) return reject(SubmitError::kInvalid, "token id " + std::to_string(id) + " is outside the vocabulary");
  }
  for (const auto& p : r.prefixes) {
    for (int32_t id : p) {
      if (id < 0 || id >= mc_.n_vocab) return reject(SubmitError::kInvalid, "prefix token id " + std::to_string(id) + " is outside the vocabulary");
    }
  }
  if (r.max_tokens < (r.score_prompt ? 0 : 1)) {
    return reject(SubmitError::kInvalid, std::string("max_tokens must be at least ") + (r.score_prompt ? "0" : "1") + ", got " + std::to_string(r.max_tokens));
  }
  if (r.top_logprobs > mc_.n_vocab) return reject(SubmitError::kInvalid, "top_logprobs exceeds the vocabulary");
  Status sp = validate_sampler_params(r.sampling);
  if (!sp.ok()) return reject(SubmitError::kInvalid, sp.message());
  if (n_prompt + r.max_tokens > cfg_.ctx) {
    return reject(SubmitError::kTooLong, "this model's maximum context length is " + std::to_string(cfg_.ctx) + " tokens; the prompt has " +
                                             std::to_string(n_prompt) + " tokens and " + std::to_string(r.max_tokens) + " more were asked for");
  }
  const int64_t plan = (n_prompt + r.max_tokens) * bytes_per_pos_;
  if (plan > cfg_.kv_budget_bytes) {
    return reject(SubmitError::kTooLong, "the prompt and max_tokens need " + std::to_string(plan) + " bytes of KV cache; the server's budget is " +
                                             std::to_string(cfg_.kv_budget_bytes));
  }
  auto slot = std::make_unique<Slot>();
  slot->seq = std::make_shared<Sequence>();
  slot->seq->n_prompt_ = n_prompt;
  slot->seq->t_submit_ = std::chrono::steady_clock::now();
  slot->plan_bytes = plan;
  if (r.sampling.seed == 0 && r.sampling.temperature > 0) r.sampling.seed = std::random_device{}();
  slot->req = std::move(r);
  out.seq = slot->seq;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) {
      out.seq.reset();
      out.err = SubmitError::kOverloaded;
      out.message = "the server is shutting down";
      return out;
    }
    if (static_cast<int64_t>(waiting_.size()) >= cfg_.max_queue) {
      ++st_.n_rejected;
      out.seq.reset();
      out.err = SubmitError::kOverloaded;
      out.message = "the server is overloaded: " + std::to_string(waiting_.size()) + " requests are waiting; retry later";
      return out;
    }
    waiting_.push_back(std::move(slot));
  }
  cv_.notify_all();
  return out;
}

void Engine::start() {
  std::lock_guard<std::mutex> lk(mu_);
  if (started_) return;
  started_ = true;
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lk(mu_);
  started_ = false;
  for (auto& s : waiting_) s->seq->end(FinishReason::kCancelled, "the server is shutting down");
  for (auto& s : running_) s->seq->end(FinishReason::kCancelled, "the server is shutting down");
  waiting_.clear();
  running_.clear();
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !waiting_.empty() || !running_.empty(); });
      if (stop_) return;
    }
    if (!step()) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(5), [&] { return stop_; });
    }
  }
}

int64_t Engine::reserved_bytes_locked() const {
  int64_t n = 0;
  for (const auto& s : running_) n += std::max<int64_t>(s->plan_bytes, s->cache ? static_cast<int64_t>(s->cache->bytes()) : 0);
  for (const auto& p : parked_) n += static_cast<int64_t>(p.cache->bytes());
  return n;
}

void Engine::admit_locked() {
  // requests cancelled while they waited leave the queue at once
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->seq->cancelled()) {
      (*it)->seq->end(FinishReason::kCancelled);
      ++st_.n_cancelled;
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < cfg_.max_seqs) {
    Slot& s = *waiting_.front();
    const std::vector<int32_t>& P = s.req.prompt;
    // the parked cache sharing the longest prefix; at least the prompt's last token is evaluated again (its logits)
    auto best = parked_.end();
    size_t best_len = 0;
    if (cfg_.prefix_reuse && !s.req.score_prompt) {  // a scored prompt needs the logits of every position
      for (auto it = parked_.begin(); it != parked_.end(); ++it) {
        const size_t n = std::min(it->tokens.size(), P.size() - 1);
        size_t l = 0;
        while (l < n && it->tokens[l] == P[l]) ++l;
        if (l > best_len) {
          best = it;
          best_len = l;
        }
      }
    }
    std::optional<Parked> taken;
    if (best != parked_.end()) {
      taken.emplace(std::move(*best));
      parked_.erase(best);
    }
    const int64_t need = std::max<int64_t>(s.plan_bytes, taken ? static_cast<int64_t>(taken->cache->bytes()) : 0);
    int64_t reserved = reserved_bytes_locked();
    while (reserved + need > cfg_.kv_budget_bytes && !parked_.empty()) {
      reserved -= static_cast<int64_t>(parked_.back().cache->bytes());
      parked_.pop_back();
    }
    if (reserved + need > cfg_.kv_budget_bytes) {
      if (taken) parked_.push_front(std::move(*taken));
      break;  // waits until running sequences free their K/V
    }
    if (taken) {
      s.cache = std::move(taken->cache);
      s.cached = std::move(taken->tokens);
      s.cached.resize(best_len);
    }
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

int64_t Engine::prefill_budget() const {
  if (cfg_.prefill_chunk <= 0) return INT64_MAX;
  return std::max<int64_t>(1, cfg_.prefill_chunk / cfg_.chunk) * cfg_.chunk;
}

Status Engine::prefill(Slot& s, int64_t max_tok, int64_t* n_evaluated) {
  *n_evaluated = 0;
  const std::vector<int32_t>& P = s.req.prompt;
  const auto n_prompt = static_cast<int64_t>(P.size());
  if (!s.prefill_started) {
    const int64_t plan_pos = n_prompt + s.req.max_tokens;
    int64_t n_reused = 0;
    if (s.cache) {
      n_reused = static_cast<int64_t>(s.cached.size());
      OSS4_TRY(s.cache->truncate(n_reused));
      OSS4_TRY(s.cache->set_max_ctx(std::max<int64_t>(plan_pos, s.cache->n_pos())));
    } else {
      auto c = fwd_.new_cache(plan_pos, cfg_.chunk, /*sliding_ring=*/false);
      OSS4_TRY(c.status());
      s.cache = std::move(c).value();
      s.cached.clear();
    }
    {
      std::lock_guard<std::mutex> lk(s.seq->mu_);
      s.seq->n_reused_ = n_reused;
    }
    s.n_done = n_reused;
    s.prefill_started = true;
  }
  // pieces are whole chunks (all but the prompt's last), so the forward pass sees the same chunks as one call over the
  // whole prompt would: the result is bit-identical however the prefill is spread over steps
  int64_t n = n_prompt - s.n_done;
  if (n > max_tok) n = max_tok / s.cache->max_chunk() * s.cache->max_chunk();
  if (n <= 0) return ok_status();
  const bool last = s.n_done + n == n_prompt;
  const LogitsMode mode = s.req.score_prompt ? LogitsMode::kAll : last ? LogitsMode::kLast : LogitsMode::kNone;
  int64_t n_last = n;  // tokens of the last eval call (the rows of logits_ with kAll)
  if (s.req.score_prompt) {
    // one chunk per call, so logits_ holds [chunk, n_vocab] at most (the forward pass cuts the same chunks anyway)
    for (int64_t at = 0; at < n; at += s.cache->max_chunk()) {
      n_last = std::min(s.cache->max_chunk(), n - at);
      OSS4_TRY(eval(fwd_, *s.cache, P.data() + s.n_done + at, n_last, LogitsMode::kAll, &logits_));
      score_prompt_rows(s, logits_.data(), n_last, s.n_done + at);
    }
  } else {
    OSS4_TRY(eval(fwd_, *s.cache, P.data() + s.n_done, n, mode, mode == LogitsMode::kNone ? nullptr : &logits_));
  }
  s.cached.insert(s.cached.end(), P.begin() + s.n_done, P.begin() + s.n_done + n);
  s.n_done += n;
  *n_evaluated = n;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++st_.n_prefill_calls;
    if (last) {
      st_.n_prompt_tokens += n_prompt;
      st_.n_reused_tokens += s.seq->n_reused();
    }
  }
  if (!last) return ok_status();
  s.sampler.emplace(s.req.sampling);
  s.alive.clear();
  for (size_t i = 0; i < s.req.prefixes.size(); ++i) s.alive.push_back(i);
  s.prefilled = true;
  if (s.req.max_tokens == 0) {  // only the prompt's log-probabilities were asked for
    s.seq->end(FinishReason::kLength);
    s.done = true;
    return ok_status();
  }
  emit(s, logits_.data() + (mode == LogitsMode::kAll ? (n_last - 1) * mc_.n_vocab : 0));
  return ok_status();
}

void Engine::score_prompt_rows(Slot& s, const float* rows, int64_t n_rows, int64_t from) {
  const std::vector<int32_t>& P = s.req.prompt;
  const int64_t V = mc_.n_vocab;
  std::vector<TokenLogprob> lps;  // the prompt tokens after these rows
  if (from == 0) lps.push_back(TokenLogprob{P[0], NAN, {}});
  for (int64_t i = 0; i < n_rows && from + i + 1 < static_cast<int64_t>(P.size()); ++i) {
    const float* row = rows + i * V;
    const LogitsSummary sum = summarize_logits(row, V);
    const int32_t next = P[static_cast<size_t>(from + i + 1)];
    lps.push_back(TokenLogprob{next, static_cast<double>(row[next]) - sum.lse, top_logprobs(row, V, sum.lse, std::max<int64_t>(0, s.req.top_logprobs))});
  }
  std::lock_guard<std::mutex> lk(s.seq->mu_);
  for (auto& lp : lps) s.seq->prompt_logprobs_.push_back(std::move(lp));
}

int32_t Engine::constrained_token(Slot& s, const float* logits) {
  if (s.req.prefixes.empty() || s.alive.empty()) return -1;
  const auto k = static_cast<size_t>(s.n_gen);
  std::vector<int32_t> allowed;  // the tokens that continue an alive prefix
  for (size_t i : s.alive) {
    const auto& p = s.req.prefixes[i];
    if (p.size() <= k) {  // one is complete: free from here on
      s.alive.clear();
      return -1;
    }
    if (std::find(allowed.begin(), allowed.end(), p[k]) == allowed.end()) allowed.push_back(p[k]);
  }
  int32_t tok = allowed[0];
  if (allowed.size() > 1) {
    const auto V = static_cast<size_t>(mc_.n_vocab);
    masked_.assign(V, -INFINITY);
    for (int32_t a : allowed) masked_[static_cast<size_t>(a)] = logits[a];
    tok = s.sampler->sample(masked_.data(), mc_.n_vocab);
    if (std::find(allowed.begin(), allowed.end(), tok) == allowed.end()) tok = allowed[0];  // every allowed logit NaN
  }
  std::vector<size_t> keep;
  for (size_t i : s.alive) {
    if (s.req.prefixes[i][k] == tok) keep.push_back(i);
  }
  s.alive = std::move(keep);
  return tok;
}

void Engine::emit(Slot& s, const float* logits) {
  int32_t tok;
  if (!s.req.script.empty()) {
    if (s.n_gen >= static_cast<int64_t>(s.req.script.size())) {
      s.seq->end(FinishReason::kStopToken);
      s.done = true;
      return;
    }
    tok = s.req.script[static_cast<size_t>(s.n_gen)];
  } else if (int32_t forced = constrained_token(s, logits); forced >= 0) {
    tok = forced;
  } else {
    tok = s.sampler->sample(logits, mc_.n_vocab);
  }
  ++s.n_gen;
  std::optional<TokenLogprob> lp;
  if (s.req.top_logprobs >= 0) {
    const LogitsSummary sum = summarize_logits(logits, mc_.n_vocab);
    lp = TokenLogprob{tok, static_cast<double>(logits[tok]) - sum.lse, top_logprobs(logits, mc_.n_vocab, sum.lse, s.req.top_logprobs)};
  }
  s.seq->push(tok, lp ? &*lp : nullptr);
  if (std::find(s.req.stop_ids.begin(), s.req.stop_ids.end(), tok) != s.req.stop_ids.end()) {
    s.seq->end(FinishReason::kStopToken);
    s.done = true;
  } else if (s.n_gen >= s.req.max_tokens || s.cache->n_pos() >= s.cache->max_ctx()) {
    s.seq->end(FinishReason::kLength);
    s.done = true;
  } else {
    s.next = tok;
  }
}

Status Engine::decode_step(std::vector<Slot*>& live) {
  const auto n = static_cast<int64_t>(live.size());
  std::vector<KvCache*> caches(live.size());  // [n] one cache per sequence
  std::vector<int32_t> ids(live.size());      // [n] the token each sequence evaluates
  Batch batch;
  for (size_t b = 0; b < live.size(); ++b) {
    caches[b] = live[b]->cache.get();
    ids[b] = live[b]->next;
    batch.add(ids[b], caches[b]->n_pos(), static_cast<int32_t>(b), true);
  }
  logits_.resize(static_cast<size_t>(n * mc_.n_vocab));
  const auto t0 = std::chrono::steady_clock::now();
  OSS4_TRY(fwd_.run(batch, caches.data(), n, logits_.data()));
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t b = 0; b < live.size(); ++b) {
    live[b]->cached.push_back(ids[b]);
    emit(*live[b], logits_.data() + static_cast<int64_t>(b) * mc_.n_vocab);
  }
  std::lock_guard<std::mutex> lk(mu_);
  ++st_.n_steps;
  const double rate = dt > 0 ? static_cast<double>(n) / dt : 0.0;
  st_.decode_tok_per_s = st_.decode_tok_per_s == 0 ? rate : 0.8 * st_.decode_tok_per_s + 0.2 * rate;
  return ok_status();
}

void Engine::retire_locked() {
  for (auto it = running_.begin(); it != running_.end();) {
    Slot& s = **it;
    if (!s.done && !s.seq->cancelled()) {
      ++it;
      continue;
    }
    if (s.seq->cancelled() && !s.done) {
      s.seq->end(FinishReason::kCancelled);
      ++st_.n_cancelled;
    } else {
      ++st_.n_finished;
    }
    st_.n_generated_tokens += s.n_gen;
    const bool keep = cfg_.prefix_reuse && s.cache && s.prefilled && !s.seq->cancelled() && s.seq->finish_reason() != FinishReason::kError;
    if (keep) {
      s.cached.resize(static_cast<size_t>(s.cache->n_pos()));
      parked_.push_front(Parked{std::move(s.cached), std::move(s.cache)});
    }
    it = running_.erase(it);  // a cancelled sequence's K/V is freed here
  }
  // parked caches give way to the budget, oldest first
  int64_t reserved = reserved_bytes_locked();
  while (reserved > cfg_.kv_budget_bytes && !parked_.empty()) {
    reserved -= static_cast<int64_t>(parked_.back().cache->bytes());
    parked_.pop_back();
  }
  // what stats() reports (other threads never look into the slots)
  int64_t used = 0;
  for (const auto& r : running_) used += r->cache ? static_cast<int64_t>(r->cache->bytes()) : 0;
  int64_t parked = 0;
  for (const auto& p : parked_) parked += static_cast<int64_t>(p.cache->bytes());
  st_.kv_bytes_used = used + parked;
  st_.kv_bytes_parked = parked;
  st_.kv_bytes_reserved = reserved;
}

bool Engine::step() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    admit_locked();
    if (running_.empty()) {
      st_.kv_bytes_reserved = reserved_bytes_locked();
      return false;
    }
  }
  // only this thread changes running_, so it is read here without the lock. New sequences prefill (in admission
  // order) up to the step's budget; the rest of a long prompt waits for the next step, so the running sequences
  // take a decode step between its chunks
  int64_t budget = prefill_budget();
  for (auto& sp : running_) {
    Slot& s = *sp;
    if (s.prefilled || s.done || s.seq->cancelled()) continue;
    if (budget <= 0) break;
    int64_t n = 0;
    Status st = prefill(s, budget, &n);
    budget -= n;
    if (!st.ok()) {
      s.seq->end(FinishReason::kError, st.message());
      s.done = true;
    } else if (!s.prefilled) {
      break;  // the budget ended inside this prompt
    }
  }
  std::vector<Slot*> live;
  for (auto& sp : running_) {
    if (sp->prefilled && !sp->done && !sp->seq->cancelled()) live.push_back(sp.get());
  }
  if (!live.empty()) {
    Status st = decode_step(live);
    if (!st.ok()) {
      for (Slot* s : live) {
        s->seq->end(FinishReason::kError, st.message());
        s->done = true;
      }
    }
  }
  std::lock_guard<std::mutex> lk(mu_);
  retire_locked();
  return true;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  EngineStats s = st_;
  s.n_running = static_cast<int64_t>(running_.size());
  s.n_waiting = static_cast<int64_t>(waiting_.size());
  s.n_parked = static_cast<int64_t>(parked_.size());
  return s;
}

}  // namespace oss4::serve
