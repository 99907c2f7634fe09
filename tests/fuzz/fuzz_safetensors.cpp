// Fuzz target: the safetensors header parser and validator must reject or accept any bytes without crashing,
// and every accepted entry must lie inside the file.
#include <cstdint>
#include <cstdlib>

#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = oss4::parse_safetensors_header(data, size, size);
  if (!r.ok()) return 0;
  for (const auto& e : r->entries) {
    if (e.begin > e.end || r->data_start + e.end > size) std::abort();
  }
  return 0;
}
