// A memory read-bandwidth probe: the ceiling decode speed is measured against. Reads a buffer much larger than the
// caches with the given thread pool (as many threads as the kernels use) and reports GB/s (1e9 B/s).
#pragma once

#include <cstddef>
#include <cstdint>

namespace oss4 {

struct ReadBandwidth {
  double best_gb_s = 0, median_gb_s = 0;
  size_t bytes = 0;  // size of the buffer read per pass
  int passes = 0;
};

// bytes: buffer size (default 1 GiB); passes: timed passes after one warm-up pass.
class ThreadPool;
ReadBandwidth measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int passes = 5);

}  // namespace oss4
