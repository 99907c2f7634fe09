// A fixed pool of worker threads for the CPU kernels: the caller runs tasks too, so n_threads = 1 means no extra
// thread and n_threads = cores keeps every core busy without oversubscription. Workers spin briefly between
// parallel regions (decode issues hundreds of small ones per token) and then sleep on a condition variable.
// A region ends when its tasks are done, not when every worker has seen it: a worker the OS has not scheduled
// yet (another process on the core) holds nobody up, the caller and the running workers take its share.
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
  // claims and runs tasks of the region state_ describes while it is region `gen`
  void work(uint64_t gen);
  void run_region(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  // the current region in one word: generation (bits 40..63), task count (20..39), next task to claim (0..19), so
  // a worker claims a task with one compare-and-swap that also proves the region has not changed
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};  // tasks of the current region finished
  const std::function<void(int64_t)>* fn_ = nullptr;
  std::atomic<bool> stop_{false};
};

// std::thread::hardware_concurrency(), or OSS4_THREADS from the environment when set.
int default_threads();
// n when n >= 1, else default_threads()
inline int resolve_threads(int n) { return n >= 1 ? n : default_threads(); }

}  // namespace oss4
