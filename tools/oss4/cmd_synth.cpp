// oss4 synth: a random-weight checkpoint of any gpt-oss config in the real HF layout.
#include <memory>

#include "commands.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "synth/synth.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct SynthArgs {
  std::string config = "tiny", dtype = "mxfp4", out;
  uint64_t seed = 0;
  int64_t layers = 0;  // 0: the config's
  double shard_gb = 4.8;
  std::string tokenizer;
  bool no_tokenizer = false;
};

int run_synth(const SynthArgs& a) {
  Result<ModelConfig> cfg = error("no config");
  if (is_directory(a.config)) {
    cfg = load_model_config(a.config);
  } else if (file_exists(a.config)) {
    auto text = read_text_file(a.config);
    if (!text.ok()) return fail(text.status());
    cfg = parse_model_config(*text, a.config);
  } else {
    cfg = builtin_model_config(a.config);
  }
  if (!cfg.ok()) return fail(cfg.status());
  if (a.layers > 0) {  // a cut of the model: its first layers (the full width), e.g. the 20b's shape in 2 layers
    if (a.layers > cfg->n_layers)
      return fail(error("--layers " + std::to_string(a.layers) + ": the config has " + std::to_string(cfg->n_layers)));
    cfg->n_layers = a.layers;
    cfg->layer_types.resize(static_cast<size_t>(a.layers));
  }
  SynthOptions opt;
  opt.cfg = *cfg;
  opt.mxfp4 = a.dtype == "mxfp4";
  opt.seed = a.seed;
  opt.out_dir = a.out;
  opt.shard_bytes = static_cast<uint64_t>(a.shard_gb * 1e9);
  opt.tokenizer_path = a.no_tokenizer ? "" : a.tokenizer.empty() ? default_vocab_path() : a.tokenizer;
  std::unique_ptr<Progress> p;
  Status s = synth_checkpoint(opt, [&](int64_t done, int64_t total) {
    if (!p) p = std::make_unique<Progress>("synth " + a.config + " (" + a.dtype + ")", total);
    p->update(done);
  });
  if (p) p->finish();
  if (!s.ok()) return fail(s);
  std::fprintf(stderr, "wrote %s (%s, %s experts, seed %llu); peak RSS %s\n", a.out.c_str(), a.config.c_str(), a.dtype.c_str(),
               static_cast<unsigned long long>(a.seed), format_bytes(static_cast<double>(peak_rss_bytes())).c_str());
  return 0;
}
}  // namespace

void add_synth(CLI::App& app, int* rc) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* sub = app.add_subcommand("synth", "write a random-weight gpt-oss checkpoint (HF layout: config.json, generation_config.json, "
                                              "safetensors shards + index for large ones)");
  sub->add_option("--config", a->config, "tiny | gpt-oss-20b | gpt-oss-120b | path to a config.json or checkpoint directory")
      ->capture_default_str();
  sub->add_option("--dtype", a->dtype, "expert storage: mxfp4 (the release layout) or bf16 (the dequantized layout)")
      ->check(CLI::IsMember({"mxfp4", "bf16"}))
      ->capture_default_str();
  sub->add_option("--layers", a->layers, "keep only the config's first N layers (a cut of the model at full width; 0: all)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", a->seed, "random seed (the same seed gives the same model in both dtypes)")->capture_default_str();
  sub->add_option("--out", a->out, "output directory (must not exist, or be empty)")->required();
  sub->add_option("--shard-gb", a->shard_gb, "largest shard in GB before splitting")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--tokenizer", a->tokenizer, "vocabulary to write as tokenizer.json (default: the shipped o200k_base.tiktoken)");
  sub->add_flag("--no-tokenizer", a->no_tokenizer, "write no tokenizer files");
  sub->callback([a, rc] { *rc = run_synth(*a); });
}

}  // namespace oss4::cli
