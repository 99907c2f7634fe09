// Crash-safe writers (issue 19): temporaries carry their writer's pid, and the next writer in the same folder
// removes those of processes that are gone, saying so; errors name the output, not the temporary.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "core/mapped_file.h"
#include "test_helpers.h"

namespace oss4 {
namespace {

// the pid of a process that has exited and been reaped (so kill(pid, 0) fails with ESRCH).
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int st = 0;
  waitpid(pid, &st, 0);
  return pid;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

TEST(CrashSafeFiles, TempNameCarriesThePid) {
  EXPECT_EQ(temp_path_for("/x/out"), "/x/out.oss4-tmp." + std::to_string(getpid()));
}

TEST(CrashSafeFiles, NextWriterRemovesTheTempsOfDeadProcessesOnly) {
  const std::string dir = test::make_temp_dir();
  const std::string dead = std::to_string(dead_pid());
  // a dead writer's folder (as synth/quantize leave on SIGKILL), a dead writer's file, an old-style temporary of
  // the same output, and what must stay: temporaries of live processes (ours, pid 1) and look-alike names
  ASSERT_EQ(::mkdir((dir + "/model.oss4-tmp." + dead).c_str(), 0755), 0);
  test::write_bytes(dir + "/model.oss4-tmp." + dead + "/model.safetensors", std::string(1000, 'x'));
  test::write_bytes(dir + "/logits.npy.oss4-tmp." + dead, "partial");
  test::write_bytes(dir + "/out.tmp." + dead, "legacy");
  test::write_bytes(dir + "/other.tmp." + dead, "not ours to judge");
  test::write_bytes(dir + "/live.oss4-tmp.1", "pid 1 is running");
  test::write_bytes(dir + "/mine.oss4-tmp." + std::to_string(getpid()), "ours");
  test::write_bytes(dir + "/notes.oss4-tmp.12ab", "not a pid");

  testing::internal::CaptureStderr();
  ASSERT_TRUE(write_file_atomic(dir + "/out", "new", 3).ok());
  const std::string err = testing::internal::GetCapturedStderr();

  EXPECT_FALSE(exists(dir + "/model.oss4-tmp." + dead));
  EXPECT_FALSE(exists(dir + "/logits.npy.oss4-tmp." + dead));
  EXPECT_FALSE(exists(dir + "/out.tmp." + dead));
  EXPECT_TRUE(exists(dir + "/other.tmp." + dead));
  EXPECT_TRUE(exists(dir + "/live.oss4-tmp.1"));
  EXPECT_TRUE(exists(dir + "/mine.oss4-tmp." + std::to_string(getpid())));
  EXPECT_TRUE(exists(dir + "/notes.oss4-tmp.12ab"));
  EXPECT_EQ(test::read_bytes(dir + "/out"), "new");
  // one line per removal, naming the path and the process
  EXPECT_NE(err.find("removed " + dir + "/model.oss4-tmp." + dead + ", left by process " + dead), std::string::npos) << err;
  EXPECT_NE(err.find("removed " + dir + "/logits.npy.oss4-tmp." + dead), std::string::npos) << err;
  EXPECT_NE(err.find("removed " + dir + "/out.tmp." + dead), std::string::npos) << err;
  int lines = 0;
  for (char c : err) lines += c == '\n';
  EXPECT_EQ(lines, 3) << err;
}

TEST(CrashSafeFiles, DirectoryWriterSweepsToo) {
  const std::string dir = test::make_temp_dir();
  const std::string dead = std::to_string(dead_pid());
  ASSERT_EQ(::mkdir((dir + "/ckpt.oss4-tmp." + dead).c_str(), 0755), 0);
  testing::internal::CaptureStderr();
  Status s = write_directory_atomic(dir + "/other", [](const std::string& tmp) { return write_file_atomic(tmp + "/a", "1", 1); });
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(exists(dir + "/ckpt.oss4-tmp." + dead));
  EXPECT_NE(err.find("ckpt.oss4-tmp." + dead), std::string::npos) << err;
}

TEST(CrashSafeFiles, FailedFillNamesTheOutputAndLeavesNothing) {
  const std::string dir = test::make_temp_dir();
  std::string seen_tmp;
  Status s = write_directory_atomic(dir + "/out", [&](const std::string& tmp) {
    seen_tmp = tmp;
    EXPECT_TRUE(write_file_atomic(tmp + "/a", "1", 1).ok());
    return error(tmp + "/model.safetensors: write failed: No space left on device");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), dir + "/out/model.safetensors: write failed: No space left on device");
  EXPECT_FALSE(exists(seen_tmp));
  EXPECT_FALSE(exists(dir + "/out"));
}

}  // namespace
}  // namespace oss4
