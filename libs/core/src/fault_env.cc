#include "atrium/core/fault_env.h"

namespace atrium {
namespace {

class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(std::unique_ptr<WritableFile> base, FaultInjectionEnv& env)
      : base_(std::move(base)), env_(env) {}
  Status Append(std::string_view data) override {
    if (FaultInjectionEnv::Take(env_.fail_appends)) return Internal("injected append failure");
    return base_->Append(data);
  }
  Status Flush() override { return base_->Flush(); }
  Status Sync() override {
    if (FaultInjectionEnv::Take(env_.fail_syncs)) return Internal("injected sync failure");
    return base_->Sync();
  }
  Status SyncFlushed() override {
    if (FaultInjectionEnv::Take(env_.fail_syncs)) return Internal("injected sync failure");
    return base_->SyncFlushed();
  }
  Status Close() override { return base_->Close(); }

 private:
  std::unique_ptr<WritableFile> base_;
  FaultInjectionEnv& env_;
};

}  // namespace

bool FaultInjectionEnv::Take(std::atomic<int>& counter) {
  int v = counter.load();
  while (true) {
    if (v == 0) return false;
    if (v < 0) return true;
    if (counter.compare_exchange_weak(v, v - 1)) return true;
  }
}

int64_t FaultInjectionEnv::NowMicros() {
  int64_t fake = fake_now_micros.load();
  return fake != 0 ? fake : base_.NowMicros();
}

std::chrono::steady_clock::time_point FaultInjectionEnv::SteadyNow() {
  int64_t fake = fake_now_micros.load();
  if (fake == 0) return base_.SteadyNow();
  return std::chrono::steady_clock::time_point(std::chrono::microseconds(fake));
}

void FaultInjectionEnv::SleepFor(std::chrono::microseconds d) {
  if (fake_now_micros.load() != 0) {
    fake_now_micros += d.count();
    return;
  }
  base_.SleepFor(d);
}

Result<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(const std::string& p) {
  if (Take(fail_opens)) return Internal("injected open failure: " + p);
  ASSIGN_OR_RETURN(auto f, base_.NewWritableFile(p));
  return std::unique_ptr<WritableFile>(std::make_unique<FaultyWritableFile>(std::move(f), *this));
}

Result<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewAppendableFile(const std::string& p) {
  if (Take(fail_opens)) return Internal("injected open failure: " + p);
  ASSIGN_OR_RETURN(auto f, base_.NewAppendableFile(p));
  return std::unique_ptr<WritableFile>(std::make_unique<FaultyWritableFile>(std::move(f), *this));
}

Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  if (Take(fail_renames)) return Internal("injected rename failure: " + from);
  return base_.RenameFile(from, to);
}

Status FaultInjectionEnv::SyncDir(const std::string& dir) {
  if (Take(fail_syncs)) return Internal("injected dir sync failure: " + dir);
  return base_.SyncDir(dir);
}

}  // namespace atrium
