// A static parallel loop on short-lived std::threads, for coarse work items (one expert matrix, one tensor row
// block) where thread start-up is noise. The compute kernels use the CPU backend's persistent pool instead.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

inline int default_thread_count() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

// runs fn(i, worker) for every i in [0, n) on up to n_threads workers (worker in [0, n_threads)), items handed out
// in order; stops handing out items after the first error and returns it.
inline Status parallel_for(int64_t n, int n_threads, const std::function<Status(int64_t i, int worker)>& fn) {
  n_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, n)));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  Status first = ok_status();
  std::mutex mu;
  auto work = [&](int worker) {
    for (int64_t i; !failed.load() && (i = next.fetch_add(1)) < n;) {
      Status s = fn(i, worker);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) first = s;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < n_threads; ++t) threads.emplace_back(work, t);
  work(0);
  for (auto& t : threads) t.join();
  return first;
}

}  // namespace oss4
