#include "runtime/sequence_driver.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace oss4 {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kNone: return "none";
    case StopReason::kStopToken: return "stop";
    case StopReason::kLength: return "length";
    case StopReason::kCancelled: return "cancelled";
    case StopReason::kError: return "error";
  }
  return "?";
}

int64_t reusable_prefix(const std::vector<int32_t>& held, const std::vector<int32_t>& prompt) {
  if (prompt.empty()) return 0;
  const size_t n = std::min(held.size(), prompt.size() - 1);
  size_t l = 0;
  while (l < n && held[l] == prompt[l]) ++l;
  return static_cast<int64_t>(l);
}

Result<int64_t> reuse_prefix(KvCache& cache, std::vector<int32_t>* held, const std::vector<int32_t>& prompt) {
  if (static_cast<int64_t>(held->size()) != cache.n_pos()) {
    return error("reuse_prefix: " + std::to_string(held->size()) + " tokens held for a cache of " + std::to_string(cache.n_pos()) +
                 " positions");
  }
  int64_t keep = reusable_prefix(*held, prompt);
  if (!cache.truncate(keep).ok()) {
    // a ring has overwritten what the shorter cache would need: start over
    cache.clear();
    keep = 0;
  }
  held->resize(static_cast<size_t>(keep));
  return keep;
}

SequenceDriver::SequenceDriver(const DriverParams& p, int64_t n_vocab, Sampler* sampler) : p_(p), n_vocab_(n_vocab), sampler_(sampler) {
  if (sampler_ == nullptr) sampler_ = &own_.emplace(p_.sampling);
  for (size_t i = 0; i < p_.prefixes.size(); ++i) alive_.push_back(i);
}

int32_t SequenceDriver::constrained_token(const float* logits) {
  if (p_.prefixes.empty() || alive_.empty()) return -1;
  const auto k = static_cast<size_t>(n_gen_);
  std::vector<int32_t> allowed;  // the tokens that continue an alive prefix
  for (size_t i : alive_) {
    const auto& pre = p_.prefixes[i];
    if (pre.size() <= k) {  // one is complete: free from here on
      alive_.clear();
      return -1;
    }
    if (std::find(allowed.begin(), allowed.end(), pre[k]) == allowed.end()) allowed.push_back(pre[k]);
  }
  int32_t tok = allowed[0];
  if (allowed.size() > 1) {
    masked_.assign(static_cast<size_t>(n_vocab_), -INFINITY);
    for (int32_t a : allowed) masked_[static_cast<size_t>(a)] = logits[a];
    tok = sampler_->sample(masked_.data(), n_vocab_);
    if (std::find(allowed.begin(), allowed.end(), tok) == allowed.end()) tok = allowed[0];  // every allowed logit NaN
  }
  std::vector<size_t> keep;
  for (size_t i : alive_) {
    if (p_.prefixes[i][k] == tok) keep.push_back(i);
  }
  alive_ = std::move(keep);
  return tok;
}

NextToken SequenceDriver::next(const float* logits, int64_t n_pos, int64_t max_ctx) {
  NextToken t;
  if (!p_.script.empty()) {
    if (n_gen_ >= static_cast<int64_t>(p_.script.size())) {
      t.end = StopReason::kStopToken;
      return t;
    }
    t.id = p_.script[static_cast<size_t>(n_gen_)];
  } else if (int32_t forced = constrained_token(logits); forced >= 0) {
    t.id = forced;
  } else {
    t.id = sampler_->sample(logits, n_vocab_);
  }
  ++n_gen_;
  auto is_in = [](const std::vector<int32_t>& v, int32_t id) { return std::find(v.begin(), v.end(), id) != v.end(); };
  if (is_in(p_.stop_ids, t.id) || (!p_.ignore_eos && is_in(p_.eos_ids, t.id))) {
    t.end = StopReason::kStopToken;
  } else if (n_gen_ >= p_.max_tokens || n_pos >= max_ctx) {
    t.end = StopReason::kLength;
  }
  return t;
}

namespace {

// evaluates ids after what the cache holds; on an error forgets what the call may have written
Status append(Forward& f, KvCache& cache, std::vector<int32_t>* held, const int32_t* ids, int64_t n, std::vector<float>* logits) {
  const int64_t before = cache.n_pos();
  Status s = eval(f, cache, ids, n, LogitsMode::kLast, logits);
  if (!s.ok()) {
    (void)cache.truncate(before);
    return s;
  }
  held->insert(held->end(), ids, ids + n);
  return ok_status();
}

}  // namespace

Result<DriveResult> drive(Forward& f, KvCache& cache, std::vector<int32_t>* held, const std::vector<int32_t>& prompt,
                          const DriverParams& p, const DriveCallback& on_token, Sampler* sampler) {
  if (prompt.empty()) return error("the prompt has no tokens");
  DriveResult r;
  OSS4_ASSIGN_OR_RETURN(r.n_reused, reuse_prefix(cache, held, prompt));
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::vector<float> logits;  // [n_vocab] of the last evaluated token
  OSS4_TRY(append(f, cache, held, prompt.data() + r.n_reused, static_cast<int64_t>(prompt.size()) - r.n_reused, &logits));
  const auto t1 = clock::now();
  r.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  SequenceDriver drv(p, f.config().n_vocab, sampler);
  for (;;) {
    const NextToken t = drv.next(logits.data(), cache.n_pos(), cache.max_ctx());
    if (t.id < 0) {
      r.reason = t.end;
      break;
    }
    r.tokens.push_back(t.id);
    if (on_token && !on_token(t.id, t.end != StopReason::kNone)) {
      r.reason = StopReason::kCancelled;
      break;
    }
    if (t.end != StopReason::kNone) {
      r.reason = t.end;
      break;
    }
    OSS4_TRY(append(f, cache, held, &t.id, 1, &logits));
  }
  r.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace oss4
