// Weights of every layout the linear kernels take, with their decoded values in double: shared by the kernel tests.
#pragma once

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/weights.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"

namespace oss4 {

inline std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// one weight in every layout the kernels take, with its dense decoded copy
struct TestWeight {
  LinearWeight w;
  std::vector<uint8_t> data, scales;
  std::vector<double> dense;  // [n_out, n_in]
};

inline TestWeight make_weight(WeightType type, bool in_major, int64_t n_out, int64_t n_in, uint32_t seed) {
  std::mt19937 g(seed);
  TestWeight t;
  t.dense.resize(static_cast<size_t>(n_out * n_in));
  auto at = [&](int64_t o, int64_t i) -> double& { return t.dense[static_cast<size_t>(o * n_in + i)]; };
  switch (type) {
    case WeightType::kF32:
    case WeightType::kBF16: {
      auto v = randn(static_cast<size_t>(n_out * n_in), seed);
      const size_t es = type == WeightType::kF32 ? 4 : 2;
      t.data.resize(v.size() * es);
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t i = 0; i < n_in; ++i) {
          const size_t k = static_cast<size_t>(in_major ? i * n_out + o : o * n_in + i);
          const float f = v[static_cast<size_t>(o * n_in + i)];
          if (type == WeightType::kF32) {
            std::memcpy(t.data.data() + 4 * k, &f, 4);
            at(o, i) = f;
          } else {
            const uint16_t h = f32_to_bf16(f);
            std::memcpy(t.data.data() + 2 * k, &h, 2);
            at(o, i) = bf16_to_f32(h);
          }
        }
      break;
    }
    case WeightType::kMxfp4: {
      t.data.resize(static_cast<size_t>(n_out * n_in / 2));
      t.scales.resize(static_cast<size_t>(n_out * n_in / 32));
      for (auto& b : t.data) b = static_cast<uint8_t>(g());
      for (auto& s : t.scales) s = static_cast<uint8_t>(118 + g() % 16);
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t i = 0; i < n_in; ++i) {
          const uint8_t b = t.data[static_cast<size_t>(o * n_in / 2 + i / 2)];
          at(o, i) = kE2m1Lut[i % 2 ? b >> 4 : b & 15] * static_cast<double>(e8m0_to_f32(t.scales[static_cast<size_t>(o * n_in / 32 + i / 32)]));
        }
      break;
    }
    case WeightType::kNvfp4: {
      t.data.resize(static_cast<size_t>(n_out * n_in / 2));
      t.scales.resize(static_cast<size_t>(n_out * n_in / 16));
      for (auto& b : t.data) b = static_cast<uint8_t>(g());
      for (auto& s : t.scales) s = static_cast<uint8_t>(g() % 0x7f);  // 0x00..0x7e: non-negative E4M3, no NaN
      t.w.scale2 = 0.013f;
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t i = 0; i < n_in; ++i) {
          const uint8_t b = in_major ? t.data[static_cast<size_t>((i / 2) * n_out + o)] : t.data[static_cast<size_t>(o * n_in / 2 + i / 2)];
          const uint8_t s = in_major ? t.scales[static_cast<size_t>((i / 16) * n_out + o)] : t.scales[static_cast<size_t>(o * n_in / 16 + i / 16)];
          at(o, i) = kE2m1Lut[i % 2 ? b >> 4 : b & 15] * static_cast<double>(e4m3_to_f32(s) * t.w.scale2);
        }
      break;
    }
  }
  t.w.type = type;
  t.w.set_in_major(in_major);
  t.w.n_out = n_out;
  t.w.n_in = n_in;
  t.w.data = t.data.data();
  t.w.scales = t.scales.empty() ? nullptr : t.scales.data();
  t.w.name = std::string(weight_type_name(type)) + (in_major ? " in_major" : "");
  return t;
}

}  // namespace oss4
