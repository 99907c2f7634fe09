// Random FP4 matrices in checkpoint form for the CUDA host tests, and their float64 decode through src/quant's codec.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "numeric/float_formats.h"

namespace oss4::test {

struct Fp4Source {
  bool mx = false;               // MXFP4 (E8M0 per 32) or NVFP4 (E4M3 per 16)
  int64_t n_out = 0, n_in = 0;
  std::vector<uint8_t> packed;   // [n_out, n_in/2] u8, low nibble = even input
  std::vector<uint8_t> scales;   // [n_out, n_in/16] e4m3 or [n_out, n_in/32] e8m0
  float scale2 = 1.0f;           // NVFP4 weight_scale_2

  int block() const { return mx ? 32 : 16; }
  // element (o, i) decoded as the codec does, in float64: LUT[q] * scale (* scale2).
  double at(int64_t o, int64_t i) const {
    const uint8_t q = static_cast<uint8_t>((packed[o * (n_in / 2) + i / 2] >> (4 * (i % 2))) & 0xf);
    const uint8_t s = scales[o * (n_in / block()) + i / block()];
    const double sv = mx ? static_cast<double>(e8m0_to_f32(s)) : static_cast<double>(e4m3_to_f32(s)) * scale2;
    return static_cast<double>(kE2m1Lut[q]) * sv;
  }
};

// every nibble random; NVFP4 scales drawn from every non-NaN E4M3 code (subnormals included), MXFP4 scales from
// [mx_lo, mx_hi].
inline Fp4Source random_fp4(bool mx, int64_t n_out, int64_t n_in, uint32_t seed, int mx_lo = 118, int mx_hi = 134) {
  std::mt19937 rng(seed);
  Fp4Source m;
  m.mx = mx;
  m.n_out = n_out;
  m.n_in = n_in;
  m.packed.resize(static_cast<size_t>(n_out * n_in / 2));
  for (auto& b : m.packed) b = static_cast<uint8_t>(rng());
  m.scales.resize(static_cast<size_t>(n_out * (n_in / m.block())));
  for (auto& s : m.scales) {
    if (mx) {
      s = static_cast<uint8_t>(mx_lo + static_cast<int>(rng() % static_cast<uint32_t>(mx_hi - mx_lo + 1)));
    } else {
      do s = static_cast<uint8_t>(rng() & 0x7f); while (s == 0x7f);
    }
  }
  m.scale2 = mx ? 1.0f : 0x1.8p-7f;
  return m;
}

// activations [n_tok, n_in] as BF16 bits, values a few units wide.
inline std::vector<uint16_t> random_bf16(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<uint16_t> x(static_cast<size_t>(n));
  for (auto& v : x) v = f32_to_bf16(d(rng));
  return x;
}

}  // namespace oss4::test
