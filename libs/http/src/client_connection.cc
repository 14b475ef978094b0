#include "client_connection.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <cerrno>
#include <utility>
#include <vector>

namespace atrium::http::client_internal {
namespace {

namespace http = beast::http;
using asio::ip::tcp;
using std::chrono::milliseconds;

std::string Ms(milliseconds d) { return std::to_string(d.count()) + " ms"; }

std::string Bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// Resolves host:port before `deadline`. The timer cancels the resolver through `control`.
asio::awaitable<Result<tcp::resolver::results_type>> Resolve(
    std::string host, uint16_t port, std::shared_ptr<RequestControl> control, Limits limits,
    Clock::time_point deadline) {
  if (control->aborted) co_return Cancelled(control->abort_reason);
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  asio::steady_timer timer(executor);
  auto timed_out = std::make_shared<bool>(false);
  control->resolver = &resolver;
  timer.expires_at(deadline);
  timer.async_wait([control, timed_out](const beast::error_code& ec) {
    if (!ec && control->resolver != nullptr) {
      *timed_out = true;
      control->resolver->cancel();
    }
  });
  beast::error_code ec;
  auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                 asio::redirect_error(asio::use_awaitable, ec));
  control->resolver = nullptr;
  timer.cancel();
  if (control->aborted) co_return Cancelled(control->abort_reason);
  if (*timed_out) {
    co_return limits.TimeoutError("resolving " + host, limits.connect_timeout, deadline);
  }
  if (ec) co_return Unavailable("cannot resolve host '" + host + "': " + ec.message());
  if (results.empty()) co_return Unavailable("host '" + host + "' has no addresses");
  co_return results;
}

// HTTP CONNECT handshake with the proxy on `connection`, tunnelling to `target`.
asio::awaitable<Status> HttpConnectTunnel(Connection* connection, TargetUrl target, ProxySpec proxy,
                                          std::shared_ptr<RequestControl> control, Limits limits,
                                          Clock::time_point deadline) {
  beast::tcp_stream& stream = connection->tcp();
  http::request<http::empty_body> req{http::verb::connect, target.Authority(), 11};
  req.set(http::field::host, target.Authority());
  if (proxy.has_credentials) {
    req.set(http::field::proxy_authorization,
            "Basic " + Base64Encode(proxy.user + ":" + proxy.password));
  }
  beast::error_code ec;
  stream.expires_at(deadline);
  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) {
    co_return OperationError(ec, *control, limits, limits.connect_timeout, deadline,
                             "sending CONNECT to proxy");
  }
  http::response_parser<http::empty_body> parser;
  parser.skip(true);  // a 2xx answer to CONNECT has no body, whatever its headers say
  stream.expires_at(deadline);
  co_await http::async_read_header(stream, connection->buffer(), parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) {
    co_return OperationError(ec, *control, limits, limits.connect_timeout, deadline,
                             "reading the proxy's CONNECT response");
  }
  unsigned status = parser.get().result_int();
  if (status / 100 != 2) {
    co_return Unavailable("proxy refused CONNECT to " + target.Authority() + ": " +
                          std::to_string(status) + " " + std::string(parser.get().reason()));
  }
  if (connection->buffer().size() != 0) {
    co_return Unavailable("proxy sent data before the CONNECT tunnel was established");
  }
  co_return Status();
}

