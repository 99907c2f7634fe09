#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace oss4 {

std::string format_bytes(double b) {
  char buf[64];
  if (b >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  } else if (b >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  }
  return buf;
}

int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total > 0 ? total : 1), enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double frac = static_cast<double>(done_) / static_cast<double>(total_);
  const double el = elapsed_s();
  const double eta = frac > 0 ? el * (1.0 - frac) / frac : 0.0;
  // short work stays silent: nothing before the first second, and no final line unless a line was shown.
  if (!printed_ && el < 1.0) return;
  printed_ = true;
  auto amount = [&](double v) { return unit_ == "B" ? format_bytes(v) : std::to_string(static_cast<int64_t>(v)) + " " + unit_; };
  if (tty_) {
    if (done_ < total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    const int width = 30, fill = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(fill), '#');
    bar.resize(width, ' ');
    std::fprintf(stderr, "\r%s [%s] %3.0f%% %s / %s  %.1fs  ETA %.0fs   ", label_.c_str(), bar.c_str(), frac * 100,
                 amount(static_cast<double>(done_)).c_str(), amount(static_cast<double>(total_)).c_str(), el, eta);
  } else {
    const int decile = static_cast<int>(frac * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s: %3.0f%% %s / %s  %.1fs  ETA %.0fs\n", label_.c_str(), frac * 100, amount(static_cast<double>(done_)).c_str(),
                 amount(static_cast<double>(total_)).c_str(), el, eta);
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  update(total_);
  if (enabled_ && tty_ && printed_) std::fprintf(stderr, "\n");
}

}  // namespace oss4
