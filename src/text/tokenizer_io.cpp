// Tokenizer files: .tiktoken rank files, HF tokenizer.json (read and write) and tokenizer_config.json (write).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "format/json_read.h"
#include "text/tokenizer.h"
#include "text/chat_template.h"
#include "text/utf8.h"

namespace oss4 {

namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// standard base64 with padding (what tiktoken files use); false on anything else.
bool base64_decode(std::string_view in, std::string* out) {
  out->clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int n_pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + static_cast<size_t>(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++n_pad;
        continue;
      }
      if (n_pad > 0) return false;  // data after padding
      v[k] = base64_value(c);
      if (v[k] < 0) return false;
    }
    const uint32_t w = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) | (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out->push_back(static_cast<char>(w >> 16));
    if (n_pad < 2) out->push_back(static_cast<char>((w >> 8) & 0xFF));
    if (n_pad < 1) out->push_back(static_cast<char>(w & 0xFF));
  }
  return true;
}

std::string byte_level_spell(std::string_view bytes) {
  std::string s;
  s.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(byte_level_code_point(static_cast<uint8_t>(c)), &s);
  return s;
}

// the bytes a byte-level spelled token stands for; false if a character is outside the 256-character alphabet.
bool byte_level_unspell(std::string_view s, std::string* out) {
  out->clear();
  if (utf8_first_invalid(s) != kUtf8Valid) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    if (p[i] < 0x80) {
      cp = p[i];
      i += 1;
    } else if (p[i] < 0xE0) {
      cp = ((p[i] & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      i += 2;
    } else {
      return false;  // the alphabet ends at U+0143
    }
    const int b = byte_level_byte(cp);
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
  }
  return true;
}

void json_escape(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<uint8_t>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      static const char* hex = "0123456789abcdef";
      if (c == '\n') {
        out->append("\\n");
      } else if (c == '\r') {
        out->append("\\r");
      } else if (c == '\t') {
        out->append("\\t");
      } else {
        out->append("\\u00");
        out->push_back(hex[u >> 4]);
        out->push_back(hex[u & 15]);
      }
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// the Split regex of an HF pre_tokenizer (alone or inside a Sequence), or "" if there is none.
std::string find_split_regex(const nlohmann::json& pt) {
  if (!pt.is_object()) return "";
  const auto t = pt.find("type");
  const std::string type = t != pt.end() && t->is_string() ? t->get<std::string>() : "";
  if (type == "Split" && pt.contains("pattern") && pt["pattern"].is_object() && pt["pattern"].contains("Regex") && pt["pattern"]["Regex"].is_string())
    return pt["pattern"]["Regex"].get<std::string>();
  if (type == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array()) {
    for (const auto& p : pt["pretokenizers"]) {
      std::string r = find_split_regex(p);
      if (!r.empty()) return r;
    }
  }
  return "";
}

}  // namespace

Result<BpeRanks> read_tiktoken_ranks(const std::string& path) {
  std::string file_text;
  if (path != kBuiltinVocab) {
    OSS4_ASSIGN_OR_RETURN(file_text, read_text_file(path));
  }
  const std::string_view text = path == kBuiltinVocab ? builtin_vocab() : std::string_view(file_text);
  BpeRanks ranks;
  std::string bytes;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;  // tiktoken's loader skips blank lines
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return error(where + "expected '<base64 token> <rank>'");
    if (!base64_decode(line.substr(0, sp), &bytes)) return error(where + "token is not valid base64");
    const std::string_view rank_text = line.substr(sp + 1);
    if (rank_text.empty() || rank_text.size() > 9 || rank_text.find_first_not_of("0123456789") != std::string_view::npos)
      return error(where + "rank '" + std::string(rank_text) + "' is not a non-negative integer below 10^9");
    const auto rank = static_cast<int32_t>(std::stol(std::string(rank_text)));
    Status s = ranks.add(bytes, rank);
    if (!s.ok()) return s.with_context(where.substr(0, where.size() - 2));
  }
  if (ranks.size() == 0) return error(path + ": no tokens");
  Status s = ranks.finish();
  if (!s.ok()) return s.with_context(path);
  return ranks;
}