// SOCKS5 (RFC 1928, RFC 1929) negotiation on `connection`.
asio::awaitable<Status> Socks5Handshake(Connection* connection, TargetUrl target, ProxySpec proxy,
                                        std::shared_ptr<RequestControl> control, Limits limits,
                                        Clock::time_point deadline) {
  beast::tcp_stream& stream = connection->tcp();
  beast::error_code ec;
  auto fail = [&](std::string_view what) {
    return OperationError(ec, *control, limits, limits.connect_timeout, deadline, what);
  };

  // The address to ask for: a name (socks5h) or an address resolved here (socks5).
  std::vector<uint8_t> address;  // ATYP followed by the address
  boost::system::error_code parse_ec;
  auto literal = asio::ip::make_address(target.host, parse_ec);
  if (parse_ec && proxy.kind == ProxyKind::kSocks5) {
    auto resolved = co_await Resolve(target.host, target.port, control, limits, deadline);
    if (!resolved.ok()) co_return resolved.status();
    literal = resolved->begin()->endpoint().address();
    parse_ec = {};
  }
  if (!parse_ec && literal.is_v4()) {
    address.push_back(0x01);
    for (uint8_t b : literal.to_v4().to_bytes()) address.push_back(b);
  } else if (!parse_ec) {
    address.push_back(0x04);
    for (uint8_t b : literal.to_v6().to_bytes()) address.push_back(b);
  } else {
    if (target.host.size() > 255) co_return InvalidArgument("host name too long for SOCKS5");
    address.push_back(0x03);
    address.push_back(static_cast<uint8_t>(target.host.size()));
    address.insert(address.end(), target.host.begin(), target.host.end());
  }

  std::vector<uint8_t> greeting = {0x05, 0x01, 0x00};
  if (proxy.has_credentials) greeting = {0x05, 0x02, 0x00, 0x02};
  stream.expires_at(deadline);
  co_await asio::async_write(stream, asio::buffer(greeting),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) co_return fail("SOCKS5 greeting");
  std::array<uint8_t, 2> choice{};
  stream.expires_at(deadline);
  co_await asio::async_read(stream, asio::buffer(choice),
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) co_return fail("SOCKS5 method selection");
  if (choice[0] != 0x05) co_return Unavailable("SOCKS5 proxy answered with a bad version");
  if (choice[1] == 0x02 && proxy.has_credentials) {
    if (proxy.user.size() > 255 || proxy.password.size() > 255) {
      co_return InvalidArgument("SOCKS5 user name or password longer than 255 bytes");
    }
    std::vector<uint8_t> auth = {0x01, static_cast<uint8_t>(proxy.user.size())};
    auth.insert(auth.end(), proxy.user.begin(), proxy.user.end());
    auth.push_back(static_cast<uint8_t>(proxy.password.size()));
    auth.insert(auth.end(), proxy.password.begin(), proxy.password.end());
    stream.expires_at(deadline);
    co_await asio::async_write(stream, asio::buffer(auth),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec || control->aborted) co_return fail("SOCKS5 authentication");
    std::array<uint8_t, 2> verdict{};
    stream.expires_at(deadline);
    co_await asio::async_read(stream, asio::buffer(verdict),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec || control->aborted) co_return fail("SOCKS5 authentication");
    if (verdict[1] != 0x00) co_return Unavailable("SOCKS5 proxy rejected the credentials");
  } else if (choice[1] != 0x00) {
    co_return Unavailable(proxy.has_credentials
                              ? "SOCKS5 proxy accepts none of our authentication methods"
                              : "SOCKS5 proxy requires authentication");
  }

  std::vector<uint8_t> request = {0x05, 0x01, 0x00};
  request.insert(request.end(), address.begin(), address.end());
  request.push_back(static_cast<uint8_t>(target.port >> 8));
  request.push_back(static_cast<uint8_t>(target.port & 0xff));
  stream.expires_at(deadline);
  co_await asio::async_write(stream, asio::buffer(request),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) co_return fail("SOCKS5 connect request");
  std::array<uint8_t, 5> head{};  // VER REP RSV ATYP and the first address byte
  stream.expires_at(deadline);
  co_await asio::async_read(stream, asio::buffer(head),
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) co_return fail("SOCKS5 connect reply");
  if (head[0] != 0x05) co_return Unavailable("SOCKS5 proxy answered with a bad version");
  if (head[1] != 0x00) {
    static constexpr const char* kReplies[] = {
        "succeeded",           "general failure",       "connection not allowed by ruleset",
        "network unreachable", "host unreachable",      "connection refused",
        "TTL expired",         "command not supported", "address type not supported"};
    std::string why = head[1] < 9 ? kReplies[head[1]] : "error " + std::to_string(head[1]);
    co_return Unavailable("SOCKS5 proxy could not connect to " + target.Authority() + ": " + why);
  }
  size_t rest = 0;  // remaining address bytes plus the port
  switch (head[3]) {
    case 0x01:
      rest = 4 - 1 + 2;
      break;
    case 0x04:
      rest = 16 - 1 + 2;
      break;
    case 0x03:
      rest = size_t{head[4]} + 2;
      break;
    default:
      co_return Unavailable("SOCKS5 proxy answered with a bad address type");
  }
  std::vector<uint8_t> tail(rest);
  stream.expires_at(deadline);
  co_await asio::async_read(stream, asio::buffer(tail),
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) co_return fail("SOCKS5 connect reply");
  co_return Status();
}

