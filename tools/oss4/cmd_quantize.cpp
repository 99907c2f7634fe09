// oss4 quantize: MXFP4, BF16 -> ModelOpt's exported NVFP4 layout (what vLLM and TensorRT-LLM load).
#include <cmath>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "core/progress.h"
#include "quant/quantize.h"

namespace oss4::cli {

namespace {
struct QuantizeArgs {
  std::string in, out, method = "amax", scope = "all";
  bool report = false;
};

int run_quantize(const QuantizeArgs& a) {
  QuantizeOptions opt;
  opt.in_dir = a.in;
  opt.out_dir = a.out;
  opt.method = a.method == "transcode" ? QuantMethod::kTranscode : a.method == "mse" ? QuantMethod::kMse : QuantMethod::kAmax;
  opt.scope = a.scope == "experts" ? QuantScope::kExperts : QuantScope::kAll;
  QuantizeReport report;
  std::unique_ptr<Progress> p;
  Status s = quantize_checkpoint(opt, [&](int64_t done, int64_t total) {
    if (!p) p = std::make_unique<Progress>("quantize (" + a.method + ")", total);
    p->update(done);
  }, &report);
  if (p) p->finish();
  if (!s.ok()) return fail(s);
  int64_t n_inexact = 0, n_blocks = 0;
  for (const auto& t : report.tensors) {
    n_inexact += t.n_inexact;
    n_blocks += t.n_blocks;
  }
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
  std::fprintf(stderr, "wrote %s: %s -> %s (%zu tensors quantized, %lld inexact blocks); peak RSS %s\n", a.out.c_str(),
               format_bytes(static_cast<double>(report.bytes_in)).c_str(), format_bytes(static_cast<double>(report.bytes_out)).c_str(),
               report.tensors.size(), static_cast<long long>(n_inexact), format_bytes(static_cast<double>(peak_rss_bytes())).c_str());
  return 0;
}
}  // namespace

void add_quantize(CLI::App& app, int* rc) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand("quantize", "turn an MXFP4 or BF16 checkpoint into ModelOpt's exported NVFP4 layout (W4A16)");
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
  sub->add_flag("--report", a->report, "print each quantized tensor's relative MSE and SNR");
  sub->callback([a, rc] { *rc = run_quantize(*a); });
}

}  // namespace oss4::cli
