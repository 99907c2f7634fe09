// o200k_harmony tokenizer: ids equal tiktoken's on the reference cases, round trips, streaming decode, errors,
// and tokenizer.json written and read back.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "o200k_tokenizer.h"
#include "test_helpers.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace oss4 {
namespace {

const std::string kCases = std::string(OSS4_TEST_DATA) + "/tokenizer/o200k_harmony_cases.jsonl";
const std::string kEdgeCases = std::string(OSS4_TEST_DATA) + "/tokenizer/o200k_harmony_edge_cases.jsonl";

struct Case {
  std::string text;
  bool allow_special = false;
  std::vector<int32_t> ids;
};

std::vector<Case> read_cases(const std::string& path) {
  std::vector<Case> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    cases.push_back({j.at("text").get<std::string>(), j.at("allow_special").get<bool>(), j.at("ids").get<std::vector<int32_t>>()});
  }
  return cases;
}

const Tokenizer& tokenizer() { return test::o200k_tokenizer(); }

// how many cases of the file give exactly tiktoken's ids; prints the first mismatches.
size_t count_matches(const Tokenizer& tok, const std::vector<Case>& cases) {
  size_t n_match = 0, n_shown = 0;
  for (const Case& c : cases) {
    auto ids = tok.encode(c.text, c.allow_special);
    if (ids.ok() && *ids == c.ids) {
      ++n_match;
    } else if (n_shown++ < 5) {
      ADD_FAILURE() << "mismatch for " << nlohmann::json(c.text).dump() << " allow_special=" << c.allow_special
                    << (ids.ok() ? "" : ": " + ids.status().message());
    }
  }
  return n_match;
}

TEST(Tokenizer, ReferenceCasesMatchTiktoken) {
  const auto cases = read_cases(kCases);
  ASSERT_GE(cases.size(), 250u);
  const size_t n = count_matches(tokenizer(), cases);
  std::printf("o200k_harmony_cases.jsonl: %zu/%zu cases match tiktoken\n", n, cases.size());
  EXPECT_EQ(n, cases.size());
}

TEST(Tokenizer, EdgeCasesMatchTiktoken) {
  const auto cases = read_cases(kEdgeCases);
  ASSERT_GE(cases.size(), 70u);
  const size_t n = count_matches(tokenizer(), cases);
  std::printf("o200k_harmony_edge_cases.jsonl: %zu/%zu cases match tiktoken\n", n, cases.size());
  EXPECT_EQ(n, cases.size());
}

// the vocabulary compiled into the binary is data/o200k_base.tiktoken byte for byte, and loads as the same tokenizer
TEST(Tokenizer, BuiltinVocabularyIsTheShippedFile) {
  const std::string file = test::read_bytes(std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken");
  ASSERT_GT(file.size(), 1000000u);
  EXPECT_TRUE(builtin_vocab() == file);
  EXPECT_EQ(default_vocab_path(), kBuiltinVocab);
  auto t = load_tokenizer(kBuiltinVocab);
  ASSERT_TRUE(t.ok()) << t.status().message();
  const std::string text = "Hello from oss4! Ünïcödé 123 <|start|>";
  EXPECT_EQ(*t->encode(text, /*allow_special=*/true), *test::o200k_tokenizer().encode(text, /*allow_special=*/true));
  auto m = load_model_tokenizer(/*model_dir=*/"", /*path=*/"");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->ranks().size(), test::o200k_tokenizer().ranks().size());
}

TEST(Tokenizer, HarmonySpecials) {
  const Tokenizer& tok = tokenizer();
  EXPECT_EQ(tok.special_id("<|startoftext|>"), 199998);
  EXPECT_EQ(tok.special_id("<|endoftext|>"), 199999);
  EXPECT_EQ(tok.special_id("<|return|>"), 200002);
  EXPECT_EQ(tok.special_id("<|constrain|>"), 200003);
  EXPECT_EQ(tok.special_id("<|channel|>"), 200005);
  EXPECT_EQ(tok.special_id("<|start|>"), 200006);
  EXPECT_EQ(tok.special_id("<|end|>"), 200007);
  EXPECT_EQ(tok.special_id("<|message|>"), 200008);
  EXPECT_EQ(tok.special_id("<|call|>"), 200012);
  EXPECT_EQ(tok.special_id("<|reserved_200013|>"), 200013);
  EXPECT_EQ(tok.special_id("<|reserved_201088|>"), 201088);  // harmony goes one past the model's 201088 rows
  EXPECT_EQ(tok.special_id("<|endofprompt|>"), -1);
  EXPECT_EQ(tok.n_vocab(), 201089);
  EXPECT_EQ(tok.ranks().size(), 199998u);
  EXPECT_TRUE(tok.is_special(200006));
  EXPECT_FALSE(tok.is_special(13225));
  EXPECT_EQ(*tok.encode("<|start|>", true), std::vector<int32_t>({200006}));
  EXPECT_NE(*tok.encode("<|start|>", false), std::vector<int32_t>({200006}));
  EXPECT_EQ(*tok.decode(std::vector<int32_t>{200006, 13225, 200007}), "<|start|>Hello<|end|>");
  auto bad = tok.decode(std::vector<int32_t>{13225, 201089});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("201089"), std::string::npos);
}

