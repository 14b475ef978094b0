// Env: the one door from Atrium to the operating system (clock, files, randomness).
//
// Every module that touches the clock, the filesystem or randomness takes an `Env&` so tests can
// substitute a fake clock, a fault-injecting filesystem or a seeded random source. Env::Default()
// is the POSIX implementation. Implementations must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"

namespace atrium {

// A file opened for sequential writing. Not thread-safe.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // Pushes buffered data to the OS.
  virtual Status Flush() = 0;
  // Flush + fdatasync: the data is durable when this returns ok.
  virtual Status Sync() = 0;
  // fdatasync only: what earlier Flush() calls pushed to the OS is durable when this returns ok.
  // Unlike the other methods it may run on one thread while another appends and flushes (a WAL
  // syncs one batch while it writes the next); it never touches the file's buffer.
  virtual Status SyncFlushed() = 0;
  virtual Status Close() = 0;
};

// A file opened for sequential reading. Not thread-safe.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to n bytes into *out (replacing its content); an empty result means end of file.
  virtual Status Read(size_t n, std::string* out) = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX Env. Never destroyed.
  static Env& Default();

  // --- clock ---
  // Wall-clock time (for timestamps shown to users), microseconds since the Unix epoch.
  virtual int64_t NowMicros() = 0;
  // Monotonic time (for timeouts and latency).
  virtual std::chrono::steady_clock::time_point SteadyNow() = 0;
  virtual void SleepFor(std::chrono::microseconds d) = 0;

  // --- filesystem ---
  // Creates or truncates `path`.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens `path` for appending, creating it if missing.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, unsorted, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // Creates `dir` and missing parents with the given mode; ok if it exists already.
  virtual Status CreateDirs(const std::string& dir, uint32_t mode = 0755) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Atomically replaces `to` with `from` (same filesystem).
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status TruncateFile(const std::string& path, uint64_t size) = 0;
  // fsync of a directory, so created/renamed/removed entries in it are durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Status SetPermissions(const std::string& path, uint32_t mode) = 0;

  // --- randomness ---
  // Cryptographically secure random bytes.
  virtual void RandomBytes(void* buf, size_t n) = 0;
  uint64_t RandomU64();
};

// Writes `data` to `path` durably: temp file in the same directory, fsync, rename, fsync dir.
Status WriteFileAtomic(Env& env, const std::string& path, std::string_view data);

// Joins path components with '/'.
std::string JoinPath(std::string_view a, std::string_view b);
// The directory part of `path` ("." when none).
std::string DirName(std::string_view path);

}  // namespace atrium
