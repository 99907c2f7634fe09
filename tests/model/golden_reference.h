// The transformers reference of a golden config (tests/data/golden/CFG/reference.safetensors): the prompt's ids and
// transformers' float32 logits of every position. Shared by the golden and perplexity tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "format/safetensors.h"

namespace oss4::test {

// the test data: OSS4_TEST_DATA from the environment (a GPU machine runs binaries built elsewhere), else the source
// tree's, compiled in
inline std::string test_data_dir() {
  const char* e = std::getenv("OSS4_TEST_DATA");
  return e && *e ? std::string(e) : std::string(OSS4_TEST_DATA);
}
inline const std::string kGolden = test_data_dir() + "/golden";

struct Reference {
  TensorStore store;
  std::vector<int32_t> ids;       // [T]
  const float* logits = nullptr;  // [T, V]
  int64_t n_vocab = 0;
};

inline Reference load_reference(const std::string& cfg) {
  Reference r;
  auto st = TensorStore::open_file(kGolden + "/" + cfg + "/reference.safetensors");
  EXPECT_TRUE(st.ok()) << st.status().message();
  if (!st.ok()) return r;
  r.store = std::move(st).value();
  const TensorView* ids = r.store.find("ids");
  const TensorView* logits = r.store.find("logits");
  EXPECT_TRUE(ids && logits);
  if (!ids || !logits) return r;
  r.ids.assign(reinterpret_cast<const int32_t*>(ids->data), reinterpret_cast<const int32_t*>(ids->data) + ids->numel());
  r.logits = reinterpret_cast<const float*>(logits->data);
  r.n_vocab = logits->shape[1];
  return r;
}

}  // namespace oss4::test
