// oss4._core.quantize: `oss4 quantize` (quantize_checkpoint) with the GIL released; progress goes to a Python
// callback (the package draws the bar).
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "quant/calibrate.h"
#include "quant/quantize.h"
#include "text/tokenizer.h"

namespace oss4::py {

namespace {

using namespace nb::literals;

// calibration: None, "builtin" (the CLI's built-in texts, through the model's tokenizer) or lists of token ids
std::vector<std::vector<int32_t>> calibration_prompts(const std::string& src, const nb::object& calibration) {
  std::vector<std::vector<int32_t>> out;
  if (calibration.is_none()) return out;
  if (nb::isinstance<nb::str>(calibration)) {
    if (nb::cast<std::string>(calibration) != "builtin") raise(PyExc_ValueError, "calibration: expected None, \"builtin\" or lists of token ids");
    Tokenizer tok = take(load_model_tokenizer(src, ""));
    for (const char* t : builtin_calibration_texts()) {
      std::vector<int32_t> ids = take(tok.encode(t, true));
      if (!ids.empty()) out.push_back(std::move(ids));
    }
    return out;
  }
  if (!nb::try_cast(calibration, out) || out.empty()) raise(PyExc_ValueError, "calibration: expected None, \"builtin\" or a non-empty list of token id lists");
  for (const auto& p : out) {
    if (p.empty()) raise(PyExc_ValueError, "calibration: a prompt has no tokens");
  }
  return out;
}

void quantize(const std::string& src, const std::string& dst, const std::string& method, const std::string& scope, const std::string& lm_head,
              const nb::object& calibration, const std::function<void(int64_t, int64_t)>& progress) {
  require_path(src, "checkpoint");
  QuantizeOptions o;
  o.in_dir = src;
  o.out_dir = dst;
  if (method == "amax") o.method = QuantMethod::kAmax;
  else if (method == "transcode") o.method = QuantMethod::kTranscode;
  else if (method == "mse") o.method = QuantMethod::kMse;
  else raise(PyExc_ValueError, "method: expected amax, transcode or mse, not '" + method + "'");
  if (scope == "all") o.scope = QuantScope::kAll;
  else if (scope == "experts") o.scope = QuantScope::kExperts;
  else raise(PyExc_ValueError, "scope: expected all or experts, not '" + scope + "'");
  if (lm_head == "nvfp4") o.lm_head_nvfp4 = true;
  else if (lm_head != "bf16") raise(PyExc_ValueError, "lm_head: expected bf16 or nvfp4, not '" + lm_head + "'");
  o.calibration = calibration_prompts(src, calibration);
  std::error_code ec;
  if (std::filesystem::exists(dst, ec)) raise(PyExc_FileExistsError, "output '" + dst + "' already exists (quantize never overwrites)");
  bool failed = false;
  const ProgressFn fn = gil_progress(progress, &failed);
  Status st;
  {
    nb::gil_scoped_release nogil;
    QuantizeReport report;
    st = quantize_checkpoint(o, fn, &report);
  }
  if (failed) throw nb::python_error();
  check(st);
}

}  // namespace

void bind_quantize(nb::module_& m) {
  m.def("quantize", &quantize, "src"_a, "dst"_a, "method"_a = "amax", "scope"_a = "all", "lm_head"_a = "bf16",
        "calibration"_a = nb::none(), "progress"_a = nb::none());
}

}  // namespace oss4::py
