// Harmony streaming parser: harmony's own parses (tests/data/harmony/parse.json: its StreamableParser on rendered
// conversations and model-form completions) reproduced message for message and delta for delta; malformed output
// kept as flagged content; UTF-8-safe streaming.
#include <gtest/gtest.h>

#include "o200k_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "text/harmony_parse.h"

namespace oss4::harmony {
namespace {

const std::string kParseGoldens = std::string(OSS4_TEST_DATA) + "/harmony/parse.json";

const Tokenizer& tokenizer() { return test::o200k_tokenizer(); }

const HarmonyEncoding& encoding() { return test::o200k_harmony(); }

std::vector<int32_t> ids(const std::string& text_with_specials) { return *tokenizer().encode(text_with_specials, true); }

struct ParseRun {
  std::vector<ParsedMessage> messages;
  std::vector<ParseDelta> deltas;  // [n_tokens + 1]: one per token, then finish()'s
  bool turn_ended = false;
};

// parses ids and checks what must hold for any input: the deltas of each message add up to its text, every text is
// valid UTF-8, every message is complete.
ParseRun parse(const std::vector<int32_t>& tokens, std::optional<Role> role = Role::kAssistant) {
  HarmonyParser p(encoding(), role);
  ParseRun r;
  for (int32_t t : tokens) r.deltas.push_back(p.push(t));
  r.turn_ended = p.turn_ended();
  r.deltas.push_back(p.finish());
  r.messages = p.messages();
  std::vector<std::string> streamed(r.messages.size());
  for (const ParseDelta& d : r.deltas) {
    if (d.message >= 0) {
      streamed.at(static_cast<size_t>(d.message)) += d.text;
    } else {
      EXPECT_TRUE(d.text.empty());
    }
  }
  for (size_t i = 0; i < r.messages.size(); ++i) {
    EXPECT_EQ(streamed[i], r.messages[i].text()) << "message " << i;
    EXPECT_TRUE(r.messages[i].complete);
    EXPECT_TRUE(tokenizer().encode(r.messages[i].text(), false).ok()) << "valid UTF-8";
  }
  return r;
}

std::optional<std::string> opt(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}

TEST(HarmonyParse, MatchesHarmonysStreamableParser) {
  std::ifstream f(kParseGoldens, std::ios::binary);
  const Json goldens = Json::parse(f);
  // parses where this parser deliberately differs from harmony: <|start|> inside content ends the message here
  // (harmony keeps "<|start|>assistant<|channel|>final<|message|>" as content text)
  const std::set<std::string> differs = {"malformed_start_in_content"};
  // harmony accepts these, this parser also flags them
  const std::set<std::string> flagged = {"malformed_missing_channel", "malformed_stray_special_in_content"};
  size_t n_compared = 0, n_match = 0;
  for (const Json& c : goldens.at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    std::optional<Role> role;
    if (!c.at("role").is_null()) role = role_from_name(c.at("role").get<std::string>());
    const ParseRun r = parse(c.at("tokens").get<std::vector<int32_t>>(), role);
    const Json& want = c.at("strict");
    if (!want.contains("messages") || differs.count(name)) {
      // harmony rejects it (or differs on purpose): every ordinary text survives, and something says it is malformed,
      // unless it is the "user:alice" header harmony cannot read back
      bool any_malformed = false;
      for (const auto& m : r.messages) any_malformed = any_malformed || m.malformed;
      EXPECT_EQ(any_malformed, name != "rendered_author_name_recipient_all_content_type");
      continue;
    }
    ++n_compared;
    const Json& msgs = want.at("messages");
    ASSERT_EQ(r.messages.size(), msgs.size());
    bool same = true;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const Message& m = r.messages[i].message;
      const Json& w = msgs[i];
      EXPECT_EQ(role_name(m.role), w.at("role").get<std::string>());
      EXPECT_EQ(m.name, opt(w, "name"));
      EXPECT_EQ(m.recipient, opt(w, "recipient"));
      EXPECT_EQ(m.channel, opt(w, "channel"));
      EXPECT_EQ(m.content_type, opt(w, "content_type"));
      ASSERT_EQ(w.at("content").size(), 1u);
      EXPECT_EQ(r.messages[i].text(), w.at("content")[0].at("text").get<std::string>());
      EXPECT_EQ(r.messages[i].malformed, flagged.count(name) > 0) << r.messages[i].reason;
      same = same && role_name(m.role) == w.at("role").get<std::string>() && m.name == opt(w, "name") &&
             m.recipient == opt(w, "recipient") && m.channel == opt(w, "channel") && m.content_type == opt(w, "content_type") &&
             r.messages[i].text() == w.at("content")[0].at("text").get<std::string>();
    }
    const Json& deltas = want.at("deltas");
    ASSERT_EQ(deltas.size() + 1, r.deltas.size());
    for (size_t i = 0; i < deltas.size(); ++i) {
      const std::string w = deltas[i].is_null() ? std::string() : deltas[i].get<std::string>();
      EXPECT_EQ(r.deltas[i].text, w) << "token " << i;
      same = same && r.deltas[i].text == w;
    }
    EXPECT_TRUE(r.deltas.back().text.empty());
    n_match += same;
  }
  EXPECT_GE(n_compared, 35u);
  EXPECT_EQ(n_match, n_compared);
  std::printf("harmony parse goldens: %zu of %zu match messages and deltas\n", n_match, n_compared);
}

TEST(HarmonyParse, ToolCallInModelForm) {
  const ParseRun r = parse(ids("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"Tokyo\"}<|call|>"));
  ASSERT_EQ(r.messages.size(), 1u);
  const ParsedMessage& m = r.messages[0];
  EXPECT_EQ(m.message.role, Role::kAssistant);
  EXPECT_EQ(m.message.channel, "commentary");
  EXPECT_EQ(m.message.recipient, "functions.get_weather");
  EXPECT_EQ(m.message.content_type, "<|constrain|>json");
  EXPECT_EQ(m.text(), "{\"location\":\"Tokyo\"}");
  EXPECT_EQ(m.end, EndToken::kCall);
  EXPECT_FALSE(m.malformed);
  EXPECT_TRUE(r.turn_ended);
  EXPECT_EQ(m.header, "<|channel|>commentary to=functions.get_weather <|constrain|>json");
}

TEST(HarmonyParse, EndEndsAMessageButNotTheTurn) {
  HarmonyParser p(encoding());
  for (int32_t t : ids("<|channel|>analysis<|message|>hmm<|end|>")) p.push(t);
  EXPECT_FALSE(p.turn_ended());
  ASSERT_EQ(p.messages().size(), 1u);
  EXPECT_EQ(p.messages()[0].end, EndToken::kEnd);
  for (int32_t t : ids("<|start|>assistant<|channel|>final<|message|>ok<|return|>")) p.push(t);
  EXPECT_TRUE(p.turn_ended());
  EXPECT_EQ(p.messages().back().end, EndToken::kReturn);
  EXPECT_EQ(p.messages().back().text(), "ok");
}

TEST(HarmonyParse, AuthorNameAndToolMessages) {
  const ParseRun r = parse(ids("<|start|>user:alice<|message|>hi<|end|><|start|>functions.f to=assistant<|channel|>commentary<|message|>{}<|end|>"),
                      std::nullopt);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].message.role, Role::kUser);
  EXPECT_EQ(r.messages[0].message.name, "alice");
  EXPECT_EQ(r.messages[1].message.role, Role::kTool);
  EXPECT_EQ(r.messages[1].message.name, "functions.f");
  EXPECT_EQ(r.messages[1].message.recipient, "assistant");
  EXPECT_FALSE(r.messages[0].malformed || r.messages[1].malformed);
}

