// Server: Atrium's HTTP/1.1 server (Boost.Beast + Asio, C++20 coroutines).
//
// One io_context run by N threads; one coroutine and one strand per connection; keep-alive and
// pipelining (requests on a connection are answered in order). Every read and write has a timeout;
// every parser has header and body limits; over-limit requests get 413/431/503 JSON errors. Each
// request passes through the middleware chain (request id and panic guard always first, then the
// registered middleware in order), then its route's handler, inline on the I/O thread or on the
// blocking pool (RouteOptions::blocking). Exceptions in handlers and middleware become 500s.
//
// Shutdown() is graceful: the listener closes, idle connections close, in-flight requests finish
// (up to `shutdown_grace`), streaming responses get their shutdown chunk and end, then the
// threads stop. Thread-safe: Start/Shutdown may be called from any thread (not from a handler).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/handler.h"
#include "atrium/http/router.h"

namespace spdlog {
class logger;
}

namespace atrium {
class MetricsRegistry;
}

namespace atrium::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 = any free port; see Server::port()
  int io_threads = 0;    // 0 = number of cores
  int blocking_threads = 4;
  size_t max_header_bytes = 64 * 1024;
  size_t max_body_bytes = 2 * 1024 * 1024;
  size_t max_connections = 10000;
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for the next request
  std::chrono::milliseconds header_timeout{10000};  // whole header, from its first byte
  std::chrono::milliseconds body_timeout{60000};    // whole body
  std::chrono::milliseconds write_timeout{60000};   // each response write
  std::chrono::milliseconds shutdown_grace{10000};
  // Trust x-request-id from clients when it is 1..128 chars of [A-Za-z0-9._-].
  bool trust_request_id = true;
};

// A step of the request pipeline. Implementations must be thread-safe.
class Middleware {
 public:
  virtual ~Middleware() = default;
  // Runs before routing's outcome is acted on (req.route is null for 404/405) and before the
  // handler, in registration order. Returning a response stops the chain: later middleware and
  // the handler do not run.
  virtual std::optional<Response> OnRequest(Request& request) { return std::nullopt; }
  // Runs for every response of a request that entered OnRequest, in reverse order.
  virtual void OnResponse(const Request& request, Response& response) {}
};

struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_rejected = 0;  // over max_connections
  uint64_t requests = 0;
  int64_t open_connections = 0;
  int64_t open_streams = 0;
};

class Server {
 public:
  // `logger` and `metrics` may be null (then nothing is logged / recorded).
  Server(ServerOptions options, Router router, std::shared_ptr<spdlog::logger> logger = nullptr,
         MetricsRegistry* metrics = nullptr);
  ~Server();  // calls Shutdown()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Adds a middleware; only before Start().
  void Use(std::shared_ptr<Middleware> middleware);

  // Binds and starts serving. Errors: address in use, bad host.
  Status Start();
  // The bound port (useful with port 0). Valid after Start.
  uint16_t port() const;
  std::string host() const;

  // Shuts down on SIGINT/SIGTERM (installs handlers on the server's io_context).
  void ShutdownOnSignals();
  // Graceful shutdown; blocks until all connections closed and threads joined. Idempotent.
  void Shutdown();
  // Blocks until the server has shut down (by Shutdown or a signal).
  void Wait();

  ServerStats stats() const;
  const Router& router() const;

  class State;  // private implementation

 private:
  std::shared_ptr<State> state_;
};

// Handler helpers for common routes.
// 200 {"status":"ok"}: for liveness.
Response OkJson();

}  // namespace atrium::http
