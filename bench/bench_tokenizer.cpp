// Single-thread encode throughput of the o200k_harmony tokenizer on a few MB of mixed text: the texts of
// tests/data/tokenizer/o200k_harmony_cases.jsonl joined by "\n" and repeated to >= --mb MB (the same text
// tools/reference/bench_tiktoken.py builds). Prints MB/s (best and median of --runs) and the token count.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/tokenizer.h"

int main(int argc, char** argv) {
  std::string vocab = std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken";
  std::string cases = std::string(OSS4_TEST_DATA) + "/tokenizer/o200k_harmony_cases.jsonl";
  double mb = 4.0;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--vocab")) vocab = argv[i + 1];
    else if (!std::strcmp(argv[i], "--cases")) cases = argv[i + 1];
    else if (!std::strcmp(argv[i], "--mb")) mb = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "usage: %s [--vocab PATH] [--cases JSONL] [--mb MB] [--runs N]\n", argv[0]);
      return 2;
    }
  }
  std::ifstream in(cases);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", cases.c_str());
    return 1;
  }
  std::string round, line;
  bool first = true;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (!first) round += "\n";
    first = false;
    round += nlohmann::json::parse(line).at("text").get<std::string>();
  }
  std::string text;
  while (static_cast<double>(text.size()) < mb * 1e6) text += round;

  const auto t_load = std::chrono::steady_clock::now();
  auto tok = oss4::load_tokenizer(vocab);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  std::vector<double> mbps;
  size_t n_tokens = 0;
  std::vector<int32_t> ids;
  for (int r = 0; r < runs; ++r) {
    ids.clear();
    const auto t0 = std::chrono::steady_clock::now();
    oss4::Status s = tok->encode(text, false, &ids);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 1;
    }
    n_tokens = ids.size();
    mbps.push_back(static_cast<double>(text.size()) / 1e6 / dt);
  }
  std::sort(mbps.begin(), mbps.end());
  std::printf("oss4 o200k_harmony encode (1 thread): %.2f MB text, %zu tokens, best %.1f MB/s, median %.1f MB/s over %d runs; load %.2f s\n",
              static_cast<double>(text.size()) / 1e6, n_tokens, mbps.back(), mbps[mbps.size() / 2], runs, load_s);
  return 0;
}