Result<Tokenizer> load_tiktoken_tokenizer(const std::string& path) {
  OSS4_ASSIGN_OR_RETURN(BpeRanks ranks, read_tiktoken_ranks(path));
  auto t = Tokenizer::create(std::move(ranks), harmony_special_tokens(), kO200kPattern);
  if (!t.ok()) return t.status().with_context(path);
  return t;
}

Result<Tokenizer> load_hf_tokenizer(const std::string& path) {
  OSS4_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  auto parsed = parse_json(text);
  if (!parsed.ok()) return parsed.status().with_context(path);
  nlohmann::json j = std::move(parsed.value());
  text.clear();
  text.shrink_to_fit();
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return error(path + ": no \"model\" object");
  const nlohmann::json& model = j["model"];
  const auto type = model.find("type");
  if (type != model.end() && !type->is_null() && !(type->is_string() && type->get<std::string>() == "BPE"))
    return error(path + ": model.type is " + type->dump() + ", only BPE is supported");
  if (!model.contains("vocab") || !model["vocab"].is_object()) return error(path + ": model.vocab is not an object");

  std::vector<SpecialToken> specials;
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) return error(path + ": added_tokens is not an array");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const auto& a = j["added_tokens"][i];
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string() ||
          a["id"].get<int64_t>() < 0 || a["id"].get<int64_t>() > INT32_MAX)
        return error(path + ": added_tokens[" + std::to_string(i) + "] needs an integer \"id\" and a string \"content\"");
      specials.push_back({a["content"].get<std::string>(), static_cast<int32_t>(a["id"].get<int64_t>())});
    }
  }
  std::vector<bool> is_added;
  for (const SpecialToken& s : specials) {
    if (static_cast<size_t>(s.id) >= is_added.size()) is_added.resize(static_cast<size_t>(s.id) + 1);
    is_added[static_cast<size_t>(s.id)] = true;
  }

  BpeRanks ranks;
  std::string bytes;
  for (const auto& [key, value] : model["vocab"].items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)
      return error(path + ": model.vocab[\"" + key + "\"] is not a non-negative integer id");
    const auto id = static_cast<int32_t>(value.get<int64_t>());
    if (static_cast<size_t>(id) < is_added.size() && is_added[static_cast<size_t>(id)]) continue;  // an added token listed in the vocab too
    if (!byte_level_unspell(key, &bytes)) return error(path + ": model.vocab[\"" + key + "\"] is not a byte-level (GPT-2 alphabet) token");
    Status s = ranks.add(bytes, id);
    if (!s.ok()) return s.with_context(path + ": model.vocab");
  }
  Status s = ranks.finish();
  if (!s.ok()) return s.with_context(path + ": model.vocab");

  std::string pattern = j.contains("pre_tokenizer") ? find_split_regex(j["pre_tokenizer"]) : "";
  if (pattern.empty()) return error(path + ": pre_tokenizer has no Split regex (only tiktoken-style byte-level BPE is supported)");
  auto t = Tokenizer::create(std::move(ranks), std::move(specials), std::move(pattern));
  if (!t.ok()) return t.status().with_context(path);
  return t;
}

Result<Tokenizer> load_tokenizer(const std::string& path) {
  if (is_directory(path)) {
    const std::string json = path + "/tokenizer.json";
    if (!file_exists(json)) return error(path + ": no tokenizer.json in this directory");
    return load_hf_tokenizer(json);
  }
  if (path == kBuiltinVocab) return load_tiktoken_tokenizer(path);
  if (!file_exists(path)) return error(path + ": no such file or directory");
  if (ends_with(path, ".json")) return load_hf_tokenizer(path);
  return load_tiktoken_tokenizer(path);
}

