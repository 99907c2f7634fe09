// oss4: create, run, serve and evaluate gpt-oss models in NVFP4.
#include <cstdio>

#include "commands.h"

namespace oss4::cli {

int fail(const Status& s) {
  std::fprintf(stderr, "oss4: error: %s\n", s.message().c_str());
  return 1;
}

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string tok = text.substr(i, j - i);
    while (!tok.empty() && tok.front() == ' ') tok.erase(tok.begin());
    while (!tok.empty() && tok.back() == ' ') tok.pop_back();
    if (tok.empty() || tok.size() > 10 || tok.find_first_not_of("0123456789") != std::string::npos)
      return error("--ids: '" + tok + "' is not a token id (expected comma-separated non-negative integers)");
    long long v = std::stoll(tok);
    if (v > INT32_MAX) return error("--ids: " + tok + " is too large");
    ids.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  if (ids.empty()) return error("--ids: no token ids");
  return ids;
}

}  // namespace oss4::cli

int main(int argc, char** argv) {
  CLI::App app{"oss4: create, run, serve and evaluate OpenAI's gpt-oss models in NVFP4.\n"
               "Checkpoints: the HF MXFP4 release layout and the BF16 layout (safetensors, sharded or not)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "oss4 0.1.0");
  int rc = 0;
  oss4::cli::add_synth(app, &rc);
  oss4::cli::add_generate(app, &rc);
  oss4::cli::add_logits(app, &rc);
  oss4::cli::add_info(app, &rc);
  oss4::cli::add_compare(app, &rc);
  oss4::cli::add_quantize(app, &rc);
  oss4::cli::add_tokenize(app, &rc);
  oss4::cli::add_chat(app, &rc);
  oss4::cli::add_bench(app, &rc);
  oss4::cli::add_serve(app, &rc);
  oss4::cli::add_perplexity(app, &rc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return rc;
}
