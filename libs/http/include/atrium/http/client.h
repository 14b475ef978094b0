// HttpClient: Atrium's outbound HTTP/1.1 client (upstream model providers, webhooks, relays).
//
// Asynchronous and callback based, with a blocking convenience (SendSync) for code that is not on
// a client thread. Features: a keep-alive connection pool per origin, TLS with certificate and
// hostname verification (system CA store by default) and SNI, per-request HTTP CONNECT and SOCKS5
// proxies, connect / read-inactivity / total timeouts, cancellation, streaming response bodies
// (chunks are handed over as they arrive, for SSE pass-through) and opt-in redirects.
//
// Beast and Asio stay out of this header (pimpl); see docs/http-client.md for a guide.
//
// Errors (as Status codes):
//   InvalidArgument   the URL, proxy URL or request is malformed (the message names the URL);
//   Unavailable       DNS failure, connection refused or reset, proxy refused, TLS failure
//                     (certificate verification failures say "verification failed");
//   DeadlineExceeded  connect, read (inactivity) or total timeout;
//   Cancelled         CancelToken::Cancel(), on_data returned false, or the client was destroyed;
//   ResourceExhausted the response body exceeds max_response_bytes, or too many redirects.
// HTTP error statuses (4xx, 5xx) are not errors: they come back as a ClientResponse.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/headers.h"

namespace atrium::http {

// Cancels the requests it is attached to (ClientRequest::cancel). One token may serve several
// requests. Thread-safe; Cancel() is idempotent and cannot be undone.
class CancelToken {
 public:
  using CallbackId = uint64_t;

  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Cancels every attached request that is still running: a pending connect, TLS handshake, read
  // or write stops, and the request completes with a Cancelled status.
  void Cancel();
  bool cancelled() const;

  // Low-level hook used by HttpClient: runs `fn` once when Cancel() is called. Returns 0 without
  // registering (and without running `fn`) when the token is already cancelled. Callbacks run on
  // the thread calling Cancel(), under the token's lock: they must be short and must not use the
  // token. After RemoveCallback(id) returns, the callback is not running and will not run.
  CallbackId AddCallback(std::function<void()> fn);
  void RemoveCallback(CallbackId id);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;                                               // guarded by mu_
  CallbackId next_id_ = 1;                                               // guarded by mu_
  std::vector<std::pair<CallbackId, std::function<void()>>> callbacks_;  // guarded by mu_
};

struct ClientRequest {
  std::string method = "GET";
  // Absolute http:// or https:// URL. User info (http://user:pass@host/) becomes a Basic
  // Authorization header unless the request sets one.
  std::string url;
  // Sent as given. Host and User-Agent are filled in when absent; Content-Length is computed.
  Headers headers;
  std::string body;

  // Optional proxy, empty for a direct connection:
  //   http://[user:pass@]host:port     CONNECT tunnel for https URLs, absolute-form requests for
  //                                    http URLs (credentials go in Proxy-Authorization: Basic);
  //   socks5://[user:pass@]host:port   SOCKS5, the client resolves the target host name;
  //   socks5h://[user:pass@]host:port  SOCKS5, the proxy resolves the target host name.
  std::string proxy;

  // Establishing a connection: DNS, TCP connect, proxy negotiation and TLS handshake together.
  std::chrono::milliseconds connect_timeout{10'000};
  // Longest wait for any single read or write on an established connection (inactivity).
  std::chrono::milliseconds read_timeout{30'000};
  // Whole request including redirects and retries; zero means no limit.
  std::chrono::milliseconds total_timeout{0};
  // Largest accumulated body; applies only when on_data is not set.
  size_t max_response_bytes = size_t{16} << 20;
  // Follows 301, 302, 303, 307 and 308 (at most kMaxRedirects) when true.
  bool follow_redirects = false;
  std::shared_ptr<CancelToken> cancel;

  // Streaming (optional). on_headers runs once with the final response's status and headers,
  // before any on_data. When on_data is set the body is handed over chunk by chunk as it arrives
  // and ClientResponse::body stays empty; returning false aborts the request (Cancelled). Both run
  // on a client thread and must not block.
  std::function<void(int status, const Headers& headers)> on_headers;
  std::function<bool(std::string_view chunk)> on_data;
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;  // empty when ClientRequest::on_data was set
};

struct ClientOptions {
  // Number of I/O threads. Each thread has its own connection pool.
  int threads = 1;
  // PEM file of extra trusted CAs, added to the system store.
  std::string ca_file;
  // Disables certificate and host name verification. Never in production.
  bool insecure_skip_verify = false;
  // Idle keep-alive connections kept per origin (scheme, host, port, proxy) and thread.
  size_t max_idle_per_origin = 8;
  // Idle connections older than this are closed.
  std::chrono::milliseconds idle_timeout{60'000};
  // Sent when the request has no User-Agent header; empty sends none.
  std::string user_agent = "atrium-http-client";
  // A request sent from an I/O thread of an Atrium http::Server (a handler, or a callback of this
  // client there) runs on that thread's event loop, with a connection pool of its own, instead of
  // on one of the client's threads: no thread switch on the way out or back (`done`, on_headers
  // and on_data run on that server thread). Requests from other threads use the client's
  // threads as usual. The server must be running or already shut down when the client is
  // destroyed, and the client must not be destroyed on one of the server's I/O threads.
  bool run_on_server_threads = false;
};

class HttpClient {
 public:
  static constexpr int kMaxRedirects = 5;

  struct Stats {
    uint64_t connections_opened = 0;  // new TCP connections (direct or to a proxy)
    uint64_t connections_reused = 0;  // requests sent on a pooled keep-alive connection
    uint64_t retries = 0;             // requests re-sent after a stale pooled connection failed
  };

  // Starts the I/O threads. An unreadable ca_file does not throw: every request then fails with
  // its error; use Create() to see the error up front.
  explicit HttpClient(ClientOptions options = {});
  // Like the constructor, but fails (InvalidArgument) when ca_file cannot be loaded.
  static Result<std::unique_ptr<HttpClient>> Create(ClientOptions options);

  // Cancels every request in flight (their `done` runs with Cancelled), closes pooled connections
  // and joins the I/O threads. Must not run on a client thread (from inside a callback).
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts `request`; `done` runs exactly once, on a client thread, with the response or the
  // error. Thread-safe; may be called from any thread, including from client callbacks.
  void Send(ClientRequest request, std::function<void(Result<ClientResponse>)> done);

  // Sends and waits. Must not be called on a client thread (it would deadlock): there it returns
  // an Internal error at once. Thread-safe otherwise.
  Result<ClientResponse> SendSync(ClientRequest request);

  // Counters since construction. Thread-safe.
  Stats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::http
