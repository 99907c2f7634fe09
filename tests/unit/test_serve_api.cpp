// The API layer without HTTP: OpenAI requests into harmony conversations (and their errors), harmony output into
// reasoning / text / tool-call parts, stop strings.
#include <gtest/gtest.h>

#include "o200k_tokenizer.h"

#include "serve/api_request.h"
#include "serve/logprobs_json.h"
#include "serve/output.h"

namespace oss4::serve {
namespace {

namespace h = oss4::harmony;

const Tokenizer& tokenizer() { return test::o200k_tokenizer(); }

const h::HarmonyEncoding& encoding() { return test::o200k_harmony(); }

std::string render(const h::Conversation& c) {
  std::vector<int32_t> ids;
  EXPECT_TRUE(encoding().render_conversation_for_completion(c, h::Role::kAssistant, h::RenderConfig{}, &ids).ok());
  return *tokenizer().decode(ids);
}

Parsed<ChatRequest> chat(const std::string& body) {
  auto b = parse_body(body);
  EXPECT_TRUE(b.ok()) << b.error.message;
  return parse_chat_request(*b.value);
}

TEST(ServeApi, ChatMessagesBecomeHarmony) {
  auto r = chat(R"({"model": "x", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
      {"role": "assistant", "content": null, "reasoning_content": "Use the tool.",
       "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "reasoning_effort": "low", "temperature": 0, "max_completion_tokens": 7, "stop": ["END"], "some_unknown_field": {"x": 1}})");
  ASSERT_TRUE(r.ok()) << r.error.message;
  EXPECT_EQ(r.value->gen.max_tokens, 7);
  EXPECT_EQ(r.value->gen.sampling.temperature, 0.0f);
  EXPECT_EQ(r.value->gen.stop, std::vector<std::string>{"END"});
  const std::string p = render(r.value->conv);
  EXPECT_NE(p.find("Reasoning: low"), std::string::npos) << p;
  EXPECT_NE(p.find("<|start|>developer<|message|># Instructions\n\nBe brief."), std::string::npos) << p;
  EXPECT_NE(p.find("type get_weather = (_: {\ncity: string,\n}) => any;"), std::string::npos) << p;
  EXPECT_NE(p.find("<|start|>assistant<|channel|>analysis<|message|>Use the tool.<|end|>"), std::string::npos) << p;
  EXPECT_NE(p.find("<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>"), std::string::npos) << p;
  EXPECT_EQ(p.substr(p.size() - 18), "<|start|>assistant") << "a completion prompt";
}

TEST(ServeApi, ToolChoiceNoneLeavesToolsOut) {
  auto r = chat(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "none",
                   "tools": [{"type": "function", "function": {"name": "f"}}]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(render(r.value->conv).find("namespace functions"), std::string::npos);
}

TEST(ServeApi, ToolChoiceModes) {
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}])";
  auto with = [&](const std::string& tc) { return chat(R"({"messages": [{"role": "user", "content": "hi"}], )" + tools + ", \"tool_choice\": " + tc + "}"); };
  auto a = with("\"auto\"");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value->tool_choice, ToolChoice::kAuto);
  EXPECT_EQ(a.value->tool_names, (std::vector<std::string>{"f", "g"}));
  auto r = with("\"required\"");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value->tool_choice, ToolChoice::kRequired);
  EXPECT_NE(render(r.value->conv).find("namespace functions"), std::string::npos) << "the tools are rendered";
  auto n = with(R"({"type": "function", "function": {"name": "g"}})");
  ASSERT_TRUE(n.ok()) << n.error.message;
  EXPECT_EQ(n.value->tool_choice, ToolChoice::kFunction);
  EXPECT_EQ(n.value->forced_tool, "g");
  std::vector<std::vector<int32_t>> pre;
  ASSERT_TRUE(tool_call_prefixes(*n.value, encoding(), &pre).ok());
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_EQ(*tokenizer().decode(pre[0]), "<|channel|>commentary to=functions.g <|constrain|>json<|message|>");
  ASSERT_TRUE(tool_call_prefixes(*r.value, encoding(), &pre).ok());
  EXPECT_EQ(pre.size(), 2u);
  ASSERT_TRUE(tool_call_prefixes(*a.value, encoding(), &pre).ok());
  EXPECT_TRUE(pre.empty());
  // the responses form names the function at the top level
  auto resp = parse_responses_request(
      *parse_body(R"({"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "f"}})").value);
  ASSERT_TRUE(resp.ok()) << resp.error.message;
  EXPECT_EQ(resp.value->forced_tool, "f");
  // refused: an unknown function, a forced call without tools, a bad shape
  for (const std::string& body : {std::string(R"({"messages": [{"role": "user", "content": "hi"}], )") + tools +
                                      R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}}})",
                                  std::string(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"})"),
                                  std::string(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "function", "function": {"name": "f"}}})"),
                                  std::string(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "always"})"),
                                  std::string(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "function"}})"),
                                  std::string(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "code", "name": "f"}})"),
                                  std::string(R"({"messages": [{"role": "user", "content": "hi"}], "tool_choice": 3})")}) {
    auto e = chat(body);
    ASSERT_FALSE(e.ok()) << body;
    EXPECT_EQ(e.error.http_status, 400);
    EXPECT_EQ(e.error.param, "tool_choice") << body << ": " << e.error.message;
  }
}

