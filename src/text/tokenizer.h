// o200k_harmony, the tokenizer of gpt-oss: byte-level BPE over o200k_base ranks, pieces cut by the o200k regex
// (PCRE2, Unicode properties), harmony special tokens. Loads a .tiktoken rank file (specials built in) or an HF
// tokenizer.json (specials from added_tokens); encodes exactly like tiktoken's Rust core.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "oss4/status.h"
#include "text/bpe.h"

namespace oss4 {

struct SpecialToken {
  std::string text;  // e.g. "<|start|>"
  int32_t id = 0;
};

// the o200k_base / o200k_harmony pre-tokenization regex, as tiktoken and HF tokenizer.json spell it.
extern const char* const kO200kPattern;

// openai-harmony's special tokens: 199998..200013 named or reserved, then <|reserved_N|> for N = 200014..201088.
std::vector<SpecialToken> harmony_special_tokens();

class Tokenizer {
 public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // pattern: a regex in tiktoken/HF spelling; kO200kPattern runs as an exact PCRE2 translation (\s as Unicode
  // White_Space), any other is compiled as is. Errors: a special id that is also a rank, a duplicate special,
  // a pattern PCRE2 rejects.
  static Result<Tokenizer> create(BpeRanks ranks, std::vector<SpecialToken> specials, std::string pattern);

  // appends the ids of text. allow_special: special-token strings in text become their ids (leftmost, longest);
  // otherwise they are plain text (tiktoken's encode_ordinary). Invalid UTF-8 is an error naming the byte offset.
  Status encode(std::string_view text, bool allow_special, std::vector<int32_t>* out) const;
  Result<std::vector<int32_t>> encode(std::string_view text, bool allow_special) const;

  // the bytes of the ids, concatenated (specials as their text); an id without a token is an error.
  Result<std::string> decode(const int32_t* ids, size_t n) const;
  Result<std::string> decode(const std::vector<int32_t>& ids) const { return decode(ids.data(), ids.size()); }

  // bytes of one id (mergeable or special); empty if the id has no token.
  std::string_view token_bytes(int32_t id) const;
  // one more than the largest id.
  int32_t n_vocab() const;
  // id of a special token's text, or -1.
  int32_t special_id(std::string_view text) const;
  bool is_special(int32_t id) const;

  const BpeRanks& ranks() const;
  const std::vector<SpecialToken>& special_tokens() const;  // by id
  const std::string& pattern() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// reads a .tiktoken file (lines "<base64 bytes> <rank>") into ranks. Errors name the file and line.
Result<BpeRanks> read_tiktoken_ranks(const std::string& path);

// a .tiktoken file with the harmony specials and the o200k regex.
Result<Tokenizer> load_tiktoken_tokenizer(const std::string& path);
// an HF tokenizer.json: model.vocab (byte-level spelled) as ranks, added_tokens as specials, the Split regex of
// pre_tokenizer. merges are not read: ranks order the merges, as in tokenizer.json files converted from tiktoken
// (BPE with ignore_merges and merges sorted by the rank of their result).
Result<Tokenizer> load_hf_tokenizer(const std::string& path);
// a model directory (its tokenizer.json), a tokenizer.json, a .tiktoken file, or kBuiltinVocab.
Result<Tokenizer> load_tokenizer(const std::string& path);

// the vocabulary shipped with oss4: data/o200k_base.tiktoken of the source tree, compiled into the binary.
// kBuiltinVocab names it wherever a tokenizer path is taken (load_tokenizer, --tokenizer); default_vocab_path()
// returns that name, so nothing reads the source tree at run time.
inline constexpr const char* kBuiltinVocab = "builtin:o200k_base.tiktoken";
std::string_view builtin_vocab();
std::string default_vocab_path();
// the tokenizer for a model: `path` when given, else model_dir/tokenizer.json when present, else the shipped vocabulary.
Result<Tokenizer> load_model_tokenizer(const std::string& model_dir, const std::string& path);

// writes dir/tokenizer.json (the HF form gpt-oss ships: Split(regex, isolated) + ByteLevel(use_regex=false), BPE
// with ignore_merges, vocab + merges, added_tokens 199998..200018 with <|endofprompt|> at 200018) and
// dir/tokenizer_config.json (bos <|startoftext|>, eos <|return|>, pad <|endoftext|>).
Status write_hf_tokenizer_files(const Tokenizer& tok, const std::string& dir);  // tokenizer.json, tokenizer_config.json, chat_template.jinja

// turns ids into text incrementally without ever emitting part of a UTF-8 character: bytes that may still be
// completed by the next token are held back. Everything pushed and then flushed equals decode() of all the ids.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tok) : tok_(&tok) {}
  // appends to *out the bytes of id that complete characters (plus any held-back bytes they complete).
  Status push(int32_t id, std::string* out);
  // returns the held-back bytes (an incomplete character at the end of the stream) and clears them.
  std::string flush();
  size_t n_pending() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace oss4
