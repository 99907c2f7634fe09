// Writers on a full disk and after kill -9 (issue 19): `synth`, `quantize` and `logits` into a small tmpfs fail
// with one error line naming the output and leave nothing behind; a writer killed with SIGKILL leaves its
// temporary, which the next writing command removes, saying so. Mounting needs root (CAP_SYS_ADMIN): without it
// the disk-full tests skip with the reason.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "cli_runner.h"

namespace oss4 {
namespace {

// the entries of a folder
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  return out;
}

class DiskFull : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::make_temp_dir();
    mnt_ = dir_ + "/small";
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0755), 0);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=4m") != 0) {
      GTEST_SKIP() << "cannot mount a 4 MiB tmpfs at " << mnt_ << " (" << std::strerror(errno) << "; needs root)";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  // the model the commands read (on the ordinary disk)
  const std::string& model() {
    if (model_.empty()) {
      model_ = dir_ + "/m";
      EXPECT_EQ(test::run_oss4("synth --config tiny --out " + model_).code, 0);
    }
    return model_;
  }
  std::string dir_, mnt_, model_;
  bool mounted_ = false;
};

TEST_F(DiskFull, SynthFailsWithOneLineAndNoOutput) {
  test::CmdResult r = test::run_oss4("synth --config tiny --out " + mnt_ + "/tiny");
  test::expect_clean_error(r, mnt_ + "/tiny/model.safetensors: write failed: No space left on device");
  EXPECT_TRUE(entries(mnt_).empty()) << r.err;
}

TEST_F(DiskFull, QuantizeFailsWithOneLineAndNoOutput) {
  test::CmdResult r = test::run_oss4("quantize -m " + model() + " -o " + mnt_ + "/q --method transcode");
  test::expect_clean_error(r, mnt_ + "/q/");
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("oss4-tmp"), std::string::npos) << "names the output, not the temporary: " << r.err;
  EXPECT_TRUE(entries(mnt_).empty()) << r.err;
  EXPECT_TRUE(std::filesystem::exists(model() + "/model.safetensors"));
}

TEST_F(DiskFull, LogitsFailsWithOneLineAndNoOutput) {
  // 201,088 float32 logits a position: 8 positions are 6.4 MB, more than the 4 MiB disk
  test::CmdResult r = test::run_oss4("logits -m " + model() + " --ids 1,2,3,4,5,6,7,8 --out " + mnt_ + "/l.npy");
  test::expect_clean_error(r, mnt_ + "/l.npy: write failed: No space left on device");
  EXPECT_TRUE(entries(mnt_).empty()) << r.err;
}

// SIGKILL in the middle of a write leaves dir/out.oss4-tmp.<pid>; the next writer in that folder removes it.
TEST(KilledWriter, NextRunRemovesItsTemporary) {
  const std::string dir = test::make_temp_dir();
  const pid_t pid = fork();
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    dup2(null_fd, 2);
    const std::string out = dir + "/a";
    execl(OSS4_BIN, OSS4_BIN, "synth", "--config", "tiny", "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string tmp = dir + "/a.oss4-tmp." + std::to_string(pid);
  // kill it as soon as its temporary folder holds a file (the writer is inside it)
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (entries(tmp).empty() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::microseconds(200));
  ::kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the writer finished before it could be killed";
  ASSERT_TRUE(std::filesystem::exists(tmp));
  EXPECT_FALSE(std::filesystem::exists(dir + "/a"));

  test::CmdResult r = test::run_oss4("synth --config tiny --out " + dir + "/b");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("removed " + tmp + ", left by process " + std::to_string(pid) + " that is no longer running"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp));
  EXPECT_TRUE(std::filesystem::exists(dir + "/b/model.safetensors"));
}

}  // namespace
}  // namespace oss4
