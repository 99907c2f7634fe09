// One function per `oss4` command: each adds its subcommand to the app and sets *rc when it runs.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "oss4/status.h"

namespace oss4::cli {

void add_synth(CLI::App& app, int* rc);
void add_generate(CLI::App& app, int* rc);
void add_logits(CLI::App& app, int* rc);
void add_info(CLI::App& app, int* rc);
void add_compare(CLI::App& app, int* rc);
void add_quantize(CLI::App& app, int* rc);
void add_tokenize(CLI::App& app, int* rc);
void add_chat(CLI::App& app, int* rc);
void add_bench(CLI::App& app, int* rc);
void add_serve(CLI::App& app, int* rc);
void add_perplexity(CLI::App& app, int* rc);

// prints "oss4: error: <message>" on one line and returns the exit code for it.
int fail(const Status& s);
// "1,2,3" -> ids; rejects anything but comma-separated non-negative integers.
Result<std::vector<int32_t>> parse_ids(const std::string& text);

}  // namespace oss4::cli