asio::awaitable<Status> TlsHandshake(Connection* connection, TargetUrl target,
                                     asio::ssl::context* context, bool insecure,
                                     std::shared_ptr<RequestControl> control, Limits limits,
                                     Clock::time_point deadline) {
  connection->StartTls(*context);
  TlsStream& stream = connection->tls();
  if (!IsIpLiteral(target.host) &&
      SSL_set_tlsext_host_name(stream.native_handle(), target.host.c_str()) != 1) {
    co_return Unavailable("cannot set TLS SNI host name '" + target.host + "'");
  }
  auto verify_error = std::make_shared<std::string>();
  if (insecure) {
    stream.set_verify_mode(asio::ssl::verify_none);
  } else {
    stream.set_verify_mode(asio::ssl::verify_peer);
    stream.set_verify_callback(
        [host = target.host, verify_error](bool preverified, asio::ssl::verify_context& vc) {
          bool ok = asio::ssl::host_name_verification(host)(preverified, vc);
          if (!ok && verify_error->empty()) {
            int err = X509_STORE_CTX_get_error(vc.native_handle());
            if (!preverified && err != X509_V_OK) {
              *verify_error = X509_verify_cert_error_string(err);
            } else {
              *verify_error = "certificate does not match host '" + host + "'";
            }
          }
          return ok;
        });
  }
  beast::error_code ec;
  connection->tcp().expires_at(deadline);
  co_await stream.async_handshake(asio::ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && !control->aborted) co_return Status();
  if (!control->aborted && ec != beast::error::timeout) {
    long result = SSL_get_verify_result(stream.native_handle());
    if (!verify_error->empty() || result != X509_V_OK) {
      std::string why =
          !verify_error->empty() ? *verify_error : X509_verify_cert_error_string(result);
      co_return Unavailable("TLS certificate verification failed for '" + target.host +
                            "': " + why);
    }
  }
  co_return OperationError(ec, *control, limits, limits.connect_timeout, deadline,
                           "TLS handshake with " + target.Authority());
}

}  // namespace

Connection::Connection(std::string pool_key, const asio::any_io_executor& executor)
    : pool_key_(std::move(pool_key)),
      plain_(std::make_unique<beast::tcp_stream>(executor)),
      read_deadline_(executor, [this] {
        beast::error_code ignored;
        tcp().socket().cancel(ignored);
      }) {}

beast::tcp_stream& Connection::tcp() { return tls_ ? tls_->next_layer() : *plain_; }

void Connection::StartTls(asio::ssl::context& context) {
  tls_ = std::make_unique<TlsStream>(std::move(*plain_), context);
  plain_.reset();
}

void Connection::Cancel() { tcp().cancel(); }

void Connection::Close() {
  beast::error_code ignored;
  tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
  tcp().close();
}

