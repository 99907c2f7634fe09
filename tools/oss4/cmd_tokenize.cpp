// oss4 tokenize: text -> o200k_harmony ids (one string, or a JSONL file of them), or ids -> text.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "format/json_read.h"
#include "text/tokenizer.h"

namespace oss4::cli {

namespace {
struct TokenizeArgs {
  std::string tokenizer = default_vocab_path();
  std::string jsonl, text, decode;
  bool allow_special = false;
  int n_modes = 0;  // how many of --jsonl, --text, --decode were given
  bool has_jsonl = false, has_text = false;
};

void append_ids_line(const std::vector<int32_t>& ids, std::string* out) {
  out->append("{\"ids\": [");
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    const int n = std::snprintf(buf, sizeof(buf), i ? ", %d" : "%d", ids[i]);
    out->append(buf, static_cast<size_t>(n));
  }
  out->append("]}\n");
}

// one {"ids": [...]} line per input line {"text": ..., "allow_special": bool}; allow_special defaults to the flag.
int run_jsonl(const Tokenizer& tok, const TokenizeArgs& a) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (a.jsonl != "-") {
    file.open(a.jsonl, std::ios::binary);
    if (!file) return fail(error(a.jsonl + ": cannot open"));
    in = &file;
  }
  std::string line, out;
  std::vector<int32_t> ids;
  for (size_t line_no = 1; std::getline(*in, line); ++line_no) {
    const std::string where = a.jsonl + ":" + std::to_string(line_no);
    auto parsed = parse_json(line);
    if (!parsed.ok()) return fail(parsed.status().with_context(where));
    nlohmann::json j = std::move(parsed.value());
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) return fail(error(where + ": expected an object with a string \"text\""));
    bool allow = a.allow_special;
    if (j.contains("allow_special")) {
      if (!j["allow_special"].is_boolean()) return fail(error(where + ": \"allow_special\" must be true or false"));
      allow = j["allow_special"].get<bool>();
    }
    ids.clear();
    Status s = tok.encode(j["text"].get_ref<const std::string&>(), allow, &ids);
    if (!s.ok()) return fail(s.with_context(where));
    append_ids_line(ids, &out);
    if (out.size() > (1u << 20)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  if (in->bad()) return fail(error(a.jsonl + ": read error"));
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : fail(error("cannot write to stdout"));
}

int run_tokenize(const TokenizeArgs& a) {
  if (a.n_modes != 1) return fail(error("give exactly one of --jsonl, --text, --decode"));
  auto tok = load_tokenizer(a.tokenizer);
  if (!tok.ok()) return fail(tok.status());
  if (a.has_jsonl) return run_jsonl(*tok, a);
  if (a.has_text) {
    auto ids = tok->encode(a.text, a.allow_special);
    if (!ids.ok()) return fail(ids.status().with_context("--text"));
    std::string out;
    append_ids_line(*ids, &out);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  auto ids = parse_ids(a.decode);
  if (!ids.ok()) {
    std::string m = ids.status().message();
    if (m.rfind("--ids", 0) == 0) m.replace(0, 5, "--decode");
    return fail(error(m));
  }
  auto text = tok->decode(*ids);
  if (!text.ok()) return fail(text.status().with_context("--decode"));
  std::fwrite(text->data(), 1, text->size(), stdout);
  return 0;
}
}  // namespace

void add_tokenize(CLI::App& app, int* rc) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* sub = app.add_subcommand("tokenize", "o200k_harmony: text to token ids ({\"ids\": [...]} lines) or ids to text (raw bytes)");
  sub->add_option("--tokenizer", a->tokenizer, "model directory (tokenizer.json), tokenizer.json or .tiktoken file")->capture_default_str();
  CLI::Option* jsonl = sub->add_option("--jsonl", a->jsonl, "file of {\"text\": ..., \"allow_special\": bool} lines ('-': stdin); one {\"ids\": [...]} line out per line in");
  CLI::Option* text = sub->add_option("--text", a->text, "one string to encode");
  CLI::Option* decode = sub->add_option("--decode", a->decode, "token ids to decode, comma-separated; the bytes go to stdout as they are");
  sub->add_flag("--allow-special", a->allow_special, "special-token text (<|start|> ...) becomes special ids (JSONL lines may override)");
  sub->callback([a, rc, jsonl, text, decode] {
    a->has_jsonl = jsonl->count() > 0;
    a->has_text = text->count() > 0;
    a->n_modes = static_cast<int>(a->has_jsonl) + static_cast<int>(a->has_text) + static_cast<int>(decode->count() > 0);
    *rc = run_tokenize(*a);
  });
}

}  // namespace oss4::cli
