#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "text/utf8.h"

namespace oss4 {

const char* const kO200kPattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
    "|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

std::vector<SpecialToken> harmony_special_tokens() {
  // openai/harmony src/tiktoken_ext/public_encodings.rs, Encoding::O200kHarmony.
  std::vector<SpecialToken> s = {
      {"<|startoftext|>", 199998},     {"<|endoftext|>", 199999},       {"<|reserved_200000|>", 200000},
      {"<|reserved_200001|>", 200001}, {"<|return|>", 200002},          {"<|constrain|>", 200003},
      {"<|reserved_200004|>", 200004}, {"<|channel|>", 200005},         {"<|start|>", 200006},
      {"<|end|>", 200007},             {"<|message|>", 200008},         {"<|reserved_200009|>", 200009},
      {"<|reserved_200010|>", 200010}, {"<|reserved_200011|>", 200011}, {"<|call|>", 200012},
      {"<|reserved_200013|>", 200013},
  };
  for (int32_t id = 200014; id <= 201088; ++id) s.push_back({"<|reserved_" + std::to_string(id) + "|>", id});
  return s;
}

namespace {

// Rust's regex crate (tiktoken) and HF tokenizers read \s as the Unicode White_Space property; PCRE2's UCP \s also
// takes U+180E. Spelling the set out makes the match identical.
constexpr const char* kWhiteSpace = "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// rewrites \s (in and out of classes) and \S (outside classes) to the explicit White_Space set.
std::string pcre2_pattern(const std::string& pat) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pat.size(); ++i) {
    const char c = pat[i];
    if (c == '\\' && i + 1 < pat.size()) {
      const char d = pat[i + 1];
      ++i;
      if (d == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (d == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += c;
        out += d;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // a ']' right after '[' or '[^' is a literal.
      if (i + 1 < pat.size() && pat[i + 1] == '^') out += pat[++i];
      if (i + 1 < pat.size() && pat[i + 1] == ']') out += pat[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

}  // namespace

struct Tokenizer::Impl {
  BpeRanks ranks;
  std::vector<SpecialToken> specials;  // by id
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> special_by_text;
  std::vector<int32_t> special_index;  // [n_vocab] index into specials, -1 for mergeable ids
  std::vector<size_t> special_lens;    // distinct special lengths, longest first
  bool special_first[256] = {};
  int32_t n_vocab = 0;
  std::string pattern;
  std::unique_ptr<pcre2_code, CodeDeleter> re;
  bool jit = false;

  // the special token that starts leftmost at or after pos (longest there): its start, length and id; false if none.
  bool next_special(std::string_view text, size_t pos, size_t* start, size_t* len, int32_t* id) const {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    for (size_t i = pos; i < text.size(); ++i) {
      if (!special_first[p[i]]) continue;
      for (size_t l : special_lens) {
        if (i + l > text.size()) continue;
        auto it = special_by_text.find(text.substr(i, l));
        if (it != special_by_text.end()) {
          *start = i;
          *len = l;
          *id = it->second;
          return true;
        }
      }
    }
    return false;
  }

  // regex pieces of valid UTF-8 text, each BPE-encoded.
  Status encode_ordinary(std::string_view text, pcre2_match_data* md, std::vector<int32_t>* out) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t off = 0;
    while (off < text.size()) {
      int rc = jit ? pcre2_jit_match(re.get(), subject, text.size(), off, 0, md, nullptr) : PCRE2_ERROR_JIT_STACKLIMIT;
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // deep backtracking on odd input: the interpreter keeps its stack on the heap
        rc = pcre2_match(re.get(), subject, text.size(), off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return error("pre-tokenizer regex failed at byte " + std::to_string(off) + ": " + reinterpret_cast<const char*>(msg));
      }
      const size_t b = ov[0], e = ov[1];
      if (e == b) {  // an empty match (not possible with the o200k regex): step over one character
        off = b + 1;
        while (off < text.size() && (static_cast<uint8_t>(text[off]) & 0xC0) == 0x80) ++off;
        continue;
      }
      ranks.encode_piece(text.substr(b, e - b), out);
      off = e;
    }
    return ok_status();
  }
};

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Result<Tokenizer> Tokenizer::create(BpeRanks ranks, std::vector<SpecialToken> specials, std::string pattern) {
  auto impl = std::make_unique<Impl>();
  impl->ranks = std::move(ranks);
  std::sort(specials.begin(), specials.end(), [](const SpecialToken& a, const SpecialToken& b) { return a.id < b.id; });
  int32_t n_vocab = impl->ranks.rank_end();
  for (const SpecialToken& s : specials) {
    if (s.text.empty()) return error("special token " + std::to_string(s.id) + " has no text");
    if (s.id < 0) return error("special token " + s.text + " has a negative id");
    if (!impl->ranks.bytes(s.id).empty()) return error("special token " + s.text + " has id " + std::to_string(s.id) + ", which is a mergeable rank");
    if (!impl->special_by_text.emplace(s.text, s.id).second) return error("special token " + s.text + " appears twice");
    n_vocab = std::max(n_vocab, s.id + 1);
  }
  impl->n_vocab = n_vocab;
  impl->special_index.assign(static_cast<size_t>(n_vocab), -1);
  for (size_t i = 0; i < specials.size(); ++i) {
    int32_t& slot = impl->special_index[static_cast<size_t>(specials[i].id)];
    if (slot >= 0) return error("special tokens " + specials[static_cast<size_t>(slot)].text + " and " + specials[i].text + " share id " + std::to_string(specials[i].id));
    slot = static_cast<int32_t>(i);
    impl->special_first[static_cast<uint8_t>(specials[i].text[0])] = true;
    if (std::find(impl->special_lens.begin(), impl->special_lens.end(), specials[i].text.size()) == impl->special_lens.end())
      impl->special_lens.push_back(specials[i].text.size());
  }
  std::sort(impl->special_lens.rbegin(), impl->special_lens.rend());
  impl->specials = std::move(specials);

  impl->pattern = std::move(pattern);
  const std::string pcre = pcre2_pattern(impl->pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl->re.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre.data()), pcre.size(), PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr));
  if (!impl->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return error("pre-tokenizer regex does not compile at offset " + std::to_string(err_off) + ": " + reinterpret_cast<const char*>(msg));
  }
  impl->jit = pcre2_jit_compile(impl->re.get(), PCRE2_JIT_COMPLETE) == 0;
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

Status Tokenizer::encode(std::string_view text, bool allow_special, std::vector<int32_t>* out) const {
  const size_t bad = utf8_first_invalid(text);
  if (bad != kUtf8Valid) return error("invalid UTF-8 at byte offset " + std::to_string(bad));
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create_from_pattern(impl_->re.get(), nullptr));
  if (!md) return error("out of memory");
  out->reserve(out->size() + text.size() / 4);
  if (!allow_special || impl_->specials.empty()) return impl_->encode_ordinary(text, md.get(), out);
  size_t pos = 0;
  for (;;) {
    size_t start = 0, len = 0;
    int32_t id = 0;
    const bool found = impl_->next_special(text, pos, &start, &len, &id);
    const size_t end = found ? start : text.size();
    // each stretch between specials is split on its own, as tiktoken does (the regex never sees a special).
    OSS4_TRY(impl_->encode_ordinary(text.substr(pos, end - pos), md.get(), out));
    if (!found) break;
    out->push_back(id);
    pos = start + len;
  }
  return ok_status();
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  OSS4_TRY(encode(text, allow_special, &ids));
  return ids;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  std::string_view b = impl_->ranks.bytes(id);
  if (!b.empty() || id < 0 || id >= impl_->n_vocab) return b;
  const int32_t si = impl_->special_index[static_cast<size_t>(id)];
  return si < 0 ? std::string_view() : std::string_view(impl_->specials[static_cast<size_t>(si)].text);
}

Result<std::string> Tokenizer::decode(const int32_t* ids, size_t n) const {
  std::string out;
  out.reserve(n * 4);
  for (size_t i = 0; i < n; ++i) {
    const std::string_view b = token_bytes(ids[i]);
    if (b.empty()) return error("token id " + std::to_string(ids[i]) + " (at index " + std::to_string(i) + ") has no token in this vocabulary (n_vocab " + std::to_string(impl_->n_vocab) + ")");
    out.append(b);
  }
  return out;
}

int32_t Tokenizer::n_vocab() const { return impl_->n_vocab; }

int32_t Tokenizer::special_id(std::string_view text) const {
  auto it = impl_->special_by_text.find(text);
  return it == impl_->special_by_text.end() ? -1 : it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->n_vocab && impl_->special_index[static_cast<size_t>(id)] >= 0;
}

const BpeRanks& Tokenizer::ranks() const { return impl_->ranks; }
const std::vector<SpecialToken>& Tokenizer::special_tokens() const { return impl_->specials; }
const std::string& Tokenizer::pattern() const { return impl_->pattern; }

Status StreamingDecoder::push(int32_t id, std::string* out) {
  const std::string_view b = tok_->token_bytes(id);
  if (b.empty()) return error("token id " + std::to_string(id) + " has no token in this vocabulary (n_vocab " + std::to_string(tok_->n_vocab()) + ")");
  pending_.append(b);
  const size_t keep = utf8_incomplete_tail(pending_);
  out->append(pending_, 0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return ok_status();
}

std::string StreamingDecoder::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace oss4
