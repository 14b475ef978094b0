#include "atrium/core/env.h"

#include <gtest/gtest.h>

#include <thread>

#include "atrium/core/fault_env.h"
#include "atrium/core/testing.h"
#include "atrium/core/thread_name.h"

namespace atrium {
namespace {

TEST(ThreadNameTest, NamesTheCallingThreadAndCutsLongNames) {
  std::string short_name, long_name;
  std::thread t([&] {
    SetThreadName("bus-wal-write");
    short_name = ThreadName();
    SetThreadName("a-name-longer-than-fifteen-bytes");
    long_name = ThreadName();
  });
  t.join();
  EXPECT_EQ(short_name, "bus-wal-write");
  EXPECT_EQ(long_name, "a-name-longer-t");
}

TEST(EnvTest, WriteFileAtomicReplacesContent) {
  testing::TempDir dir;
  Env& env = Env::Default();
  std::string path = JoinPath(dir.path(), "f.txt");
  ASSERT_TRUE(WriteFileAtomic(env, path, "one").ok());
  ASSERT_TRUE(WriteFileAtomic(env, path, "two").ok());
  EXPECT_EQ(*env.ReadFile(path), "two");
}

TEST(EnvTest, CreateDirsMakesParents) {
  testing::TempDir dir;
  Env& env = Env::Default();
  std::string deep = JoinPath(dir.path(), "a/b/c");
  ASSERT_TRUE(env.CreateDirs(deep, 0700).ok());
  EXPECT_TRUE(env.FileExists(deep));
  EXPECT_TRUE(env.CreateDirs(deep, 0700).ok());
}

TEST(EnvTest, MissingFileIsNotFound) {
  EXPECT_EQ(Env::Default().ReadFile("/nonexistent/x").status().code(), StatusCode::kNotFound);
}

TEST(FaultInjectionEnvTest, FailedSyncLeavesOldContentAndNoTempFile) {
  testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::string path = JoinPath(dir.path(), "f.txt");
  ASSERT_TRUE(WriteFileAtomic(env, path, "old").ok());
  env.fail_syncs = 1;
  EXPECT_FALSE(WriteFileAtomic(env, path, "new").ok());
  EXPECT_EQ(*env.ReadFile(path), "old");
  EXPECT_EQ(env.ListDir(dir.path())->size(), 1u);
}

TEST(FaultInjectionEnvTest, FakeClockAdvances) {
  FaultInjectionEnv env(Env::Default());
  env.fake_now_micros = 1000;
  env.SleepFor(std::chrono::microseconds(500));
  EXPECT_EQ(env.NowMicros(), 1500);
}

TEST(PathTest, DirNameAndJoin) {
  EXPECT_EQ(DirName("/a/b/c"), "/a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
  EXPECT_EQ(JoinPath("/a/", "b"), "/a/b");
  EXPECT_EQ(JoinPath("/a", "b"), "/a/b");
}

}  // namespace
}  // namespace atrium