bool Connection::LooksReusable() {
  if (!tcp().socket().is_open() || buffer_.size() != 0) return false;
  char byte;
  ssize_t n = ::recv(tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  // 0: orderly close; >0: unsolicited bytes (e.g. a TLS close_notify); error other than
  // "would block": reset.
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void RequestControl::Abort(std::string reason) {
  if (aborted) return;
  aborted = true;
  abort_reason = std::move(reason);
  if (resolver != nullptr) resolver->cancel();
  if (connection != nullptr) connection->Cancel();
}

Clock::time_point Limits::OpDeadline(milliseconds op) const {
  Clock::time_point op_deadline = op.count() > 0 ? Clock::now() + op : Clock::time_point::max();
  return std::min(op_deadline, total_deadline);
}

Status Limits::TimeoutError(std::string_view what, milliseconds op,
                            Clock::time_point deadline) const {
  if (deadline == total_deadline) {
    return DeadlineExceeded("total timeout of " + Ms(total_timeout) + " exceeded while " +
                            std::string(what));
  }
  return DeadlineExceeded(std::string(what) + " timed out after " + Ms(op));
}

Status OperationError(const beast::error_code& ec, const RequestControl& control,
                      const Limits& limits, milliseconds op_timeout, Clock::time_point deadline,
                      std::string_view what) {
  if (control.aborted) return Cancelled(control.abort_reason);
  if (ec == beast::error::timeout) return limits.TimeoutError(what, op_timeout, deadline);
  return Unavailable(std::string(what) + " failed: " + ec.message());
}

asio::awaitable<Result<std::unique_ptr<Connection>>> Connect(
    ConnectParams params, std::shared_ptr<RequestControl> control,
    std::function<void()> on_tcp_connected) {
  const Limits& limits = params.limits;
  Clock::time_point deadline = limits.OpDeadline(limits.connect_timeout);
  bool via_proxy = params.proxy.kind != ProxyKind::kNone;
  std::string dial_host = via_proxy ? params.proxy.host : params.target.host;
  uint16_t dial_port = via_proxy ? params.proxy.port : params.target.port;
  std::string dial = Bracketed(dial_host) + ":" + std::to_string(dial_port);

  auto endpoints = co_await Resolve(dial_host, dial_port, control, limits, deadline);
  if (!endpoints.ok()) co_return endpoints.status();

  auto connection =
      std::make_unique<Connection>(params.pool_key, co_await asio::this_coro::executor);
  control->connection = connection.get();
  beast::error_code ec;
  connection->tcp().expires_at(deadline);
  co_await connection->tcp().async_connect(*endpoints,
                                           asio::redirect_error(asio::use_awaitable, ec));
  if (ec || control->aborted) {
    control->connection = nullptr;
    co_return OperationError(
        ec, *control, limits, limits.connect_timeout, deadline,
        std::string(via_proxy ? "connecting to proxy " : "connecting to ") + dial);
  }
  if (on_tcp_connected) on_tcp_connected();
  connection->tcp().socket().set_option(tcp::no_delay(true), ec);

  Status status;
  if (params.proxy.kind == ProxyKind::kHttp && params.target.tls) {
    status = co_await HttpConnectTunnel(connection.get(), params.target, params.proxy, control,
                                        limits, deadline);
  } else if (params.proxy.kind == ProxyKind::kSocks5 || params.proxy.kind == ProxyKind::kSocks5h) {
    status = co_await Socks5Handshake(connection.get(), params.target, params.proxy, control,
                                      limits, deadline);
  }
  if (status.ok() && params.target.tls) {
    status = co_await TlsHandshake(connection.get(), params.target, params.ssl_context,
                                   params.insecure_skip_verify, control, limits, deadline);
  }
  if (status.ok() && control->aborted) status = Cancelled(control->abort_reason);
  if (!status.ok()) {
    control->connection = nullptr;
    co_return status;
  }
  co_return connection;
}

}  // namespace atrium::http::client_internal
