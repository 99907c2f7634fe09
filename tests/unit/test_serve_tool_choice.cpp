// tool_choice through the engine on the tiny synthetic model (oss4 synth --config tiny: random weights, the o200k
// vocabulary). A random model never calls a tool on its own, so a tool call in its reply can only come from forcing:
// "auto" gives none, a named function gives a call to it, "required" a call to one of the tools (masked sampling
// where the names part). The reply goes through the same harmony output parser as the server's.
#include <gtest/gtest.h>

#include "o200k_tokenizer.h"

#include <filesystem>
#include <unistd.h>

#include "serve/api_request.h"
#include "backend/backend.h"
#include "serve/engine_names.h"
#include "serve/output.h"
#include "synth/synth.h"

namespace oss4::serve {
namespace {

namespace h = oss4::harmony;

const Tokenizer& tokenizer() { return test::o200k_tokenizer(); }

const h::HarmonyEncoding& encoding() { return test::o200k_harmony(); }

const ModelWeights& tiny() {
  static const ModelWeights* m = [] {
    const std::string dir = (std::filesystem::temp_directory_path() / ("oss4-tool-choice-" + std::to_string(getpid()))).string();
    SynthOptions opt;
    opt.cfg = *builtin_model_config("tiny");
    opt.out_dir = dir;
    opt.seed = 7;
    Status s = synth_checkpoint(opt, nullptr);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      std::abort();
    }
    auto r = load_model(dir);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      std::abort();
    }
    auto* w = new ModelWeights(std::move(r).value());
    std::filesystem::remove_all(dir);  // the weights are read into memory or stay mapped after the unlink
    return w;
  }();
  return *m;
}

Engine& engine() {
  static Engine* e = [] {
    EngineConfig c;
    c.max_seqs = 4;
    c.ctx = 1024;
    c.chunk = 64;
    c.kv_budget_bytes = int64_t{256} << 20;
    static std::unique_ptr<Forward> fwd = make_forward(tiny(), BackendOptions{}).value();
    return Engine::create(*fwd, c).value().release();
  }();
  return *e;
}

