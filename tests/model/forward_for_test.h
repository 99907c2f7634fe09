// The backend a test runs a loaded model on: make_forward with the options given (the default device and kernel rung:
// OSS4_KERNELS=ref in the environment selects the reference rung, as model_tests_ref_rung does).
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "backend/backend.h"

namespace oss4::test {

inline std::unique_ptr<Forward> forward_for(const ModelWeights& m, const BackendOptions& o = {}) {
  auto f = make_forward(m, o);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? std::move(f).value() : nullptr;
}

}  // namespace oss4::test