TEST(ServeApi, BadRequestsGiveOpenAiErrors) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"model": "x"})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": [{"content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "wizard", "content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "temperature": 3})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "stop": [1]})", "stop"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "stop": ["a","b","c","d","e"]})", "stop"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "extreme"})", "reasoning_effort"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "n": 2})", "n"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "code"}]})", "tools[0].type"},
      {R"({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})", "messages[0].tool_call_id"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "description": 5}}]})",
       "tools[0].function.description"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]})",
       "tools[0].function.parameters"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": ""}}]})", "tools[0].function.name"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": 5}}]}]})",
       "messages[0].tool_calls[0].function.arguments"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"arguments": "{}"}}]}]})", "messages[0].tool_calls[0].function.name"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": 3}]}]})", "messages[0].tool_calls[0].function.name"},
      {R"({"messages": [{"role": "assistant", "tool_calls": 3}]})", "messages[0].tool_calls"},
  };
  for (const auto& c : cases) {
    auto r = chat(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error.http_status, 400);
    EXPECT_EQ(r.error.param, c.param) << c.body << ": " << r.error.message;
    const Json j = api_error_json(r.error);
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  }
  // the exact wording of typed-field errors
  EXPECT_EQ(chat(R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": 5}}]}]})").error.message,
            "'messages[0].tool_calls[0].function.arguments' must be a string");
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": 1}}]})")
                .error.message,
            "'tools[0].function.parameters' must be a JSON Schema object");
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "description": 1}}]})")
                .error.code,
            "invalid_type");
  EXPECT_FALSE(parse_body("{not json").ok());
  EXPECT_EQ(parse_body("{not json").error.code, "invalid_json");
  EXPECT_FALSE(parse_body("[1, 2]").ok());
  std::string deep = "{\"messages\": ";  // 200 nested arrays: refused before anything recurses over them
  for (int i = 0; i < 200; ++i) deep += "[";
  for (int i = 0; i < 200; ++i) deep += "]";
  auto d = parse_body(deep + "}");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error.message.find("nests deeper"), std::string::npos);
  EXPECT_TRUE(parse_body("{\"a\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}").ok()) << "brackets in strings do not count";
}

TEST(ServeApi, ResponsesInputItems) {
  auto b = parse_body(R"({"model": "x", "instructions": "Be brief.", "reasoning": {"effort": "high"}, "max_output_tokens": 9,
      "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
      "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "rain"}]})");
  ASSERT_TRUE(b.ok());
  auto r = parse_responses_request(*b.value);
  ASSERT_TRUE(r.ok()) << r.error.message;
  EXPECT_EQ(r.value->gen.max_tokens, 9);
  const std::string p = render(r.value->conv);
  EXPECT_NE(p.find("Reasoning: high"), std::string::npos);
  EXPECT_NE(p.find("# Instructions\n\nBe brief."), std::string::npos);
  EXPECT_NE(p.find("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>rain<|end|>"), std::string::npos) << p;
  auto no_name = parse_body(R"({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]})");
  EXPECT_EQ(parse_responses_request(*no_name.value).error.param, "input[0].name");
  auto bad = parse_body(R"({"input": [{"type": "function_call_output", "call_id": "zz", "output": "x"}]})");
  EXPECT_FALSE(parse_responses_request(*bad.value).ok());
  auto prev = parse_body(R"({"input": "hi", "previous_response_id": "resp_1"})");
  EXPECT_EQ(parse_responses_request(*prev.value).error.param, "previous_response_id");
}