void expect_one_malformed(const ParseRun& r, const std::string& text, const std::string& reason) {
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].text(), text);
  EXPECT_TRUE(r.messages[0].malformed);
  EXPECT_NE(r.messages[0].reason.find(reason), std::string::npos) << r.messages[0].reason;
}

TEST(HarmonyParse, MalformedOutputIsKeptAndFlagged) {
  {
    SCOPED_TRACE("missing channel");
    const ParseRun r = parse(ids("<|message|>no channel<|end|>"));
    expect_one_malformed(r, "no channel", "missing channel");
    EXPECT_FALSE(r.messages[0].message.channel);
  }
  {
    SCOPED_TRACE("header cut off by max_tokens");
    const ParseRun r = parse(ids("<|channel|>ana"));
    expect_one_malformed(r, "<|channel|>ana", "header cut off");
    EXPECT_EQ(r.messages[0].end, EndToken::kNone);
  }
  {
    SCOPED_TRACE("header ended by a stop token");
    const ParseRun r = parse(ids("<|channel|>final The answer is 4.<|return|>"));
    expect_one_malformed(r, "<|channel|>final The answer is 4.", "not followed by <|message|>");
    EXPECT_TRUE(r.turn_ended);
  }
  {
    SCOPED_TRACE("plain text, no header at all");
    const ParseRun r = parse(ids("Hello there"));
    expect_one_malformed(r, "Hello there", "header cut off");
  }
  {
    SCOPED_TRACE("stray special tokens in content");
    const ParseRun r = parse(ids("<|channel|>final<|message|>a<|constrain|>b<|startoftext|>c<|end|>"));
    expect_one_malformed(r, "a<|constrain|>b<|startoftext|>c", "stray <|startoftext|> in content");
  }
  {
    SCOPED_TRACE("empty channel");
    const ParseRun r = parse(ids("<|channel|><|message|>x<|end|>"));
    expect_one_malformed(r, "x", "empty channel");
  }
  {
    SCOPED_TRACE("unknown role");
    const ParseRun r = parse(ids("<|start|>robot<|message|>beep<|end|>"), std::nullopt);
    expect_one_malformed(r, "robotbeep", "unknown role 'robot'");
    EXPECT_EQ(r.messages[0].header, "robot");
  }
  {
    SCOPED_TRACE("leftover header words");
    const ParseRun r = parse(ids("<|channel|>final one two three<|message|>x<|end|>"));
    expect_one_malformed(r, "onex", "unexpected words in header");
    EXPECT_EQ(r.messages[0].message.recipient, "two");
    EXPECT_EQ(r.messages[0].message.content_type, "three");
  }
}

