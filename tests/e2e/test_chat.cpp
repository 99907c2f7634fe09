// End-to-end: `oss4 chat` on the tiny random model (its replies are gibberish: the tests check the shape of the
// conversation, not its words) and its one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli_runner.h"

namespace oss4 {
namespace {

using Out = test::CmdResult;

// runs `oss4 ARGS < input` (stdin is not a terminal).
Out chat(const std::string& args, const std::string& input) { return test::run_oss4(args, input); }

const std::string& tiny_model() {
  static const std::string dir = [] {
    const std::string d = test::make_temp_dir() + "/tiny";
    Out s = chat("synth --config tiny --out " + d, "");
    EXPECT_EQ(s.code, 0) << s.err;
    return d;
  }();
  return dir;
}

// stricter than expect_clean_error: the error line is all of stderr.
void expect_one_line_error(const Out& r, const std::string& expect) {
  test::expect_clean_error(r, expect);
  EXPECT_EQ(r.err.rfind("oss4: error: ", 0), 0u) << r.err;
}

TEST(Chat, TwoTurnsFromStdin) {
  const std::string m = tiny_model();
  Out two = chat("chat -m " + m + " -n 16 --temperature 0", "hi\nhow are you\n");
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_NE(two.err.find("[turn 1: prompt "), std::string::npos) << two.err;
  EXPECT_NE(two.err.find("[turn 2: prompt "), std::string::npos) << two.err;
  EXPECT_EQ(two.err.find("[turn 3:"), std::string::npos) << two.err;
  EXPECT_EQ(two.out.find('\x1b'), std::string::npos) << "no ANSI styles when stdout is not a terminal";
  EXPECT_EQ(std::count(two.err.begin(), two.err.end(), '\n'), 2) << "progress is off when stderr is not a terminal: " << two.err;
  // each turn prints its reply and a newline; the first turn alone prints exactly the first part (greedy)
  Out one = chat("chat -m " + m + " -n 16 --temperature 0", "hi\n");
  ASSERT_EQ(one.code, 0) << one.err;
  ASSERT_GT(one.out.size(), 1u) << "turn 1 printed something";
  EXPECT_EQ(one.out.back(), '\n');
  ASSERT_GT(two.out.size(), one.out.size() + 1) << "turn 2 printed something";
  EXPECT_EQ(two.out.substr(0, one.out.size()), one.out);
  EXPECT_EQ(two.out.back(), '\n');
  // greedy is deterministic; empty lines are not turns
  Out again = chat("chat -m " + m + " -n 16 --temperature 0 -q", "\nhi\n\nhow are you\n");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, two.out);
  EXPECT_EQ(again.err, "");
}

TEST(Chat, OptionsRun) {
  const std::string m = tiny_model();
  Out r = chat("chat -m " + m + " -n 8 --temperature 0.8 --top-p 0.9 --seed 7 --reasoning-effort high --hide-reasoning "
               "--system 'You are a test.' --developer 'Be brief.' --tokenizer " + std::string(OSS4_DATA_DIR) + "/o200k_base.tiktoken -q",
               "hello\n");
  EXPECT_EQ(r.code, 0) << r.err;
  Out empty = chat("chat -m " + m + " -q", "");
  EXPECT_EQ(empty.code, 0) << empty.err;
  EXPECT_EQ(empty.out, "");
  EXPECT_NE(chat("--help", "").out.find("chat"), std::string::npos);
  EXPECT_NE(chat("chat --help", "").out.find("--reasoning-effort"), std::string::npos);
}

TEST(Chat, BadFlagsGiveOneLineErrors) {
  const std::string m = tiny_model();
  expect_one_line_error(chat("chat -m " + m + " --reasoning-effort extreme", "hi\n"), "--reasoning-effort: expected low, medium or high");
  expect_one_line_error(chat("chat -m " + m + " --temperature -1", "hi\n"), "temperature must be");
  expect_one_line_error(chat("chat -m " + m + " --top-p 0", "hi\n"), "top-p must be in (0, 1]");
  expect_one_line_error(chat("chat -m " + m + " -n 0", "hi\n"), "-n: ");
  expect_one_line_error(chat("chat -m " + m + " --tokenizer /nonexistent/tok.json", "hi\n"), "/nonexistent/tok.json");
  expect_one_line_error(chat("chat -m /nonexistent/model", "hi\n"), "/nonexistent/model");
  expect_one_line_error(chat("chat -m " + m + " --ctx 64 -n 16", "hi\n"), "exceeds the context size 64");
}

}  // namespace
}  // namespace oss4