Status write_hf_tokenizer_files(const Tokenizer& tok, const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return error(dir + ": cannot create directory: " + std::strerror(errno));
  // HF's gpt-oss files carry added tokens 199998..200018 only, with o200k_base's <|endofprompt|> at 200018.
  std::vector<SpecialToken> added;
  for (const SpecialToken& s : tok.special_tokens())
    if (s.id >= 199998 && s.id < 200018) added.push_back(s);
  if (!tok.ranks().bytes(200018).empty()) return error("id 200018 is a mergeable token; this is not an o200k vocabulary");
  added.push_back({"<|endofprompt|>", 200018});

  const BpeRanks& ranks = tok.ranks();
  std::string out;
  out.reserve(32u << 20);
  out += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  for (size_t i = 0; i < added.size(); ++i) {
    out += i ? ",\n    {" : "\n    {";
    out += "\"id\": " + std::to_string(added[i].id) + ", \"content\": ";
    json_escape(added[i].text, &out);
    out += ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}";
  }
  out += "\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": ";
  json_escape(tok.pattern(), &out);
  out += "}, \"behavior\": \"Isolated\", \"invert\": false}, "
         "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]},\n"
         "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n"
         "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
         "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, "
         "\"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": true,\n    \"vocab\": {";
  std::vector<std::string> spelled(static_cast<size_t>(ranks.rank_end()));
  bool first = true;
  for (int32_t r = 0; r < ranks.rank_end(); ++r) {
    const std::string_view b = ranks.bytes(r);
    if (b.empty()) continue;
    spelled[static_cast<size_t>(r)] = byte_level_spell(b);
    out += first ? "\n      " : ",\n      ";
    first = false;
    json_escape(spelled[static_cast<size_t>(r)], &out);
    out += ": " + std::to_string(r);
  }
  // transformers' TikTokenConverter: for each token in rank order, every split into two tokens, ordered by the
  // ranks of the two halves.
  out += "\n    },\n    \"merges\": [";
  first = true;
  std::vector<std::pair<int32_t, int32_t>> local;
  for (int32_t r = 0; r < ranks.rank_end(); ++r) {
    const std::string_view b = ranks.bytes(r);
    if (b.size() < 2) continue;
    local.clear();
    for (size_t k = 1; k < b.size(); ++k) {
      const int32_t left = ranks.find(b.substr(0, k)), right = ranks.find(b.substr(k));
      if (left >= 0 && right >= 0) local.emplace_back(left, right);
    }
    std::sort(local.begin(), local.end());
    for (const auto& [left, right] : local) {
      out += first ? "\n      [" : ",\n      [";
      first = false;
      json_escape(spelled[static_cast<size_t>(left)], &out);
      out += ", ";
      json_escape(spelled[static_cast<size_t>(right)], &out);
      out += "]";
    }
  }
  out += "\n    ]\n  }\n}\n";
  OSS4_TRY(write_file_atomic(dir + "/tokenizer.json", out.data(), out.size()));

  std::string cfg = "{\n  \"added_tokens_decoder\": {";
  for (size_t i = 0; i < added.size(); ++i) {
    cfg += i ? ",\n    \"" : "\n    \"";
    cfg += std::to_string(added[i].id) + "\": {\"content\": ";
    json_escape(added[i].text, &cfg);
    cfg += ", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, \"single_word\": false, \"special\": true}";
  }
  cfg += "\n  },\n"
         "  \"bos_token\": \"<|startoftext|>\",\n"
         "  \"clean_up_tokenization_spaces\": false,\n"
         "  \"eos_token\": \"<|return|>\",\n"
         "  \"extra_special_tokens\": {},\n"
         "  \"model_input_names\": [\"input_ids\", \"attention_mask\"],\n"
         "  \"model_max_length\": 1000000000000000019884624838656,\n"
         "  \"pad_token\": \"<|endoftext|>\",\n"
         "  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n"
         "}\n";
  OSS4_TRY(write_file_atomic(dir + "/tokenizer_config.json", cfg.data(), cfg.size()));
  // transformers (>= 4.43) reads the template from this file, as the gpt-oss repositories ship it
  const std::string_view tpl = chat_template_jinja();
  return write_file_atomic(dir + "/chat_template.jinja", tpl.data(), tpl.size());
}

std::string default_vocab_path() { return kBuiltinVocab; }

Result<Tokenizer> load_model_tokenizer(const std::string& model_dir, const std::string& path) {
  if (!path.empty()) return load_tokenizer(path);
  if (!model_dir.empty() && file_exists(model_dir + "/tokenizer.json")) return load_hf_tokenizer(model_dir + "/tokenizer.json");
  return load_tiktoken_tokenizer(default_vocab_path());
}

}  // namespace oss4
