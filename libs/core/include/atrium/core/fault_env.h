// FaultInjectionEnv: an Env for tests that forwards to a real Env and fails chosen operations.
//
// Tests arm a fault ("the next 1 write fails", "every sync fails") and check that the code
// under test reports the error and loses nothing. Thread-safe.
#pragma once

#include <atomic>

#include "atrium/core/env.h"

namespace atrium {

class FaultInjectionEnv : public Env {
 public:
  explicit FaultInjectionEnv(Env& base) : base_(base) {}

  // Each counter: the number of upcoming operations of that kind that fail (-1 = all).
  std::atomic<int> fail_appends{0};
  std::atomic<int> fail_syncs{0};
  std::atomic<int> fail_renames{0};
  std::atomic<int> fail_opens{0};
  // Fake clock: when non-zero, NowMicros returns it and SteadyNow is derived from it.
  std::atomic<int64_t> fake_now_micros{0};

  void AdvanceMicros(int64_t d) { fake_now_micros += d; }

  int64_t NowMicros() override;
  std::chrono::steady_clock::time_point SteadyNow() override;
  void SleepFor(std::chrono::microseconds d) override;
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return base_.NewSequentialFile(path);
  }
  Result<std::string> ReadFile(const std::string& path) override { return base_.ReadFile(path); }
  bool FileExists(const std::string& path) override { return base_.FileExists(path); }
  Result<uint64_t> FileSize(const std::string& path) override { return base_.FileSize(path); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    return base_.ListDir(dir);
  }
  Status CreateDirs(const std::string& dir, uint32_t mode) override {
    return base_.CreateDirs(dir, mode);
  }
  Status RemoveFile(const std::string& path) override { return base_.RemoveFile(path); }
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status TruncateFile(const std::string& path, uint64_t size) override {
    return base_.TruncateFile(path, size);
  }
  Status SyncDir(const std::string& dir) override;
  Status SetPermissions(const std::string& path, uint32_t mode) override {
    return base_.SetPermissions(path, mode);
  }
  void RandomBytes(void* buf, size_t n) override { base_.RandomBytes(buf, n); }

  // Consumes one unit of `counter`; true when the operation must fail.
  static bool Take(std::atomic<int>& counter);

 private:
  Env& base_;
};

}  // namespace atrium
