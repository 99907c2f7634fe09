#include "runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

namespace oss4 {

// ---- Sequence: the client's side ----

bool Sequence::wait(std::vector<int32_t>* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !pending_.empty() || ended_; });
  out->insert(out->end(), pending_.begin(), pending_.end());
  pending_.clear();
  return ended_;
}

StopReason Sequence::finish_reason() const {
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

void Sequence::end(StopReason r, std::string message) {
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
  for (auto& s : waiting_) s->seq->end(StopReason::kCancelled, "the server is shutting down");
  for (auto& s : running_) s->seq->end(StopReason::kCancelled, "the server is shutting down");
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
      (*it)->seq->end(StopReason::kCancelled);
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
        const auto l = static_cast<size_t>(reusable_prefix(it->tokens, P));
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
    if (taken) {  // start_prefill keeps the shared prefix
      s.cache = std::move(taken->cache);
      s.cached = std::move(taken->tokens);
    }
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

int64_t Engine::prefill_budget() const {
  if (cfg_.prefill_chunk <= 0) return INT64_MAX;
  return std::max<int64_t>(1, cfg_.prefill_chunk / cfg_.chunk) * cfg_.chunk;
}

Status Engine::start_prefill(Slot& s) {
  const auto n_prompt = static_cast<int64_t>(s.req.prompt.size());
  const int64_t plan_pos = n_prompt + s.req.max_tokens;
  int64_t n_reused = 0;
  if (s.cache) {
    OSS4_ASSIGN_OR_RETURN(n_reused, reuse_prefix(*s.cache, &s.cached, s.req.prompt));
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
  return ok_status();
}

Status Engine::score_prefill(Slot& s, int64_t n) {
  const std::vector<int32_t>& P = s.req.prompt;
  const int64_t chunk = s.cache->max_chunk();
  // one chunk per call, so logits_ holds [chunk, n_vocab] at most (the forward pass cuts the same chunks anyway)
  int64_t n_last = n;  // tokens of the last eval call (the rows of logits_)
  for (int64_t at = 0; at < n; at += chunk) {
    n_last = std::min(chunk, n - at);
    OSS4_TRY(eval(fwd_, *s.cache, P.data() + s.n_done + at, n_last, LogitsMode::kAll, &logits_));
    score_prompt_rows(s, logits_.data(), n_last, s.n_done + at);
    std::lock_guard<std::mutex> lk(mu_);
    ++st_.n_runs;
  }
  s.cached.insert(s.cached.end(), P.begin() + s.n_done, P.begin() + s.n_done + n);
  s.n_done += n;
  if (s.n_done == static_cast<int64_t>(P.size())) finish_prefill(s, logits_.data() + (n_last - 1) * mc_.n_vocab);
  return ok_status();
}

void Engine::finish_prefill(Slot& s, const float* logits) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    st_.n_prompt_tokens += static_cast<int64_t>(s.req.prompt.size());
    st_.n_reused_tokens += s.seq->n_reused();
  }
  DriverParams p;
  p.sampling = s.req.sampling;
  p.max_tokens = s.req.max_tokens;
  p.stop_ids = s.req.stop_ids;
  p.script = s.req.script;
  p.prefixes = s.req.prefixes;
  s.driver.emplace(p, mc_.n_vocab);
  s.prefilled = true;
  if (s.req.max_tokens == 0) {  // only the prompt's log-probabilities were asked for
    s.seq->end(StopReason::kLength);
    s.done = true;
    return;
  }
  emit(s, logits);
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

void Engine::emit(Slot& s, const float* logits) {
  const NextToken t = s.driver->next(logits, s.cache->n_pos(), s.cache->max_ctx());
  if (t.id >= 0) {
    std::optional<TokenLogprob> lp;
    if (s.req.top_logprobs >= 0) {
      const LogitsSummary sum = summarize_logits(logits, mc_.n_vocab);
      lp = TokenLogprob{t.id, static_cast<double>(logits[t.id]) - sum.lse, top_logprobs(logits, mc_.n_vocab, sum.lse, s.req.top_logprobs)};
    }
    s.seq->push(t.id, lp ? &*lp : nullptr);
  }
  if (t.end != StopReason::kNone) {
    s.seq->end(t.end);
    s.done = true;
  } else {
    s.next = t.id;
  }
}

void Engine::run_rows(const std::vector<Rows>& rows) {
  std::vector<KvCache*> caches;  // [n_seq] one cache per sequence, in batch order
  Batch batch;
  int64_t n_decode = 0, n_asking = 0;
  for (const Rows& r : rows) {
    const auto seq = static_cast<int32_t>(caches.size());
    caches.push_back(r.s->cache.get());
    if (r.decode) {
      batch.add(r.s->next, r.s->cache->n_pos(), seq, true);
      ++n_decode;
    } else {
      batch.add_run(r.s->req.prompt.data() + r.from, r.n, r.s->cache->n_pos(), seq, r.last);
    }
    n_asking += r.decode || r.last;
  }
  logits_.resize(static_cast<size_t>(n_asking * mc_.n_vocab));
  const auto t0 = std::chrono::steady_clock::now();
  Status st = fwd_.run(batch, caches.data(), static_cast<int64_t>(caches.size()), n_asking > 0 ? logits_.data() : nullptr);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++st_.n_runs;
    if (st.ok() && n_decode == batch.size()) {  // decode only: the rate of decode tokens alone
      const double rate = dt > 0 ? static_cast<double>(n_decode) / dt : 0.0;
      st_.decode_tok_per_s = st_.decode_tok_per_s == 0 ? rate : 0.8 * st_.decode_tok_per_s + 0.2 * rate;
    }
  }
  if (!st.ok()) {
    for (const Rows& r : rows) {
      r.s->seq->end(StopReason::kError, st.message());
      r.s->done = true;
    }
    return;
  }
  const float* row = logits_.data();  // the next row of logits [n_vocab]
  for (const Rows& r : rows) {
    Slot& s = *r.s;
    if (r.decode) {
      s.cached.push_back(s.next);
      emit(s, row);
      row += mc_.n_vocab;
      continue;
    }
    const auto* p = s.req.prompt.data() + r.from;
    s.cached.insert(s.cached.end(), p, p + r.n);
    s.n_done += r.n;
    if (r.last) {
      finish_prefill(s, row);
      row += mc_.n_vocab;
    }
  }
}

void Engine::retire_locked() {
  for (auto it = running_.begin(); it != running_.end();) {
    Slot& s = **it;
    if (!s.done && !s.seq->cancelled()) {
      ++it;
      continue;
    }
    if (s.seq->cancelled() && !s.done) {
      s.seq->end(StopReason::kCancelled);
      ++st_.n_cancelled;
    } else {
      ++st_.n_finished;
    }
    st_.n_generated_tokens += s.driver ? s.driver->n_generated() : 0;
    // a sequence that ended before its client left (a stream closed right after its last chunk: the run ends it outside
    // the lock, so the cancel can come before this) has whole K/V worth keeping; one cancelled mid-way has not
    const bool keep = cfg_.prefix_reuse && s.cache && s.prefilled && (s.done || !s.seq->cancelled()) &&
                      s.seq->finish_reason() != StopReason::kError;
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
  // only this thread changes running_, so it is read here without the lock. The running sequences' decode tokens
  // go first into the step's first run
  std::vector<std::vector<Rows>> runs(1);  // [n_runs] each run's rows, in batch order
  for (auto& sp : running_) {
    if (sp->prefilled && sp->live()) runs[0].push_back(Rows{sp.get(), /*decode=*/true, 0, 1, false});
  }
  const size_t n_decode = runs[0].size();
  // new sequences prefill (in admission order) up to the step's budget; the rest of a long prompt waits for the next
  // step, so the running sequences decode between its chunks. Pieces are whole chunks (all but the prompt's last), so
  // the forward pass sees the same chunks as one call over the whole prompt would: the result is the same however the
  // prefill is spread over steps. A sequence's j-th piece goes into run j.
  std::vector<Slot*> fresh;  // sequences whose prompt completes in this step
  int64_t budget = prefill_budget(), n_prefilled = 0;
  for (auto& sp : running_) {
    Slot& s = *sp;
    if (s.prefilled || !s.live()) continue;
    if (budget <= 0) break;
    Status st = s.prefill_started ? ok_status() : start_prefill(s);
    const auto n_prompt = static_cast<int64_t>(s.req.prompt.size());
    const int64_t done0 = s.n_done;
    int64_t n = 0;
    if (st.ok()) {
      const int64_t chunk = s.cache->max_chunk();
      n = n_prompt - s.n_done;
      if (n > budget) n = budget / chunk * chunk;
      if (n <= 0) break;
      budget -= n;
      ++n_prefilled;
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++st_.n_prefill_calls;
      }
      if (s.req.score_prompt) {  // on its own path: every position's logits
        st = score_prefill(s, n);
        if (st.ok() && s.prefilled && s.live()) fresh.push_back(&s);
      } else {
        for (int64_t at = 0, j = 0; at < n; at += chunk, ++j) {
          if (runs.size() <= static_cast<size_t>(j)) runs.emplace_back();
          const int64_t m = std::min(chunk, n - at);
          runs[static_cast<size_t>(j)].push_back(Rows{&s, false, s.n_done + at, m, s.n_done + at + m == n_prompt});
        }
        if (s.n_done + n == n_prompt) fresh.push_back(&s);
      }
    }
    if (!st.ok()) {
      s.seq->end(StopReason::kError, st.message());
      s.done = true;
    } else if (done0 + n < n_prompt) {
      break;  // the budget ended inside this prompt
    }
  }
  const bool ran = !runs[0].empty() || n_prefilled > 0;
  if (n_decode > 0 && runs[0].size() > n_decode) {
    std::lock_guard<std::mutex> lk(mu_);
    ++st_.n_mixed_steps;
  }
  for (auto& rows : runs) {
    std::erase_if(rows, [](const Rows& r) { return !r.s->live(); });  // a run that failed ended its slots
    if (!rows.empty()) run_rows(rows);
  }
  // the sequences whose prompt completed take their first decode step too, as the others did in the first run
  std::vector<Rows> decode;
  for (Slot* s : fresh) {
    if (s->prefilled && s->live()) decode.push_back(Rows{s, /*decode=*/true, 0, 1, false});
  }
  if (!decode.empty()) run_rows(decode);
  std::lock_guard<std::mutex> lk(mu_);
  if (ran) ++st_.n_steps;
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

}  // namespace oss4
