#include "core/mem_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "core/thread_pool.h"

namespace oss4 {

namespace {
// sums 64-bit words with independent accumulators so the loop is bound by loads, not by the adds.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
    a4 += p[i + 4];
    a5 += p[i + 5];
    a6 += p[i + 6];
    a7 += p[i + 7];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
}  // namespace

ReadBandwidth measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
  const size_t n_words = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n_words]);  // [n_words] u64
  // first touch from the pool's threads, with distinct values so nothing can be folded away
  const int64_t n_tasks = 64;
  const size_t per = (n_words + n_tasks - 1) / n_tasks;
  pool.run(n_tasks, [&](int64_t t) {
    const size_t b = static_cast<size_t>(t) * per, e = std::min(n_words, b + per);
    for (size_t i = b; i < e; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  });
  std::atomic<uint64_t> sink{0};
  std::vector<double> gbs;
  for (int p = 0; p <= passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run(n_tasks, [&](int64_t t) {
      const size_t b = static_cast<size_t>(t) * per, e = std::min(n_words, b + per);
      if (b < e) sink.fetch_add(sum_words(buf.get() + b, e - b), std::memory_order_relaxed);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (p > 0) gbs.push_back(static_cast<double>(n_words * sizeof(uint64_t)) / s / 1e9);
  }
  ReadBandwidth r;
  r.bytes = n_words * sizeof(uint64_t);
  r.passes = passes;
  if (gbs.empty()) return r;
  std::sort(gbs.begin(), gbs.end());
  r.best_gb_s = gbs.back();
  r.median_gb_s = gbs[gbs.size() / 2];
  if (sink.load() == 0x5eed) r.passes = passes;  // keeps the sums observable
  return r;
}

}  // namespace oss4