TEST(ServeApi, CompletionPrompts) {
  auto text = parse_completion_request(*parse_body(R"({"prompt": "Hello", "max_tokens": 3})").value);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text.value->prompt_text, "Hello");
  EXPECT_EQ(text.value->gen.max_tokens, 3);
  auto ids = parse_completion_request(*parse_body(R"({"prompt": [1, 2, 3]})").value);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value->prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ids.value->gen.max_tokens, 16) << "OpenAI's default";
  EXPECT_FALSE(parse_completion_request(*parse_body(R"({"prompt": [1, -2]})").value).ok());
  EXPECT_FALSE(parse_completion_request(*parse_body(R"({"prompt": {"a": 1}})").value).ok());
  EXPECT_FALSE(parse_completion_request(*parse_body(R"({})").value).ok());
}

std::vector<int32_t> ids(const std::string& s) { return *tokenizer().encode(s, true); }

// feeds the tokens one at a time; returns the concatenated deltas per part
std::vector<std::string> run(HarmonyOutput& out, const std::vector<int32_t>& toks) {
  std::vector<std::string> deltas;
  auto take = [&](const std::vector<OutputEvent>& evs) {
    for (const auto& e : evs) {
      if (deltas.size() <= e.part) deltas.resize(e.part + 1);
      if (e.type == OutputEvent::Type::kDelta) deltas[e.part] += e.text;
    }
  };
  for (int32_t t : toks) take(out.push(t));
  take(out.finish());
  return deltas;
}

TEST(ServeOutput, ReasoningTextAndToolCalls) {
  HarmonyOutput out(encoding(), {}, "call_x_");
  const auto d = run(out, ids("<|channel|>analysis<|message|>Think about it.<|end|><|start|>assistant<|channel|>commentary "
                              "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>"));
  ASSERT_EQ(out.parts().size(), 2u);
  EXPECT_EQ(out.parts()[0].kind, PartKind::kReasoning);
  EXPECT_EQ(out.reasoning(), "Think about it.");
  EXPECT_EQ(out.parts()[1].kind, PartKind::kToolCall);
  EXPECT_EQ(out.parts()[1].tool_name, "get_weather");
  EXPECT_EQ(out.parts()[1].text, "{\"city\": \"Paris\"}");
  EXPECT_EQ(out.parts()[1].call_id, "call_x_0");
  EXPECT_TRUE(out.has_tool_calls());
  EXPECT_EQ(d[0], out.parts()[0].text) << "the deltas add up";
  EXPECT_EQ(d[1], out.parts()[1].text);
  EXPECT_TRUE(out.text().empty());

  HarmonyOutput fin(encoding(), {}, "c");
  run(fin, ids("<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!<|return|>"));
  EXPECT_EQ(fin.text(), "Hello there!");
  EXPECT_EQ(fin.reasoning(), "Hmm.");
  EXPECT_FALSE(fin.has_tool_calls());
}

TEST(ServeOutput, StopStringsCutTextAcrossTokens) {
  HarmonyOutput out(encoding(), {"STOP here"}, "c");
  const auto d = run(out, ids("<|channel|>final<|message|>one two STOP here three<|return|>"));
  EXPECT_TRUE(out.stop_hit());
  EXPECT_EQ(out.text(), "one two ");
  EXPECT_EQ(d.back(), "one two ");

  StopMatcher m({"ab"});
  EXPECT_EQ(m.push("xa"), "x") << "holds back what may start a stop string";
  EXPECT_EQ(m.push("c"), "a");
  EXPECT_EQ(m.push("a"), "c");
  EXPECT_EQ(m.push("b!"), "");
  EXPECT_TRUE(m.hit());
  StopMatcher u({"zz"});
  EXPECT_EQ(u.push("\xC3"), "");
  EXPECT_EQ(u.push("\xA9"), "") << "never splits a UTF-8 character";
  EXPECT_EQ(u.flush(), "\xC3\xA9");
}

TEST(ServeOutput, RawText) {
  TextOutput out(tokenizer(), {"\n\n"});
  std::string s;
  for (int32_t t : ids("Hello world\n\nmore")) s += out.push(t);
  s += out.finish();
  EXPECT_EQ(s, "Hello world");
  EXPECT_TRUE(out.stop_hit());
}

}  // namespace
}  // namespace oss4::serve