TEST(Tokenizer, RoundTrip) {
  const Tokenizer& tok = tokenizer();
  for (const Case& c : read_cases(kCases)) {
    auto ids = tok.encode(c.text, c.allow_special);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*tok.decode(*ids), c.text);
  }
  // random valid UTF-8 across scripts, whitespace and punctuation.
  const uint32_t pool[] = {'a', 'Z', ' ', '\n', '\r', '\t', '\'', '1', '!', '/', '<', '|', '>', 0xE9, 0x301, 0x3000, 0x4E2D,
                           0xAC00, 0x0661, 0x1F389, 0x180E, 0x85, 0xA0, 0x2028, 0x10FFFF, 0x17F};
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    const int n = static_cast<int>(rng() % 64);
    for (int i = 0; i < n; ++i) utf8_append(pool[rng() % (sizeof(pool) / sizeof(pool[0]))], &s);
    for (bool allow : {false, true}) {
      auto ids = tok.encode(s, allow);
      ASSERT_TRUE(ids.ok());
      EXPECT_EQ(*tok.decode(*ids), s);
    }
  }
}

TEST(Tokenizer, LinearAndHeapMergesAgree) {
  const BpeRanks& ranks = tokenizer().ranks();
  size_t n_pieces = 0;
  for (const Case& c : read_cases(kCases)) {
    if (c.text.empty() || c.text.size() > 1500) continue;
    std::vector<int32_t> a, b;
    ranks.merge_linear(c.text, &a);
    ranks.merge_heap(c.text, &b);
    EXPECT_EQ(a, b) << c.text.substr(0, 40);
    ++n_pieces;
  }
  std::mt19937 rng(3);
  for (int iter = 0; iter < 200; ++iter) {
    std::string s;
    const int n = 2 + static_cast<int>(rng() % 300);
    for (int i = 0; i < n; ++i) s.push_back("aab ee\xc3\xa9xx!"[rng() % 11]);
    std::vector<int32_t> a, b;
    ranks.merge_linear(s, &a);
    ranks.merge_heap(s, &b);
    EXPECT_EQ(a, b) << s;
  }
  EXPECT_GT(n_pieces, 100u);
}

TEST(Tokenizer, LongPieces) {
  // one regex piece of 1 MB each: the heap merge and the regex engine stay fast and exact (round trip).
  const Tokenizer& tok = tokenizer();
  for (const std::string& s : {std::string(1 << 20, ' '), std::string(1 << 20, 'x'), std::string(1 << 20, '!'),
                               std::string(1 << 20, '\n') + "a"}) {
    auto ids = tok.encode(s, false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*tok.decode(*ids), s);
  }
}

TEST(Tokenizer, InvalidUtf8NamesOffset) {
  const Tokenizer& tok = tokenizer();
  struct Bad {
    std::string text;
    size_t offset;
  };
  for (const Bad& b : {Bad{"abc\xff", 3}, Bad{"ab\xe2\x82", 2}, Bad{"\xed\xa0\x80x", 0}, Bad{"ok \xc0\xaf", 3},
                       Bad{"\xf4\x90\x80\x80", 0}, Bad{"caf\xc3\xa9 \x80", 6}, Bad{"<|start|>\xfe", 9}}) {
    for (bool allow : {false, true}) {
      auto ids = tok.encode(b.text, allow);
      ASSERT_FALSE(ids.ok());
      EXPECT_NE(ids.status().message().find("byte offset " + std::to_string(b.offset)), std::string::npos) << ids.status().message();
    }
  }
}

TEST(Tokenizer, StreamingDecoderHoldsPartialCharacters) {
  const Tokenizer& tok = tokenizer();
  const std::string text = "caf\xc3\xa9 \xf0\x9f\x8e\x89\xf0\x9f\xa7\xaa \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xea\xb0\x80";
  auto ids = tok.encode(text, false);
  ASSERT_TRUE(ids.ok());
  StreamingDecoder dec(tok);
  std::string all;
  size_t n_held = 0;
  for (int32_t id : *ids) {
    std::string chunk;
    ASSERT_TRUE(dec.push(id, &chunk).ok());
    EXPECT_EQ(utf8_first_invalid(chunk), kUtf8Valid) << "chunk splits a character";
    if (dec.n_pending() > 0) ++n_held;
    all += chunk;
  }
  all += dec.flush();
  EXPECT_EQ(all, text);
  EXPECT_GT(n_held, 0u) << "no token of the text ended inside a character";

  // a 4-byte character fed one byte-token at a time comes out whole on the last byte.
  StreamingDecoder bytes(tok);
  const std::string party = "\xf0\x9f\x8e\x89";
  for (size_t i = 0; i < party.size(); ++i) {
    std::string chunk;
    ASSERT_TRUE(bytes.push(tok.ranks().find(party.substr(i, 1)), &chunk).ok());
    EXPECT_EQ(chunk, i + 1 < party.size() ? "" : party);
  }
  // bytes that can never complete are not held back; an incomplete tail comes out at flush.
  StreamingDecoder odd(tok);
  std::string chunk;
  ASSERT_TRUE(odd.push(tok.ranks().find("\x80"), &chunk).ok());
  EXPECT_EQ(chunk, "\x80");
  ASSERT_TRUE(odd.push(tok.ranks().find("\xe6"), &chunk).ok());
  EXPECT_EQ(chunk, "\x80");
  EXPECT_EQ(odd.flush(), "\xe6");
  EXPECT_FALSE(odd.push(-1, &chunk).ok());
}

