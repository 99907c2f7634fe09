#include "backend/options.h"

namespace oss4 {

const char* act_precision_name(ActPrecision p) {
  switch (p) {
    case ActPrecision::kF32: return "f32";
    case ActPrecision::kQ8: return "q8";
    case ActPrecision::kBf16: return "bf16";
  }
  return "?";
}

Result<ActPrecision> parse_act_precision(const char* name) {
  const std::string s = name;
  if (s == "f32") return ActPrecision::kF32;
  if (s == "q8") return ActPrecision::kQ8;
  if (s == "bf16") return ActPrecision::kBf16;
  return error("unknown activation precision '" + s + "' (expected f32, q8 or bf16)");
}

const char* lm_head_type_name(LmHeadType t) {
  switch (t) {
    case LmHeadType::kStored: return "stored";
    case LmHeadType::kBf16: return "bf16";
    case LmHeadType::kNvfp4: return "nvfp4";
  }
  return "?";
}

Result<LmHeadType> parse_lm_head_type(const std::string& name) {
  if (name == "stored") return LmHeadType::kStored;
  if (name == "bf16") return LmHeadType::kBf16;
  if (name == "nvfp4") return LmHeadType::kNvfp4;
  return error("--lm-head: unknown type '" + name + "' (expected stored, bf16 or nvfp4)");
}

}  // namespace oss4
