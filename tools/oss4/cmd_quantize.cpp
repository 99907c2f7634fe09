// oss4 quantize: MXFP4, BF16 -> ModelOpt's exported NVFP4 layout (what vLLM and TensorRT-LLM load).
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "format/json_read.h"
#include "quant/calibrate.h"
#include "quant/quantize.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct QuantizeArgs {
  std::string in, out, method = "amax", scope = "all", calibration, lm_head = "bf16";
  bool report = false;
};

// --calibration: "builtin" (a few varied texts), or a JSONL file of {"text": ...} (specials allowed) or {"ids": [...]}.
Status load_calibration(const std::string& spec, const std::string& model_dir, std::vector<std::vector<int32_t>>* out) {
  std::vector<std::string> texts;
  if (spec == "builtin") {
    for (const char* t : builtin_calibration_texts()) texts.emplace_back(t);
  } else {
    OSS4_ASSIGN_OR_RETURN(std::string body, read_text_file(spec));
    size_t line_no = 0, pos = 0;
    while (pos < body.size()) {
      const size_t nl = body.find('\n', pos);
      const std::string line = body.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? body.size() : nl + 1;
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = spec + ":" + std::to_string(line_no) + ": ";
      auto parsed = parse_json(line);
      if (!parsed.ok()) return parsed.status().with_context(where.substr(0, where.size() - 2));
      const nlohmann::json& j = parsed.value();
      if (!j.is_object()) return error(where + "not a JSON object");
      if (auto it = j.find("ids"); it != j.end()) {
        if (!it->is_array() || it->empty()) return error(where + "'ids' must be a non-empty array of token ids");
        std::vector<int32_t> ids;
        for (const auto& v : *it) {
          if (!v.is_number_integer()) return error(where + "'ids' must hold integers");
          ids.push_back(v.get<int32_t>());
        }
        out->push_back(std::move(ids));
      } else if (auto t = j.find("text"); t != j.end() && t->is_string()) {
        texts.push_back(t->get<std::string>());
      } else {
        return error(where + "expected {\"text\": string} or {\"ids\": [...]}");
      }
    }
  }
  if (!texts.empty()) {
    OSS4_ASSIGN_OR_RETURN(Tokenizer tok, load_model_tokenizer(model_dir, ""));
    for (const std::string& t : texts) {
      OSS4_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.encode(t, true));
      if (!ids.empty()) out->push_back(std::move(ids));
    }
  }
  if (out->empty()) return error(spec + ": no calibration prompts");
  return ok_status();
}

int run_quantize(const QuantizeArgs& a) {
  QuantizeOptions opt;
  opt.in_dir = a.in;
  opt.out_dir = a.out;
  opt.method = a.method == "transcode" ? QuantMethod::kTranscode : a.method == "mse" ? QuantMethod::kMse : QuantMethod::kAmax;
  opt.scope = a.scope == "experts" ? QuantScope::kExperts : QuantScope::kAll;
  opt.lm_head_nvfp4 = a.lm_head == "nvfp4";
  if (!a.calibration.empty()) {
    Status cs = load_calibration(a.calibration, a.in, &opt.calibration);
    if (!cs.ok()) return fail(cs);
  }
  QuantizeReport report;
  std::unique_ptr<Progress> p;
  Status s = quantize_checkpoint(opt, [&](int64_t done, int64_t total) {
    if (!p) p = std::make_unique<Progress>("quantize (" + a.method + ")", total);
    p->update(done);
  }, &report);
  if (p) p->finish();
  if (!s.ok()) return fail(s);
  int64_t n_inexact = 0;
  for (const auto& t : report.tensors) n_inexact += t.n_inexact;
  if (a.report) {
    std::printf("| tensor | rel. MSE | SNR (dB) |%s\n|---|---:|---:|%s\n", opt.method == QuantMethod::kTranscode ? " inexact blocks | worst block rel. err |" : "",
                opt.method == QuantMethod::kTranscode ? "---:|---:|" : "");
    for (const auto& t : report.tensors) {
      std::printf("| %s | %.3e | %.2f |", t.name.c_str(), t.rel_mse, t.snr_db);
      if (opt.method == QuantMethod::kTranscode) std::printf(" %lld | %.3g |", static_cast<long long>(t.n_inexact), t.worst_block_rel_err);
      std::printf("\n");
    }
  } else if (opt.method == QuantMethod::kTranscode) {
    for (const auto& t : report.tensors)
      if (t.n_inexact > 0)
        std::printf("inexact: %s: %lld blocks, worst block rel. err %.3g\n", t.name.c_str(), static_cast<long long>(t.n_inexact),
                    t.worst_block_rel_err);
  }
  std::fprintf(stderr, "weight amax: %s; input scales: %s\n", report.amax_source.c_str(), report.input_scales.c_str());
  std::fprintf(stderr, "wrote %s: %s -> %s (%zu tensors quantized, %lld inexact blocks); peak RSS %s\n", a.out.c_str(),
               format_bytes(static_cast<double>(report.bytes_in)).c_str(), format_bytes(static_cast<double>(report.bytes_out)).c_str(),
               report.tensors.size(), static_cast<long long>(n_inexact), format_bytes(static_cast<double>(peak_rss_bytes())).c_str());
  return 0;
}
}  // namespace

void add_quantize(CLI::App& app, int* rc) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand("quantize",
                                     "turn an MXFP4, BF16 or ModelOpt fake-quant checkpoint into ModelOpt's exported NVFP4 layout");
  sub->add_option("-m,--model", a->in, "input checkpoint directory")->required();
  sub->add_option("-o,--out", a->out, "output directory (must not exist, or be empty; never the input)")->required();
  sub->add_option("--method", a->method,
                  "amax: ModelOpt's numbers bit for bit; transcode: MXFP4 experts exactly (blocks it cannot keep are "
                  "reported); mse: per-block scale search, never worse than amax")
      ->check(CLI::IsMember({"amax", "transcode", "mse"}))
      ->capture_default_str();
  sub->add_option("--scope", a->scope, "all: experts + attention (ModelOpt's NVFP4 default); experts: experts only")
      ->check(CLI::IsMember({"all", "experts"}))
      ->capture_default_str();
  sub->add_option("--calibration", a->calibration,
                  "calibrate: run prompts, record input amax and write input_scale (quant_algo NVFP4). With no value, or "
                  "'builtin', a small built-in set of texts; else a JSONL file of {\"text\": ...} or {\"ids\": [...]} "
                  "lines. Without --calibration, a fake-quant input's stored input amax is used, else the export is "
                  "weight-only (W4A16_NVFP4)")
      ->expected(0, 1)
      ->default_str("builtin");
  sub->add_option("--lm-head", a->lm_head,
                  "bf16: the lm_head as it is (ModelOpt's default); nvfp4: quantized too (ModelOpt's rules), so that "
                  "running with an NVFP4 lm_head needs no quantization at load. Weight-only: not with input scales")
      ->check(CLI::IsMember({"bf16", "nvfp4"}))
      ->capture_default_str();
  sub->add_flag("--report", a->report, "print each quantized tensor's relative MSE and SNR");
  sub->callback([a, rc] { *rc = run_quantize(*a); });
}

}  // namespace oss4::cli
