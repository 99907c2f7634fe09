// Progress for long work (loading, synthesizing, quantizing): a bar with rate and ETA on a terminal,
// a line every 10% otherwise. Writes to stderr only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace oss4 {

class Progress {
 public:
  // unit "B" prints sizes in GB/MB; anything else prints counts.
  Progress(std::string label, int64_t total, std::string unit = "B", bool enabled = true);
  void update(int64_t done);
  void add(int64_t n) { update(done_ + n); }
  void finish();
  double elapsed_s() const;

 private:
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false, printed_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_bytes(double bytes);
// peak resident set size of this process, from /proc/self/status (VmHWM), in bytes; 0 if unknown.
int64_t peak_rss_bytes();

}  // namespace oss4