TEST(HarmonyParse, MalformedSequences) {
  {
    SCOPED_TRACE("text before any header");
    const ParseRun r = parse(ids("stray text<|start|>assistant<|channel|>final<|message|>ok<|end|>"), std::nullopt);
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].text(), "stray text");
    EXPECT_TRUE(r.messages[0].malformed);
    EXPECT_NE(r.messages[0].reason.find("missing <|start|>"), std::string::npos) << r.messages[0].reason;
    EXPECT_EQ(r.messages[1].text(), "ok");
    EXPECT_FALSE(r.messages[1].malformed);
  }
  {
    SCOPED_TRACE("<|start|> without <|end|> before it");
    const ParseRun r = parse(ids("<|channel|>analysis<|message|>think<|start|>assistant<|channel|>final<|message|>done<|return|>"));
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].text(), "think");
    EXPECT_TRUE(r.messages[0].malformed);
    EXPECT_EQ(r.messages[1].message.channel, "final");
    EXPECT_EQ(r.messages[1].text(), "done");
    EXPECT_FALSE(r.messages[1].malformed);
  }
  {
    SCOPED_TRACE("stray <|end|> between messages");
    const ParseRun r = parse(ids("<|channel|>final<|message|>a<|end|><|end|><|start|>assistant<|channel|>final<|message|>b<|end|>"));
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_NE(r.messages[0].reason.find("stray <|end|>"), std::string::npos);
    EXPECT_FALSE(r.messages[1].malformed);
  }
  {
    SCOPED_TRACE("a channel where <|start|> should be");
    const ParseRun r = parse(ids("<|channel|>final<|message|>a<|end|><|channel|>final<|message|>b<|end|>"));
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[1].message.channel, "final");
    EXPECT_EQ(r.messages[1].text(), "b");
    EXPECT_NE(r.messages[1].reason.find("missing <|start|>"), std::string::npos);
  }
  {
    SCOPED_TRACE("only stop tokens");
    const ParseRun r = parse(ids("<|return|>"));
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_TRUE(r.messages[0].malformed);
    EXPECT_TRUE(r.turn_ended);
  }
  {
    SCOPED_TRACE("empty stream");
    EXPECT_TRUE(parse({}).messages.empty());
    EXPECT_TRUE(parse({}, std::nullopt).messages.empty());
  }
  {
    SCOPED_TRACE("stream ends right after <|start|>");
    const ParseRun r = parse(ids("<|channel|>final<|message|>a<|end|><|start|>"));
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_NE(r.messages[0].reason.find("after <|start|>"), std::string::npos);
  }
}

TEST(HarmonyParse, IdsWithoutATokenAreFlagged) {
  std::vector<int32_t> t = ids("<|channel|>final<|message|>a");
  t.push_back(999999);
  t.push_back(-5);
  for (int32_t id : ids("b<|end|>")) t.push_back(id);
  const ParseRun r = parse(t);
  expect_one_malformed(r, "ab", "token id 999999 has no token");
  std::vector<int32_t> h = {999999};
  for (int32_t id : ids("<|channel|>final<|message|>x<|end|>")) h.push_back(id);
  const ParseRun r2 = parse(h);
  expect_one_malformed(r2, "x", "token id 999999");
}

