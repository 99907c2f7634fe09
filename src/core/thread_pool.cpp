#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OSS4_PAUSE() _mm_pause()
#else
#define OSS4_PAUSE() std::this_thread::yield()
#endif

namespace oss4 {

namespace {
constexpr int kIdxBits = 20, kCountBits = 20;
constexpr uint64_t kIdxMask = (uint64_t{1} << kIdxBits) - 1, kCountMask = (uint64_t{1} << kCountBits) - 1;
constexpr int64_t kMaxRegionTasks = static_cast<int64_t>(kIdxMask);
inline uint64_t gen_of(uint64_t s) { return s >> (kIdxBits + kCountBits); }
inline int64_t count_of(uint64_t s) { return static_cast<int64_t>((s >> kIdxBits) & kCountMask); }
inline int64_t idx_of(uint64_t s) { return static_cast<int64_t>(s & kIdxMask); }
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(uint64_t gen) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(s) != gen || idx_of(s) >= count_of(s)) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // the task is ours and unfinished, so the region (and fn_) cannot change under it
    (*fn_)(idx_of(s));
    done_.fetch_add(1, std::memory_order_acq_rel);
    s = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    // spin a little (about 50 us) before sleeping: decode issues parallel regions back to back
    uint64_t g = gen_of(state_.load(std::memory_order_acquire));
    for (int spin = 0; g == seen && !stop_.load(std::memory_order_relaxed) && spin < 20000; ++spin) {
      OSS4_PAUSE();
      g = gen_of(state_.load(std::memory_order_acquire));
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] { return stop_.load() || gen_of(state_.load()) != seen; });
      g = gen_of(state_.load());
    }
    if (stop_.load()) return;
    seen = g;
    work(g);
  }
}

void ThreadPool::run_region(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  uint64_t gen = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    gen = gen_of(state_.load()) + 1;
    state_.store((gen << (kIdxBits + kCountBits)) | (static_cast<uint64_t>(n_tasks) << kIdxBits), std::memory_order_release);
  }
  wake_.notify_all();
  work(gen);
  // the other tasks are claimed; wait for the workers running them, yielding the core now and then in case one of
  // them waits for it
  for (int spin = 0; done_.load(std::memory_order_acquire) != n_tasks; ++spin) {
    if (spin < 4000) {
      OSS4_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  for (int64_t t0 = 0; t0 < n_tasks; t0 += kMaxRegionTasks) {
    const int64_t n = std::min(kMaxRegionTasks, n_tasks - t0);
    if (t0 == 0 && n == n_tasks) {
      run_region(n, fn);
    } else {
      const std::function<void(int64_t)> shifted = [&](int64_t t) { fn(t0 + t); };
      run_region(n, shifted);
    }
  }
}

int default_threads() {
  if (const char* e = std::getenv("OSS4_THREADS")) {
    const int n = std::atoi(e);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace oss4
