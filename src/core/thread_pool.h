// A fixed pool of worker threads for the CPU kernels: the caller runs tasks too, so n_threads = 1 means no extra
// thread and n_threads = cores keeps every core busy without oversubscription. Workers spin briefly between
// parallel regions (decode issues hundreds of small ones per token) and then sleep on a condition variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace oss4 {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }
  // runs fn(task) for every task in [0, n_tasks), handing tasks out dynamically; returns when all are done.
  // Not reentrant: fn must not call run on the same pool.
  void run(int64_t n_tasks, const std::function<void(int64_t task)>& fn);

 private:
  void worker_loop();
  void work();

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  int64_t n_tasks_ = 0;
  const std::function<void(int64_t)>* fn_ = nullptr;
  std::atomic<bool> stop_{false};
};

// the process-wide pool the kernels use; created on first use with default_threads() threads.
ThreadPool& kernel_pool();
// replaces the process-wide pool (call between forward passes, not during one). n < 1 means default_threads().
void set_kernel_threads(int n);
// std::thread::hardware_concurrency(), or OSS4_THREADS from the environment when set.
int default_threads();

}  // namespace oss4
