// RedisClient: a small synchronous Redis client (hiredis) with a connection pool, for the shared
// state of scale-out deployments: rate-limit buckets, token revocation, caches, sticky sessions.
//
// Commands are argument vectors (binary-safe, never string-built). Scripts run with EVALSHA and
// fall back to EVAL when the server does not know them yet. A connection that fails is dropped
// and a new one is opened on the next command; errors are Unavailable (server unreachable or
// timed out) or Internal (the server answered with an error). Thread-safe: each command borrows
// a pooled connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::store {

struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;                   // kString and kStatus
  std::vector<RedisReply> elements;  // kArray
};

struct RedisOptions {
  std::string url;  // redis://[:password@]host:port[/db]
  int pool_size = 4;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{2000};
};

class RedisClient {
 public:
  // Parses the URL and opens one connection to check it (Unavailable when the server is down).
  static Result<std::unique_ptr<RedisClient>> Connect(RedisOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  Result<RedisReply> Command(const std::vector<std::string>& args);
  // Runs a Lua script by its SHA-1 (EVALSHA), loading it on NOSCRIPT.
  Result<RedisReply> Eval(std::string_view script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args);
  Status Ping();

  struct Conn;  // opaque hiredis connection

 private:
  explicit RedisClient(RedisOptions options);
  Result<std::unique_ptr<Conn>> Open();
  Result<RedisReply> Run(const std::vector<std::string>& args);

  RedisOptions options_;
  std::string host_;
  int port_ = 6379;
  std::string password_;
  int db_ = 0;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;  // guarded by mu_
};

}  // namespace atrium::store
