// Connections of HttpClient (private): establishing them (DNS, TCP, HTTP CONNECT and SOCKS5
// proxies, TLS) and the per-request state used to cancel whatever is in progress.
//
// Everything here runs on the one I/O thread that owns the request; nothing is thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "atrium/core/status.h"
#include "client_url.h"
#include "read_deadline.h"

namespace atrium::http::client_internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One HTTP/1.1 connection, plain or TLS (possibly through a proxy). Owned by one request at a
// time, or by the pool while idle.
class Connection {
 public:
  Connection(std::string pool_key, const asio::any_io_executor& executor);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& pool_key() const { return pool_key_; }
  bool is_tls() const { return tls_ != nullptr; }
  // The TCP layer (under TLS when is_tls()).
  beast::tcp_stream& tcp();
  TlsStream& tls() { return *tls_; }
  // Wraps the connected TCP stream in TLS (before the handshake).
  void StartTls(asio::ssl::context& context);
  // Bytes read past the end of the last message; must be empty for reuse.
  beast::flat_buffer& buffer() { return buffer_; }
  // The deadline of the response's reads (its expiry cancels the socket), so that they need no
  // timer each: reads go to the socket (or the TLS stream) with tcp()'s expiry left at never.
  internal::ReadDeadline& read_deadline() { return read_deadline_; }

  // Cancels pending operations (they complete with operation_aborted).
  void Cancel();
  void Close();
  // False when the peer has closed, reset or sent unsolicited bytes while idle. Non-blocking.
  bool LooksReusable();

  Clock::time_point idle_since;

 private:
  std::string pool_key_;
  std::unique_ptr<beast::tcp_stream> plain_;  // set until StartTls()
  std::unique_ptr<TlsStream> tls_;
  beast::flat_buffer buffer_;
  internal::ReadDeadline read_deadline_;  // after the streams: destroyed before them
};

// What a request is doing right now, so that Cancel() and shutdown can interrupt it.
struct RequestControl {
  bool aborted = false;
  std::string abort_reason;
  asio::ip::tcp::resolver* resolver = nullptr;  // while resolving
  Connection* connection = nullptr;             // while connecting or exchanging

  void Abort(std::string reason);
};

// Time limits of one request.
struct Limits {
  std::chrono::milliseconds connect_timeout{0};
  std::chrono::milliseconds read_timeout{0};
  std::chrono::milliseconds total_timeout{0};
  Clock::time_point total_deadline = Clock::time_point::max();

  // The deadline for an operation limited by `op` and by the total deadline.
  Clock::time_point OpDeadline(std::chrono::milliseconds op) const;
  // The error for a timed-out operation whose own limit was `op` and deadline `deadline`.
  Status TimeoutError(std::string_view what, std::chrono::milliseconds op,
                      Clock::time_point deadline) const;
};

// The error for a failed operation: Cancelled when the request was aborted, DeadlineExceeded on
// timeout (`deadline` was the operation's), Unavailable otherwise.
Status OperationError(const beast::error_code& ec, const RequestControl& control,
                      const Limits& limits, std::chrono::milliseconds op_timeout,
                      Clock::time_point deadline, std::string_view what);

struct ConnectParams {
  std::string pool_key;
  TargetUrl target;
  ProxySpec proxy;
  Limits limits;
  asio::ssl::context* ssl_context = nullptr;  // required for https targets
  bool insecure_skip_verify = false;
};

// Opens a connection ready for HTTP requests to params.target. `on_tcp_connected` counts.
asio::awaitable<Result<std::unique_ptr<Connection>>> Connect(
    ConnectParams params, std::shared_ptr<RequestControl> control,
    std::function<void()> on_tcp_connected);

}  // namespace atrium::http::client_internal