namespace oss4::serve {
namespace {

// the text of the tokens content_tokens() marks
std::string content_of(const HarmonyOutput& out, const std::vector<int32_t>& toks) {
  const std::vector<bool> is_content = out.content_tokens();
  EXPECT_EQ(is_content.size(), toks.size());
  std::string s;
  for (size_t i = 0; i < toks.size() && i < is_content.size(); ++i) {
    if (is_content[i]) s += std::string(encoding().tokenizer().token_bytes(toks[i]));
  }
  return s;
}

TEST(ServeLogprobs, ContentTokensAreTheFinalTextOnly) {
  const auto toks = ids("<|channel|>analysis<|message|>Hmm, think.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!<|return|>");
  HarmonyOutput out(encoding(), {}, "c");
  for (int32_t t : toks) out.push(t);
  out.finish();
  EXPECT_EQ(content_of(out, toks), "Hello there!");
  // a tool call and its preamble-less header: nothing is content
  const auto call = ids("<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\": 1}<|call|>");
  HarmonyOutput c(encoding(), {}, "c");
  for (int32_t t : call) c.push(t);
  c.finish();
  EXPECT_EQ(content_of(c, call), "");
  // malformed output (no header at all) comes back as text, and its tokens are content
  const auto raw = ids("just words, no header");
  HarmonyOutput m(encoding(), {}, "c");
  for (int32_t t : raw) m.push(t);
  m.finish();
  EXPECT_EQ(m.text(), "just words, no header");
  EXPECT_EQ(content_of(m, raw), "just words, no header");
}

TEST(ServeLogprobs, TokenTextAsOpenAiWritesIt) {
  EXPECT_EQ(legacy_token_text("h\xC3\xA9"), "h\xC3\xA9");
  EXPECT_EQ(legacy_token_text("\xE2\x80"), "bytes:\\xe2\\x80");
  EXPECT_EQ(legacy_token_text(" \xF0"), "bytes:\\x20\\xf0");
  EXPECT_EQ(utf8_chars("h\xC3\xA9"), 2);
  EXPECT_EQ(utf8_chars("\xE2\x80"), 1);
  const Tokenizer& tok = encoding().tokenizer();
  const auto one = tok.encode("é", /*allow_special=*/false);
  ASSERT_TRUE(one.ok());
  std::vector<TokenLogprob> lps = {{(*one)[0], -0.5, {{(*one)[0], -0.5}}}};
  const Json c = chat_logprobs_content(tok, lps);
  EXPECT_EQ(c[0]["token"], "é");
  EXPECT_EQ(c[0]["bytes"], Json::array({0xC3, 0xA9}));
  EXPECT_EQ(c[0]["top_logprobs"][0]["logprob"], -0.5);
  // legacy: the first echoed token has no log-probability
  lps.insert(lps.begin(), TokenLogprob{(*one)[0], NAN, {}});
  const Json l = legacy_logprobs(tok, lps, 0);
  EXPECT_TRUE(l["token_logprobs"][0].is_null() && l["top_logprobs"][0].is_null());
  EXPECT_EQ(l["token_logprobs"][1], -0.5);
  EXPECT_EQ(l["text_offset"], Json::array({0, 1}));
}

TEST(ServeLogprobs, RequestFields) {
  auto p = parse_completion_request(Json::parse(R"({"prompt": [[1, 2, 3]], "max_tokens": 0, "echo": true, "logprobs": 3})"));
  ASSERT_TRUE(p.ok()) << p.error.message;
  EXPECT_EQ(p.value->prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(p.value->gen.logprobs, 3);
  EXPECT_TRUE(p.value->gen.echo);
  EXPECT_EQ(*p.value->gen.max_tokens, 0);
  EXPECT_EQ(parse_completion_request(Json::parse(R"({"prompt": "x"})")).value->gen.logprobs, -1);
  for (const char* bad : {R"({"prompt": "x", "max_tokens": 0})", R"({"prompt": "x", "logprobs": 21})", R"({"prompt": ["a", "b"]})",
                          R"({"prompt": "x", "echo": "yes"})"}) {
    EXPECT_FALSE(parse_completion_request(Json::parse(bad)).ok()) << bad;
  }
  const std::string msgs = R"("messages": [{"role": "user", "content": "hi"}])";
  auto c = parse_chat_request(Json::parse("{" + msgs + R"(, "logprobs": true, "top_logprobs": 5})"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value->gen.logprobs, 5);
  EXPECT_EQ(parse_chat_request(Json::parse("{" + msgs + R"(, "logprobs": false})")).value->gen.logprobs, -1);
  EXPECT_EQ(parse_chat_request(Json::parse("{" + msgs + R"(, "top_logprobs": 2})")).error.param, "top_logprobs");
  EXPECT_FALSE(parse_chat_request(Json::parse("{" + msgs + R"(, "logprobs": true, "top_logprobs": 21})")).ok());
}

}  // namespace
}  // namespace oss4::serve
