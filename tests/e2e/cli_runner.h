// Running the oss4 binary from end-to-end tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "../unit/test_helpers.h"

namespace oss4::test {

struct CmdResult {
  int code = -1;  // exit status; 128 + signal when killed
  std::string out, err;
};

// runs `oss4 ARGS` with stdin from a file holding `input` (so stdin is never a terminal); captures both streams.
inline CmdResult run_oss4(const std::string& args, const std::string& input = "") {
  static int counter = 0;
  const std::string dir = make_temp_dir();
  const std::string in = dir + "/in" + std::to_string(counter), err = dir + "/err" + std::to_string(counter);
  ++counter;
  write_bytes(in, input);
  CmdResult r;
  FILE* p = popen((std::string(OSS4_BIN) + " " + args + " < " + in + " 2>" + err).c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.err = read_bytes(err);
  return r;
}

// a failing run: exit 1 (not a crash), one "oss4: error:" line that mentions `expect`.
inline void expect_clean_error(const CmdResult& r, const std::string& expect) {
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(expect), std::string::npos) << "wanted '" << expect << "' in: " << r.err;
  const size_t at = r.err.find("oss4: error: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const auto line = r.err.substr(at);
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << "one line: " << r.err;
}

}  // namespace oss4::test
