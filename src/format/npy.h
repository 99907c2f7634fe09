// NumPy .npy (version 1.0) for float32 arrays: written atomically, read back for tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

Status write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

struct NpyF32 {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
Result<NpyF32> read_npy_f32(const std::string& path);

}  // namespace oss4
