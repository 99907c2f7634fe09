#include "format/npy.h"

#include <cstring>

#include "core/mapped_file.h"

namespace oss4 {

Status write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  size_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    n *= static_cast<size_t>(shape[i]);
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  const size_t off = out.size();
  out.resize(off + n * sizeof(float));
  std::memcpy(out.data() + off, data, n * sizeof(float));
  return write_file_atomic(path, out.data(), out.size());
}

Result<NpyF32> read_npy_f32(const std::string& path) {
  OSS4_ASSIGN_OR_RETURN(std::string s, read_text_file(path));
  if (s.size() < 10 || s.compare(0, 6, "\x93NUMPY") != 0) return error(path + ": not a .npy file");
  const size_t hlen = static_cast<uint8_t>(s[8]) | (static_cast<size_t>(static_cast<uint8_t>(s[9])) << 8);
  if (10 + hlen > s.size()) return error(path + ": truncated .npy header");
  const std::string header = s.substr(10, hlen);
  if (header.find("'<f4'") == std::string::npos || header.find("False") == std::string::npos)
    return error(path + ": only little-endian C-order float32 .npy is supported");
  const size_t open = header.find("'shape': (");
  const size_t close = open == std::string::npos ? open : header.find(')', open);
  if (close == std::string::npos) return error(path + ": .npy header has no shape");
  NpyF32 out;
  size_t n = 1;
  int64_t dim = -1;
  for (size_t i = open + 10; i <= close; ++i) {
    const char ch = header[i];
    if (ch >= '0' && ch <= '9') {
      dim = (dim < 0 ? 0 : dim) * 10 + (ch - '0');
      if (dim > (int64_t{1} << 40)) return error(path + ": .npy dimension too large");
    } else if (ch == ',' || ch == ')') {
      if (dim >= 0) {
        out.shape.push_back(dim);
        n *= static_cast<size_t>(dim);
      }
      dim = -1;
    } else if (ch != ' ') {
      return error(path + ": malformed .npy shape");
    }
  }
  if (s.size() != 10 + hlen + n * 4) return error(path + ": .npy data size does not match its shape");
  out.data.resize(n);
  std::memcpy(out.data.data(), s.data() + 10 + hlen, n * 4);
  return out;
}

}  // namespace oss4
