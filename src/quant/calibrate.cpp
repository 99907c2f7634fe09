#include "quant/calibrate.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kv_cache.h"

namespace oss4 {

namespace {

float abs_max(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));  // a NaN is skipped, as fmax would, without the libm call
  return m;
}

}  // namespace

Result<std::vector<LayerInputAmax>> calibrate_input_amax(Forward& fwd, const std::vector<std::vector<int32_t>>& prompts,
                                                        const ProgressFn& progress) {
  if (prompts.empty()) return error("calibration: no prompts");
  const ModelConfig& cfg = fwd.config();
  std::vector<LayerInputAmax> amax(static_cast<size_t>(cfg.n_layers));
  const TraceFn trace = [&](const char* name, int64_t layer, const float* data, int64_t n_tok, int64_t n) {
    if (layer < 0 || layer >= cfg.n_layers) return;
    LayerInputAmax& a = amax[static_cast<size_t>(layer)];
    const float v = abs_max(data, n_tok * n);
    if (std::strcmp(name, "attn_in") == 0) a.qkv = std::max(a.qkv, v);
    else if (std::strcmp(name, "attn_out") == 0) a.o = std::max(a.o, v);
    else if (std::strcmp(name, "mlp_in") == 0) a.gate_up = std::max(a.gate_up, v);
    else if (std::strcmp(name, "expert_act") == 0) a.down = std::max(a.down, v);
  };
  int64_t done = 0;
  for (const auto& ids : prompts) {
    if (ids.empty()) continue;
    const auto n = static_cast<int64_t>(ids.size());
    OSS4_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, fwd.new_cache(n, std::min<int64_t>(n, 256)));
    Status s = eval(fwd, *cache, ids.data(), n, LogitsMode::kNone, nullptr, trace);
    if (!s.ok()) return error("calibration prompt " + std::to_string(done + 1) + ": " + s.message());
    if (progress) progress(++done, static_cast<int64_t>(prompts.size()));
  }
  for (size_t l = 0; l < amax.size(); ++l) {
    const LayerInputAmax& a = amax[l];
    if (!(a.qkv > 0 && a.o > 0 && a.gate_up > 0 && a.down > 0) || !std::isfinite(a.qkv + a.o + a.gate_up + a.down))
      return error("calibration: layer " + std::to_string(l) + " saw no finite non-zero input (empty or degenerate prompts?)");
  }
  return amax;
}

float nvfp4_input_scale(float amax) {
  volatile float d = 6.0f * 448.0f;  // torch: amax.float() / (6 * 448), one f32 division
  return amax / d;
}

const std::vector<const char*>& builtin_calibration_texts() {
  static const std::vector<const char*> texts = {
      "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\n"
      "Reasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message."
      "<|end|><|start|>user<|message|>Explain why the sky is blue in two sentences.<|end|><|start|>assistant<|channel|>analysis"
      "<|message|>Rayleigh scattering: shorter wavelengths scatter more.<|end|><|start|>assistant<|channel|>final<|message|>"
      "Sunlight scatters off air molecules, and blue light, with its short wavelength, scatters far more than red. So the "
      "light reaching us from every direction of the sky is mostly blue.<|return|>",
      "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable metal "
      "type, oil-based ink and a wooden screw press. Within fifty years, presses had spread to more than two hundred "
      "cities, and the number of books in Europe grew from thousands to millions.",
      "def merge_sort(xs):\n    if len(xs) <= 1:\n        return xs\n    mid = len(xs) // 2\n    left, right = "
      "merge_sort(xs[:mid]), merge_sort(xs[mid:])\n    out = []\n    while left and right:\n        out.append((left if "
      "left[0] <= right[0] else right).pop(0))\n    return out + left + right\n",
      "Q: A train leaves at 14:35 and arrives at 18:10. How long is the trip?\nA: From 14:35 to 18:35 is 4 hours; "
      "18:10 is 25 minutes earlier, so the trip takes 3 hours 35 minutes. 3.5 * 60 = 210, plus 5 = 215 minutes.",
      "Bonjour ! Je voudrais réserver une table pour quatre personnes ce soir à vingt heures. ¿Dónde está la estación? "
      "東京は日本の首都です。Москва — столица России. 🙂",
      "{\"name\": \"get_weather\", \"arguments\": {\"location\": \"San Francisco, CA\", \"unit\": \"celsius\"}, "
      "\"result\": {\"temperature\": 18.5, \"conditions\": [\"fog\", \"wind\"]}}",
  };
  return texts;
}

}  // namespace oss4
