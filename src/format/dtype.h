// Tensor element types as safetensors names them.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace oss4 {

enum class DType { kF32, kF16, kBF16, kU8, kI8, kI32, kI64, kF8E4M3 };

std::optional<DType> dtype_from_name(std::string_view name);
const char* dtype_name(DType t);
size_t dtype_size(DType t);

}  // namespace oss4
