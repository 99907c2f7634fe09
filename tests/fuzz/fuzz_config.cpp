// Fuzz target: config.json parsing and validation never crash; accepted configs are self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model/config.h"
#include "model/rope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto r = oss4::parse_model_config(text, "fuzz");
  if (!r.ok()) return 0;
  const auto& c = r.value();
  if (static_cast<int64_t>(c.layer_types.size()) != c.n_layers || c.n_heads % c.n_kv_heads != 0) std::abort();
  if (c.head_dim <= 4096) {
    auto rope = oss4::rope_table_init(c);
    if (static_cast<int64_t>(rope.inv_freq.size()) != c.head_dim / 2) std::abort();
  }
  return 0;
}
