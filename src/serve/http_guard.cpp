#include "serve/http_guard.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace oss4::serve {

namespace {

using Clock = std::chrono::steady_clock;

int ms_until(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1000000));
}

Clock::time_point after(double s) { return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6)); }

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

void address_of(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  const int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  ip.clear();
  port = 0;
  if (r != 0) return;
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(serv);
  }
}

// a connection's socket for cpp-httplib's request parser: every read of one request shares one deadline.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(GuardedHttpServer& owner, int fd, double write_timeout_s)
      : owner_(owner), fd_(fd), write_timeout_ms_(static_cast<int>(write_timeout_s * 1000)) {
    address_of(fd, /*peer=*/true, remote_ip_, remote_port_);
    address_of(fd, /*peer=*/false, local_ip_, local_port_);
  }
  void begin_request(double deadline_s) {
    deadline_ = after(deadline_s);
    expired_ = false;
    responding_ = false;
    owner_.set_state(fd_, GuardedHttpServer::ConnState::kReading);
  }
  bool expired() const { return expired_; }
  const std::string& remote_ip() const { return remote_ip_; }

  bool is_readable() const override { return wait_fd(fd_, POLLIN, ms_until(deadline_)); }
  bool is_writable() const override {
    if (!wait_fd(fd_, POLLOUT, write_timeout_ms_)) return false;
    // a peer that closed reads as readable with nothing to read: the stream's client is gone
    char c;
    if (wait_fd(fd_, POLLIN, 0) && ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return false;
    return true;
  }
  ssize_t read(char* ptr, size_t size) override {
    for (;;) {
      const int left = ms_until(deadline_);
      if (left <= 0 || !wait_fd(fd_, POLLIN, left)) {
        expired_ = true;
        return -1;
      }
      const ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return n;
    }
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!responding_) {
      responding_ = true;
      owner_.set_state(fd_, GuardedHttpServer::ConnState::kResponding);
    }
    for (;;) {
      if (!wait_fd(fd_, POLLOUT, write_timeout_ms_)) return -1;
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return n;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = local_ip_;
    port = local_port_;
  }
  socket_t socket() const override { return fd_; }

 private:
  GuardedHttpServer& owner_;
  int fd_;
  int write_timeout_ms_;
  bool responding_ = false;
  Clock::time_point deadline_ = Clock::now();
  bool expired_ = false;
  std::string remote_ip_, local_ip_;
  int remote_port_ = 0, local_port_ = 0;
};

// answers a connection the guard will not serve, without waiting on it: the reply, then what the client already
// sent is drained (closing over unread bytes would reset the connection and lose the reply).
void refuse(int fd, int status, const std::string& message) {
  const std::string body = "{\"error\":{\"message\":\"" + message + "\",\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"too_many_connections\"}}";
  const std::string head = "HTTP/1.1 " + std::to_string(status) + (status == 429 ? " Too Many Requests" : " Service Unavailable") +
                           "\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  const std::string all = head + body;
  (void)::send(fd, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  for (int i = 0; i < 16 && ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; ++i) {
  }
}

}  // namespace

GuardPool::GuardPool(size_t n_threads, std::function<void()> on_pressure) : on_pressure_(std::move(on_pressure)) {
  for (size_t i = 0; i < n_threads; ++i) threads_.emplace_back([this] { work(); });
}

GuardPool::~GuardPool() { shutdown(); }

void GuardPool::enqueue(std::function<void()> fn) {
  bool pressure = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(std::move(fn));
    pressure = n_busy_ + jobs_.size() > threads_.size();
  }
  cv_.notify_one();
  if (pressure && on_pressure_) on_pressure_();
}

void GuardPool::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ && threads_.empty()) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void GuardPool::work() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      fn = std::move(jobs_.front());
      jobs_.pop_front();
      ++n_busy_;
    }
    fn();
    std::lock_guard<std::mutex> lk(mu_);
    --n_busy_;
  }
}

GuardedHttpServer::GuardedHttpServer(HttpGuardConfig cfg) : cfg_(cfg) {
  const auto n = static_cast<size_t>(std::max(1, cfg_.n_workers));
  new_task_queue = [this, n] { return new GuardPool(n, [this] { close_idle_connections(); }); };
}

HttpGuardStats GuardedHttpServer::guard_stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  HttpGuardStats s = stats_;
  s.n_open = static_cast<int64_t>(conns_.size());
  return s;
}

bool GuardedHttpServer::widen_backlog(int n) {
  const socket_t fd = svr_sock_.load();
  return fd != INVALID_SOCKET && ::listen(fd, n) == 0;
}

void GuardedHttpServer::begin_drain() {
  draining_ = true;
  close_idle_connections();
}

void GuardedHttpServer::close_idle_connections() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [fd, c] : conns_) {
    // shutdown, not close: the serving thread still owns the descriptor and sees the end of the stream
    if (c.state == ConnState::kIdle && ::shutdown(fd, SHUT_RDWR) == 0) ++stats_.n_idle_closed;
  }
}

void GuardedHttpServer::close_unserved_connections() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [fd, c] : conns_) {
    if (c.state != ConnState::kResponding) ::shutdown(fd, SHUT_RDWR);
  }
}

int64_t GuardedHttpServer::n_responding() const {
  std::lock_guard<std::mutex> lk(mu_);
  int64_t n = 0;
  for (const auto& [fd, c] : conns_) n += c.state == ConnState::kResponding ? 1 : 0;
  return n;
}

bool GuardedHttpServer::admit(int fd, const std::string& addr) {
  std::lock_guard<std::mutex> lk(mu_);
  int& n = n_per_addr_[addr];
  if (n >= cfg_.max_conns_per_client) {
    ++stats_.n_refused_per_client;
    if (n == 0) n_per_addr_.erase(addr);
    return false;
  }
  ++n;
  conns_[fd] = Conn{fd, addr, ConnState::kReading};
  return true;
}

void GuardedHttpServer::set_state(int fd, ConnState st) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = conns_.find(fd);
  if (it != conns_.end()) it->second.state = st;
}

void GuardedHttpServer::forget(int fd, const std::string& addr) {
  std::lock_guard<std::mutex> lk(mu_);
  conns_.erase(fd);
  auto it = n_per_addr_.find(addr);
  if (it != n_per_addr_.end() && --it->second <= 0) n_per_addr_.erase(it);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  DeadlineStream strm(*this, sock, cfg_.write_timeout_s);
  bool ret = false;
  if (!admit(sock, strm.remote_ip())) {
    refuse(sock, 429, "too many connections from " + strm.remote_ip() + " (at most " + std::to_string(cfg_.max_conns_per_client) + ")");
  } else {
    strm.begin_request(cfg_.request_deadline_s);
    for (size_t left = keep_alive_max_count_; left > 0 && is_running(); --left) {
      bool closed = false;
      // the last request of a connection, and every request once draining, closes it
      ret = process_request(strm, left == 1 || draining_.load(), closed, nullptr);
      if (strm.expired()) {
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.n_request_deadline;
      }
      if (!ret || closed || draining_.load()) break;
      // idle between requests: closed after the keep-alive timeout, or sooner under pressure
      set_state(sock, ConnState::kIdle);
      const auto idle_end = after(cfg_.idle_keep_alive_s);
      bool readable = false;
      while (!readable && is_running() && !draining_.load() && Clock::now() < idle_end) {
        readable = wait_fd(sock, POLLIN, std::min(200, ms_until(idle_end)));
      }
      if (!readable) break;
      strm.begin_request(cfg_.request_deadline_s);
    }
    forget(sock, strm.remote_ip());
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace oss4::serve
