// The lm_head option, now the CPU backend's prepare step: requantizing a loaded BF16 lm_head to NVFP4 in row chunks on
// the thread pool gives exactly the bytes one nvfp4_quantize_ref call over the whole tensor gives (transposed to the
// input-major layout), the host weights stay as loaded, and the forward pass runs on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/backend.h"
#include "backend/cpu/prepare.h"
#include "core/thread_pool.h"
#include "core/transpose.h"
#include "model/lm_head.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"

namespace oss4 {
namespace {

const std::string kModel = std::string(OSS4_TEST_DATA) + "/golden/c2/mxfp4";

TEST(LmHead, Nvfp4RequantizationEqualsOneWholeTensorQuantization) {
  ThreadPool pool(2);
  auto m = load_model(kModel);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const LinearWeight before = m->lm_head;
  ASSERT_EQ(before.type, WeightType::kBF16);
  std::vector<float> w(static_cast<size_t>(before.n_out * before.n_in));  // [n_vocab, n_embd]
  float amax = 0.0f;
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = bf16_to_f32(reinterpret_cast<const uint16_t*>(before.data)[i]);
    amax = std::max(amax, std::fabs(w[i]));
  }
  std::vector<uint8_t> packed(w.size() / 2), scales(w.size() / 16);
  float s2 = 0.0f;
  ASSERT_TRUE(nvfp4_quantize_ref(w.data(), before.n_out, before.n_in, amax, packed.data(), scales.data(), &s2, "lm_head").ok());

  const size_t bytes_before = m->weight_bytes_per_token();
  auto prepared = cpu_prepare_weights(*m, LmHeadType::kNvfp4, pool);
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  EXPECT_EQ(m->lm_head.type, WeightType::kBF16) << "the host weights stay as loaded";
  const LinearWeight& after = prepared->lm_head;
  EXPECT_EQ(after.type, WeightType::kNvfp4);
  EXPECT_EQ(after.scale2, s2);
  // the vocabulary (n_out) is a multiple of 32, so the bytes come in the kernels' input-major layout (backend/cpu/prepare.h)
  ASSERT_TRUE(after.in_major());
  std::vector<uint8_t> packed_t(packed.size()), scales_t(scales.size());
  transpose_u8(packed.data(), before.n_out, before.n_in / 2, packed_t.data());
  transpose_u8(scales.data(), before.n_out, before.n_in / 16, scales_t.data());
  packed.swap(packed_t);
  scales.swap(scales_t);
  EXPECT_EQ(std::memcmp(after.data, packed.data(), packed.size()), 0);
  EXPECT_EQ(std::memcmp(after.scales, scales.data(), scales.size()), 0);

  BackendOptions o;
  o.lm_head = LmHeadType::kNvfp4;
  o.threads = 2;
  auto fwd = make_forward(*m, o);
  ASSERT_TRUE(fwd.ok()) << fwd.status().message();
  EXPECT_EQ((*fwd)->info().lm_head, "nvfp4");
  EXPECT_EQ((*fwd)->info().weight_bytes_per_token, bytes_before - before.nbytes() + after.nbytes());
  auto cache = (*fwd)->new_cache(8, 8);
  ASSERT_TRUE(cache.ok());
  std::vector<float> logits;
  const int32_t ids[3] = {1, 2, 3};
  ASSERT_TRUE(eval(**fwd, **cache, ids, 3, LogitsMode::kLast, &logits).ok());
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

TEST(LmHead, UnknownTypeIsAnError) {
  auto m = load_model(kModel);
  ASSERT_TRUE(m.ok());
  auto t = parse_lm_head_type("int3");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("int3"), std::string::npos);
  BackendOptions o;
  o.lm_head = LmHeadType::kBf16;
  auto fwd = make_forward(*m, o);
  ASSERT_TRUE(fwd.ok()) << fwd.status().message();
  EXPECT_EQ((*fwd)->info().lm_head, "bf16");
}

}  // namespace
}  // namespace oss4