TEST(HarmonyParse, Utf8SplitAcrossTokensStreamsWholeCharacters) {
  // a character spelled by two byte-level tokens: the first yields nothing, the second the whole character
  std::vector<int32_t> ch = *tokenizer().encode("\U0001F9A5", false);
  ASSERT_GE(ch.size(), 2u);
  HarmonyParser p(encoding());
  for (int32_t t : ids("<|channel|>final<|message|>")) p.push(t);
  std::string streamed;
  for (size_t i = 0; i < ch.size(); ++i) {
    ParseDelta d = p.push(ch[i]);
    if (i + 1 < ch.size()) {
      EXPECT_TRUE(d.text.empty());
    }
    streamed += d.text;
  }
  EXPECT_EQ(streamed, "\U0001F9A5");
  // cut in the middle of a character: the held bytes come out as U+FFFD, flagged
  const ParseRun r = parse([&] {
    std::vector<int32_t> t = ids("<|channel|>final<|message|>x");
    t.push_back(ch[0]);
    return t;
  }());
  expect_one_malformed(r, "x\xEF\xBF\xBD", "incomplete UTF-8");
  // a token that can never be valid UTF-8 (a lone continuation byte)
  int32_t lone = -1;
  for (int32_t id = 0; id < 1000 && lone < 0; ++id) {
    if (tokenizer().token_bytes(id) == "\x80") lone = id;
  }
  ASSERT_GE(lone, 0);
  std::vector<int32_t> t = ids("<|channel|>final<|message|>a");
  t.push_back(lone);
  for (int32_t id : ids("b<|end|>")) t.push_back(id);
  expect_one_malformed(parse(t), "a\xEF\xBF\xBD" "b", "invalid UTF-8");
}

TEST(HarmonyParse, RenderedConversationParsesBack) {
  Conversation c;
  c.messages.push_back(Message::text(Role::kUser, "Weather in Paris? <|start|> stays text"));
  c.messages.push_back(Message::text(Role::kAssistant, "Need the tool.").with_channel("analysis"));
  c.messages.push_back(Message::text(Role::kAssistant, "{\"city\":\"Paris\"}")
                           .with_channel("commentary").with_recipient("functions.get_weather").with_content_type("<|constrain|>json"));
  c.messages.push_back(Message::tool_result("functions.get_weather", "{\"c\":21}"));
  c.messages.push_back(Message::text(Role::kAssistant, "21 \u00b0C").with_channel("final"));
  std::vector<int32_t> t;
  ASSERT_TRUE(encoding().render_conversation(c, RenderConfig{false}, &t).ok());
  const ParseRun r = parse(t, std::nullopt);
  ASSERT_EQ(r.messages.size(), c.messages.size());
  for (size_t i = 0; i < c.messages.size(); ++i) {
    const Message& want = c.messages[i];
    const Message& got = r.messages[i].message;
    EXPECT_EQ(got.role, want.role);
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.recipient, want.recipient);
    EXPECT_EQ(got.channel, want.channel);
    EXPECT_EQ(got.content_type, want.content_type);
    EXPECT_EQ(got.text(), want.text());
    EXPECT_FALSE(r.messages[i].malformed) << r.messages[i].reason;
  }
  EXPECT_EQ(r.messages[2].end, EndToken::kCall);
}

// what `oss4 chat` relies on to keep its KV cache: the rendered history extends the tokens of the previous prompt
// plus the model's reply (minus the unevaluated stop token) from the third turn on. Turn 2 cannot: harmony drops the
// analysis before the first final message, which is the first reply's own chain of thought.
TEST(HarmonyParse, HistoryExtendsTheCachedTokensFromTheThirdTurn) {
  Conversation c;
  c.messages.push_back(Message::system(SystemContent{}));
  std::vector<int32_t> cached;
  auto turn = [&](const std::string& user, const std::string& reply) {
    c.messages.push_back(Message::text(Role::kUser, user));
    std::vector<int32_t> prompt;
    EXPECT_TRUE(encoding().render_conversation_for_completion(c, Role::kAssistant, RenderConfig{}, &prompt).ok());
    const bool extends = !cached.empty() && cached.size() < prompt.size() && std::equal(cached.begin(), cached.end(), prompt.begin());
    cached = prompt;
    const std::vector<int32_t> out = ids(reply);
    cached.insert(cached.end(), out.begin(), out.end() - 1);
    for (const ParsedMessage& m : parse_harmony(encoding(), out)) c.messages.push_back(m.message);
    return extends;
  };
  const std::string reply = "<|channel|>analysis<|message|>Think about it.<|end|><|start|>assistant<|channel|>final<|message|>Done.<|return|>";
  EXPECT_FALSE(turn("one", reply));
  EXPECT_FALSE(turn("two", reply));
  EXPECT_TRUE(turn("three", reply));
  EXPECT_TRUE(turn("four", "<|channel|>final<|message|>Short.<|return|>"));
  EXPECT_TRUE(turn("five", reply));
}

}  // namespace
}  // namespace oss4::harmony