const char* kTools = R"("tools": [
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
  {"type": "function", "function": {"name": "get_time", "description": "Time in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])";

struct Reply {
  std::vector<int32_t> tokens;
  std::vector<OutputPart> parts;
  bool tool_calls = false;
  std::vector<std::vector<int32_t>> prefixes;
};

// a chat request with the two tools and this tool_choice (JSON, or empty for none), run to its end.
Reply run(const std::string& tool_choice, float temperature, uint64_t seed) {
  const std::string body = std::string(R"({"messages": [{"role": "user", "content": "What is the weather in Paris?"}], )") + kTools +
                           (tool_choice.empty() ? "" : ", \"tool_choice\": " + tool_choice) + "}";
  auto b = parse_body(body);
  EXPECT_TRUE(b.ok());
  auto cr = parse_chat_request(*b.value);
  EXPECT_TRUE(cr.ok()) << cr.error.message;
  GenRequest g;
  EXPECT_TRUE(encoding().render_conversation_for_completion(cr.value->conv, h::Role::kAssistant, h::RenderConfig{}, &g.prompt).ok());
  EXPECT_TRUE(tool_call_prefixes(*cr.value, encoding(), &g.prefixes).ok());
  g.stop_ids = encoding().stop_tokens_for_assistant_actions();
  g.sampling.temperature = temperature;
  g.sampling.seed = seed;
  g.max_tokens = 24;
  Reply r;
  r.prefixes = g.prefixes;
  auto s = engine().submit(std::move(g));
  EXPECT_EQ(s.err, SubmitError::kNone) << s.message;
  if (!s.seq) return r;
  for (int i = 0; i < 1000 && engine().step(); ++i) {
  }
  s.seq->wait(&r.tokens, std::chrono::milliseconds(0));
  HarmonyOutput out(encoding(), {}, "call_test_");
  for (int32_t t : r.tokens) out.push(t);
  out.finish();
  r.parts = out.parts();
  r.tool_calls = out.has_tool_calls();
  return r;
}

std::vector<std::string> called(const Reply& r) {
  std::vector<std::string> names;
  for (const auto& p : r.parts) {
    if (p.kind == PartKind::kToolCall) names.push_back(p.tool_name);
  }
  return names;
}

bool starts_with(const std::vector<int32_t>& a, const std::vector<int32_t>& p) {
  return a.size() >= p.size() && std::equal(p.begin(), p.end(), a.begin());
}

TEST(ToolChoice, AutoAndNoneDoNotCallOnARandomModel) {
  for (const char* tc : {"", "\"auto\"", "\"none\""}) {
    const Reply r = run(tc, 0.0f, 1);
    EXPECT_TRUE(r.prefixes.empty());
    EXPECT_FALSE(r.tool_calls) << "tool_choice " << tc << ": the random model called a tool by itself";
    EXPECT_EQ(r.tokens.size(), 24u) << "the random model runs to max_tokens";
  }
}

TEST(ToolChoice, NamedFunctionForcesThatCall) {
  for (const char* name : {"get_time", "get_weather"}) {
    for (float temp : {0.0f, 1.0f}) {
      const Reply r = run(std::string(R"({"type": "function", "function": {"name": ")") + name + "\"}}", temp, 3);
      ASSERT_EQ(r.prefixes.size(), 1u);
      EXPECT_TRUE(starts_with(r.tokens, r.prefixes[0])) << "the reply begins with the forced header";
      EXPECT_EQ(*tokenizer().decode(r.prefixes[0]), std::string("<|channel|>commentary to=functions.") + name + " <|constrain|>json<|message|>");
      ASSERT_TRUE(r.tool_calls) << name;
      EXPECT_EQ(called(r), std::vector<std::string>{name});
      EXPECT_GT(r.tokens.size(), r.prefixes[0].size()) << "the model writes the arguments after the header";
    }
  }
}

TEST(ToolChoice, RequiredCallsOneOfTheTools) {
  int n_weather = 0, n_time = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const Reply r = run("\"required\"", seed == 1 ? 0.0f : 1.5f, seed);
    ASSERT_EQ(r.prefixes.size(), 2u);
    EXPECT_TRUE(starts_with(r.tokens, r.prefixes[0]) || starts_with(r.tokens, r.prefixes[1]));
    ASSERT_TRUE(r.tool_calls) << "seed " << seed;
    const auto names = called(r);
    ASSERT_EQ(names.size(), 1u);
    n_weather += names[0] == "get_weather";
    n_time += names[0] == "get_time";
  }
  EXPECT_EQ(n_weather + n_time, 8);
}

TEST(ToolChoice, EngineKeepsToTheAllowedPrefixes) {
  // two prefixes sharing the first token: the engine forces it, then picks between the two second tokens only
  Engine& e = engine();
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    GenRequest g;
    g.prompt = {200006, 1428, 200008, 13225, 200007, 200006, 173781};
    g.prefixes = {{1000, 2000, 3000}, {1000, 2500}};
    g.sampling.temperature = 2.0f;
    g.sampling.seed = seed;
    g.max_tokens = 5;
    auto s = e.submit(g);
    ASSERT_EQ(s.err, SubmitError::kNone) << s.message;
    for (int i = 0; i < 100 && e.step(); ++i) {
    }
    std::vector<int32_t> got;
    s.seq->wait(&got, std::chrono::milliseconds(0));
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0], 1000);
    EXPECT_TRUE(got[1] == 2000 || got[1] == 2500) << got[1];
    if (got[1] == 2000) {
      EXPECT_EQ(got[2], 3000);
    }
  }
  GenRequest bad;
  bad.prompt = {1, 2};
  bad.prefixes = {{static_cast<int32_t>(tiny().cfg.n_vocab)}};
  EXPECT_EQ(e.submit(bad).err, SubmitError::kInvalid);
}

}  // namespace
}  // namespace oss4::serve
