// What keeps one client from taking the HTTP layer down (issue 19). cpp-httplib serves a connection per worker
// thread; this subclass replaces its per-connection loop so that
//   - a connection must deliver a whole request (line, headers, body) within `request_deadline_s` of the first
//     wait for it, however it trickles the bytes in (a slowloris holds a worker for that long at most);
//   - one client address may hold at most `max_conns_per_client` connections; past that it gets 429 and a close,
//     at once, without a worker waiting on it;
//   - when every worker is taken (busy or queued), the connections idling between keep-alive requests are closed
//     first, so waiting connections get their worker;
//   - begin_drain() closes the idle ones and makes every request after it end with the connection.
// The handlers, routes and streaming stay cpp-httplib's.
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/server.h"

namespace oss4::serve {

struct HttpGuardStats {
  int64_t n_open = 0;              // connections registered now (being served or idle between requests)
  int64_t n_refused_per_client = 0;
  int64_t n_request_deadline = 0;  // connections closed because a request did not arrive whole in time
  int64_t n_idle_closed = 0;       // idle keep-alive connections closed to make room or at shutdown
};

// the worker pool: cpp-httplib's TaskQueue, counting busy and queued jobs so the guard can see pressure.
class GuardPool : public httplib::TaskQueue {
 public:
  GuardPool(size_t n_threads, std::function<void()> on_pressure);
  ~GuardPool() override;
  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void work();
  std::function<void()> on_pressure_;
  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  size_t n_busy_ = 0;
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
};

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(HttpGuardConfig cfg);
  const HttpGuardConfig& guard_config() const { return cfg_; }
  HttpGuardStats guard_stats() const;
  // closes the connections idling between requests; later requests are answered with Connection: close.
  void begin_drain();
  bool draining() const { return draining_.load(); }
  // after bind: cpp-httplib listens with a backlog of 5, so a burst of connects waits for SYN retransmits (a second
  // and more each) while the accept thread catches up; the kernel caps n at net.core.somaxconn.
  bool widen_backlog(int n);
  // closes idle keep-alive connections (called by the pool when every worker is taken).
  void close_idle_connections();
  // closes every connection that is not writing a response (at shutdown, once the streams have ended).
  void close_unserved_connections();
  // connections writing a response now.
  int64_t n_responding() const;

  enum class ConnState { kReading, kResponding, kIdle };
  void set_state(int fd, ConnState st);

 private:
  struct Conn {
    int fd = -1;
    std::string addr;
    ConnState state = ConnState::kReading;
  };
  bool process_and_close_socket(socket_t sock) override;
  // registers a connection; false when its address holds too many already.
  bool admit(int fd, const std::string& addr);
  void forget(int fd, const std::string& addr);

  HttpGuardConfig cfg_;
  mutable std::mutex mu_;
  std::map<int, Conn> conns_;
  std::map<std::string, int> n_per_addr_;
  HttpGuardStats stats_;
  std::atomic<bool> draining_{false};
};

}  // namespace oss4::serve
