// What the CPU this process runs on can do, asked once at run time (the binary itself is built for baseline x86-64).
#pragma once

#include <string>

namespace oss4 {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, avx512f = false, avx512bw = false, avx512vl = false;
  bool avx512dq = false, avx512vnni = false, avx512vbmi = false, avx512bf16 = false;
  bool neon = false;
};

const CpuFeatures& cpu_features();
// "avx2 fma f16c" etc., for logs and benchmark tables.
std::string cpu_features_string();

}  // namespace oss4