TEST(Tokenizer, MalformedTiktokenFileNamesLine) {
  const std::string dir = test::make_temp_dir();
  const std::string path = dir + "/bad.tiktoken";
  std::string good;
  for (int b = 0; b < 256; ++b) {
    static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    good += std::string() + tbl[b >> 2] + tbl[(b & 3) << 4] + "== " + std::to_string(b) + "\n";
  }
  test::write_bytes(path, good + "aGk= 256\nnot-base64! 257\n");
  auto t = load_tokenizer(path);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(path + ":258:"), std::string::npos) << t.status().message();

  test::write_bytes(path, good + "aGk=\n");
  t = load_tokenizer(path);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(path + ":257:"), std::string::npos) << t.status().message();

  test::write_bytes(path, good + "aGk= 5\n");
  t = load_tokenizer(path);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(path + ":257:"), std::string::npos) << t.status().message();

  test::write_bytes(path, good + "aGk= 256\n");
  t = load_tokenizer(path);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t->encode("hi hi", false), std::vector<int32_t>({256, 32, 256}));

  EXPECT_FALSE(load_tokenizer(dir).ok());  // a directory without tokenizer.json
  EXPECT_FALSE(load_tokenizer(dir + "/missing.tiktoken").ok());
  test::write_bytes(dir + "/tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0,}}}");
  t = load_tokenizer(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.json"), std::string::npos);
  EXPECT_NE(t.status().message().find("line 1"), std::string::npos) << t.status().message();
}

TEST(Tokenizer, HfTokenizerJsonRoundTrip) {
  const Tokenizer& tok = tokenizer();
  const std::string dir = test::make_temp_dir();
  ASSERT_TRUE(write_hf_tokenizer_files(tok, dir).ok());
  auto cfg = nlohmann::json::parse(test::read_bytes(dir + "/tokenizer_config.json"));
  EXPECT_EQ(cfg["eos_token"], "<|return|>");
  EXPECT_EQ(cfg["added_tokens_decoder"]["200018"]["content"], "<|endofprompt|>");

  auto hf = load_tokenizer(dir);
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  EXPECT_EQ(hf->ranks().size(), tok.ranks().size());
  EXPECT_EQ(hf->special_id("<|endofprompt|>"), 200018);
  EXPECT_EQ(hf->special_id("<|reserved_200017|>"), 200017);
  EXPECT_EQ(hf->special_id("<|reserved_200019|>"), -1);
  EXPECT_EQ(hf->n_vocab(), 200019);
  EXPECT_EQ(hf->pattern(), kO200kPattern);
  auto cases = read_cases(kCases);
  const auto edge = read_cases(kEdgeCases);
  for (const Case& c : edge)
    if (c.text.find("<|reserved_201088|>") == std::string::npos) cases.push_back(c);  // not an HF added token
  EXPECT_EQ(count_matches(*hf, cases), cases.size());
}

// a wrong type anywhere in tokenizer.json is an error naming the file, never an exception out of the JSON library.
TEST(Tokenizer, HfTokenizerJsonWithWrongTypesIsAnError) {
  const std::string dir = test::make_temp_dir();
  const std::pair<std::string, std::string> cases[] = {
      {R"({"model": {"type": 5, "vocab": {}}})", "model.type is 5"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": 7}})", ""},
      {"{\"model\": " + std::string(100, '[') + std::string(100, ']') + "}", "nests deeper than 64 levels"},
      {R"({"model": {"type": "BPE", "vocab": )", "not well-formed JSON"},
  };
  for (const auto& [text, expect] : cases) {
    test::write_bytes(dir + "/tokenizer.json", text);
    auto t = load_tokenizer(dir);
    if (expect.empty()) continue;  // only that it returned
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.status().message().find(expect), std::string::npos) << t.status().message();
    EXPECT_NE(t.status().message().find("tokenizer.json"), std::string::npos) << t.status().message();
  }
}

}  // namespace
}  // namespace oss4
