#include "atrium/http/server.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "atrium/core/log.h"
#include "atrium/core/metrics.h"
#include "atrium/core/thread_name.h"
#include "atrium/http/body_stream.h"
#include "atrium/http/json_error.h"
#include "io_thread.h"
#include "message_parser.h"
#include "read_deadline.h"
#include "reply_slot.h"
#include "wire.h"

namespace atrium::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);
using namespace boost::asio::experimental::awaitable_operators;  // || for a stream and its watch

namespace {

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t v = rng();
  std::string id(16, '0');
  for (int i = 0; i < 16; ++i) id[i] = kHex[(v >> (i * 4)) & 0xF];
  return id;
}

bool AcceptableRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

int IoThreads(const ServerOptions& o) {
  return o.io_threads > 0 ? o.io_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Connection state shared by the session coroutine, the disconnect reader and shutdown.
struct Conn {
  explicit Conn(tcp::socket socket)
      : stream(std::move(socket)), idle_deadline(stream.get_executor(), [this] {
          boost::system::error_code ec;
          stream.socket().cancel(ec);
        }) {}
  beast::tcp_stream stream;
  // The wait for a request's first byte (idle or header timeout), without a timer per request.
  internal::ReadDeadline idle_deadline;
  bool idle = false;                 // waiting for the first byte of a request (its thread only)
  std::shared_ptr<BodyStream> body;  // streaming response in progress (its thread only)
  std::string remote;
};

}  // namespace

class Server::State : public std::enable_shared_from_this<Server::State> {
 public:
  State(ServerOptions options, Router router, std::shared_ptr<spdlog::logger> logger,
        MetricsRegistry* metrics)
      : options_(std::move(options)),
        router_(std::move(router)),
        logger_(std::move(logger)),
        iocs_(MakeContexts(IoThreads(options_))),
        acceptor_(std::make_unique<tcp::acceptor>(*iocs_[0])),
        pool_(std::max(1, options_.blocking_threads)) {
    if (metrics != nullptr) {
      requests_total_ =
          &metrics->Counter("http_requests_total", "HTTP requests by route and status",
                            {"method", "route", "status"});
      request_seconds_ =
          &metrics->Histogram("http_request_duration_seconds", "HTTP request latency by route",
                              {"method", "route"}, DefaultLatencyBuckets());
      // Resolve each route's series once; Record then needs no lock for the common statuses.
      for (const Route* r : router_.routes()) {
        auto m = std::make_unique<RouteMetrics>();
        m->latency = &request_seconds_->WithLabels({r->method, r->pattern});
        route_metrics_.emplace(r, std::move(m));
      }
      open_connections_gauge_ =
          &metrics->Gauge("http_open_connections", "Open HTTP connections").Get();
      open_streams_gauge_ =
          &metrics->Gauge("http_open_streams", "Open streaming HTTP responses").Get();
    }
  }

  Status Start() {
    boost::system::error_code ec;
    auto addr = net::ip::make_address(options_.host, ec);
    if (ec) return InvalidArgument("http.host: invalid address '" + options_.host + "'");
    tcp::endpoint ep(addr, options_.port);
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                         ": " + ec.message());
    }
    port_ = acceptor_->local_endpoint().port();
    net::co_spawn(acceptor_->get_executor(), Accept(shared_from_this()), net::detached);
    for (auto& ioc : iocs_) {
      // Keeps run() going on contexts that have no connection yet.
      work_.push_back(net::make_work_guard(*ioc));
      threads_.emplace_back([this, ctx = ioc.get(), n = threads_.size()] {
        SetThreadName("http-io-" + std::to_string(n));
        RunIo(*ctx);
      });
    }
    started_ = true;
    return Status::Ok();
  }

  // One io_context per I/O thread: a connection lives on one thread for its whole life, so it
  // needs no strand and the contexts never contend on a shared scheduler lock.
  static std::vector<std::unique_ptr<net::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<net::io_context>> out;
    for (int i = 0; i < n; ++i) out.push_back(std::make_unique<net::io_context>(1));
    return out;
  }

  void RunIo(net::io_context& ioc) {
    internal::ServerIoThreadScope scope(ioc);  // clients may run requests on this thread
    while (true) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        // Never let an escaped exception kill an I/O thread.
        if (logger_) logger_->error("http: unexpected exception on I/O thread: {}", e.what());
      }
    }
  }

  void ShutdownOnSignals() {
    signals_ = std::make_unique<net::signal_set>(*iocs_[0], SIGINT, SIGTERM);
    signals_->async_wait([self = shared_from_this()](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (self->logger_) self->logger_->info("http: signal {} received, shutting down", sig);
      self->RequestShutdown();
    });
  }

  void RequestShutdown() {
    std::lock_guard lock(mu_);
    shutdown_requested_ = true;
    cv_.notify_all();
  }

  void Wait() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return shutdown_requested_ || stopped_; });
      if (stopped_) return;
    }
    Shutdown();
  }

  void Shutdown() {
    {
      std::unique_lock lock(mu_);
      if (shutting_down_) {
        cv_.wait(lock, [this] { return stopped_; });
        return;
      }
      shutting_down_ = true;
      shutdown_requested_ = true;
    }
    if (!started_) {
      std::lock_guard lock(mu_);
      stopped_ = true;
      cv_.notify_all();
      return;
    }
    stopping_ = true;
    net::post(acceptor_->get_executor(), [self = shared_from_this()] {
      boost::system::error_code ec;
      self->acceptor_->close(ec);
    });
    if (signals_) {
      net::post(*iocs_[0], [self = shared_from_this()] {
        boost::system::error_code ec;
        self->signals_->cancel(ec);
      });
    }
    ForEachConn([](const std::shared_ptr<Conn>& c) {
      if (c->idle) c->stream.socket().cancel();
      if (c->body) c->body->CloseFromServer(BodyStream::CloseReason::kServerShutdown);
    });
    auto deadline = Clock::now() + options_.shutdown_grace;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, deadline, [this] { return conns_.empty(); });
    }
    // Past the grace period: cut whatever is left.
    ForEachConn([](const std::shared_ptr<Conn>& c) {
      boost::system::error_code ec;
      c->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      c->stream.socket().close(ec);
    });
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(2), [this] { return conns_.empty(); });
    }
    pool_.join();
    work_.clear();
    for (auto& ioc : iocs_) ioc->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Destroying the io_context destroys the frames of coroutines that never finished (they hold
    // references to this State); the I/O objects bound to it go first.
    signals_.reset();
    acceptor_.reset();
    iocs_.clear();
    std::lock_guard lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

  void Use(std::shared_ptr<Middleware> m) { middleware_.push_back(std::move(m)); }

  uint16_t port() const { return port_; }
  const ServerOptions& options() const { return options_; }
  const Router& router() const { return router_; }

  ServerStats stats() const {
    ServerStats s;
    s.connections_accepted = accepted_.load();
    s.connections_rejected = rejected_.load();
    s.requests = requests_.load();
    s.open_connections = open_connections_.load();
    s.open_streams = open_streams_.load();
    return s;
  }

 private:
  // Runs `fn` on each live connection's thread.
  template <typename Fn>
  void ForEachConn(Fn fn) {
    std::vector<std::shared_ptr<Conn>> live;
    {
      std::lock_guard lock(mu_);
      for (auto& w : conns_) {
        if (auto c = w.lock()) live.push_back(std::move(c));
      }
    }
    for (auto& c : live) {
      net::post(c->stream.get_executor(), [c, fn] { fn(c); });
    }
  }

  static net::awaitable<void> Accept(std::shared_ptr<State> self) {
    while (!self->stopping_) {
      auto [ec, socket] = co_await self->acceptor_->async_accept(self->NextContext(), kNoThrow);
      if (ec) {
        if (ec == net::error::operation_aborted || self->stopping_) break;
        if (self->logger_) self->logger_->warn("http: accept failed: {}", ec.message());
        // Out of file descriptors and similar: back off instead of spinning.
        net::steady_timer t(self->acceptor_->get_executor(), std::chrono::milliseconds(50));
        co_await t.async_wait(kNoThrow);
        continue;
      }
      boost::system::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      auto exec = socket.get_executor();
      auto conn = std::make_shared<Conn>(std::move(socket));
      if (static_cast<size_t>(self->open_connections_.load()) >= self->options_.max_connections) {
        ++self->rejected_;
        net::co_spawn(exec, Reject(self, conn), net::detached);
        continue;
      }
      ++self->accepted_;
      net::co_spawn(exec, Session(self, conn), [self](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          if (self->logger_) self->logger_->error("http: connection failed: {}", ex.what());
        }
      });
    }
  }

  static net::awaitable<void> Reject(std::shared_ptr<State> self, std::shared_ptr<Conn> conn) {
    bhttp::response<bhttp::string_body> res{bhttp::status::service_unavailable, 11};
    res.set(bhttp::field::content_type, "application/json");
    res.set(bhttp::field::retry_after, "1");
    res.keep_alive(false);
    res.body() = ErrorJson("unavailable", "too many connections", NewRequestId());
    res.prepare_payload();
    conn->stream.expires_after(std::chrono::seconds(2));
    co_await bhttp::async_write(conn->stream, res, kNoThrow);
    boost::system::error_code ec;
    conn->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  void Register(const std::shared_ptr<Conn>& c) {
    std::lock_guard lock(mu_);
    conns_.insert(c);
    ++open_connections_;
    if (open_connections_gauge_) open_connections_gauge_->Inc();
  }
  void Unregister(const std::shared_ptr<Conn>& c) {
    std::lock_guard lock(mu_);
    conns_.erase(c);
    --open_connections_;
    if (open_connections_gauge_) open_connections_gauge_->Dec();
    cv_.notify_all();
  }

  struct ConnGuard {
    std::shared_ptr<State> self;
    std::shared_ptr<Conn> conn;
    ~ConnGuard() { self->Unregister(conn); }
  };

  static net::awaitable<void> Session(std::shared_ptr<State> self, std::shared_ptr<Conn> conn) {
    self->Register(conn);
    ConnGuard guard{self, conn};
    boost::system::error_code ec;
    auto remote = conn->stream.socket().remote_endpoint(ec);
    if (!ec) conn->remote = remote.address().to_string() + ":" + std::to_string(remote.port());
    beast::flat_buffer buffer;
    bool first = true;
    const ServerOptions& opt = self->options_;
    while (!self->stopping_) {
      // Wait for the first byte of the next request under the idle timeout; only then does the
      // header timeout start (slowloris: the whole header must arrive within header_timeout).
      if (buffer.size() == 0) {
        conn->idle = true;
        conn->idle_deadline.Arm(Clock::now() + (first ? opt.header_timeout : opt.idle_timeout));
        auto [rec, n] =
            co_await conn->stream.socket().async_read_some(buffer.prepare(4096), kNoThrow);
        conn->idle_deadline.Disarm();
        conn->idle = false;
        if (rec) break;
        buffer.commit(n);
      }
      first = false;
      bool keep_going = co_await HandleOne(self, conn, buffer);
      if (!keep_going) break;
    }
    conn->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    conn->stream.socket().close(ec);
  }

  // Feeds buffered bytes to the parser until it needs more input or the message (header first)
  // is complete. need_more means the buffer held too little; the caller reads asynchronously.
  static boost::system::error_code ParseBuffered(internal::RequestParser& parser,
                                                 beast::flat_buffer& buffer) {
    boost::system::error_code ec;
    bool header_was_done = parser.is_header_done();
    while (buffer.size() > 0 && !parser.is_done()) {
      size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec) return ec;
      if (!header_was_done && parser.is_header_done()) return {};  // stop after the header
      if (used == 0) return bhttp::error::need_more;
    }
    if (!parser.is_done() && !parser.is_header_done()) return bhttp::error::need_more;
    return {};
  }

  // The head of a response: status line, the handler's fields, then the framing, which is the
  // server's: a Content-Length of `content_length`, or chunked when it is nullopt, and the
  // Connection field that `keep_alive` calls for.
  static std::string ResponseHead(unsigned version, int status, const Headers& headers,
                                  std::optional<size_t> content_length, bool keep_alive) {
    std::string out;
    out.reserve(128 + 64 * headers.size());
    internal::AppendStatusLine(out, version, status);
    for (const auto& [name, value] : headers.fields()) {
      if (internal::IsBodyFramingField(name) || EqualsIgnoreCase(name, "Connection")) continue;
      // A field that would split the response (CR or LF in it) is dropped, not sent.
      internal::AppendHeaderField(out, name, value);
    }
    if (!content_length) {
      out.append("Transfer-Encoding: chunked\r\n");
    } else if (!internal::StatusHasNoBody(status)) {
      internal::AppendHeaderField(out, "Content-Length", std::to_string(*content_length));
    }
    if (version >= 11 && !keep_alive) out.append("Connection: close\r\n");
    if (version < 11 && keep_alive) out.append("Connection: keep-alive\r\n");
    out.append("\r\n");
    return out;
  }

  // Appends `data` as one chunk of a chunked body (nothing for empty data, which would end it).
  static void AppendChunk(std::string& out, std::string_view data) {
    if (data.empty()) return;
    out.append(fmt::format("{:x}\r\n", data.size()));
    out.append(data);
    out.append("\r\n");
  }

  // Writes `head` then `body`: directly while the socket takes them, then asynchronously under
  // the write timeout. Returns false on failure.
  static net::awaitable<bool> Write(std::shared_ptr<Conn> conn, const ServerOptions& opt,
                                    std::string_view head, std::string_view body = {}) {
    internal::WriteResult written = internal::SendNow(conn->stream, head, body);
    if (internal::NeedsRest(written, head, body)) {
      written = co_await internal::WriteRest(conn->stream, head, body, written,
                                             Clock::now() + opt.write_timeout);
    }
    co_return !written.error;
  }

  // Writes a complete non-streaming response. Returns false on write failure.
  static net::awaitable<bool> WriteSimple(std::shared_ptr<Conn> conn, const ServerOptions& opt,
                                          int status, const Headers& headers, std::string body,
                                          bool keep_alive, bool head, unsigned version) {
    if (internal::StatusHasNoBody(status)) body.clear();
    std::string out = ResponseHead(version, status, headers, body.size(), keep_alive);
    co_return co_await Write(conn, opt, out, head ? std::string_view() : std::string_view(body));
  }

  // Reads one request (the buffer holds at least its first byte), answers it. Returns whether
  // the connection may serve another request.
  static net::awaitable<bool> HandleOne(std::shared_ptr<State> self, std::shared_ptr<Conn> conn,
                                        beast::flat_buffer& buffer) {
    const ServerOptions& opt = self->options_;
    auto start = Clock::now();
    internal::RequestParser parser;
    parser.header_limit(static_cast<std::uint32_t>(opt.max_header_bytes));
    // The body limit depends on the route, known only once the header is in.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    conn->stream.expires_after(opt.header_timeout);
    // Fast path: the whole header is usually in the buffer already; parsing it here saves the
    // trip through the scheduler that a completed async_read_header would cost.
    boost::system::error_code ec = ParseBuffered(parser, buffer);
    if (ec == bhttp::error::need_more) {
      auto [rec, n] = co_await bhttp::async_read_header(conn->stream, buffer, parser, kNoThrow);
      ec = rec;
    }
    if (ec) {
      if (ec == bhttp::error::header_limit) {
        co_await WriteError(
            conn, opt, 431, "request_header_fields_too_large",
            "request header exceeds " + std::to_string(opt.max_header_bytes) + " bytes");
      } else if (ec != beast::error::timeout && ec != net::error::eof &&
                 ec != net::error::operation_aborted && ec != net::error::connection_reset &&
                 ec != bhttp::error::end_of_stream) {
        co_await WriteError(conn, opt, 400, "invalid_argument",
                            "malformed HTTP request: " + ec.message());
      }
      co_return false;
    }
    auto req = std::make_shared<Request>();
    req->method = std::move(parser.method());
    req->target = std::move(parser.target());
    size_t q = req->target.find('?');
    req->path = req->target.substr(0, q);
    if (q != std::string::npos) req->query = req->target.substr(q + 1);
    req->headers = std::move(parser.headers());
    req->remote_addr = conn->remote;
    auto rid = req->headers.Get("x-request-id");
    req->request_id = (opt.trust_request_id && rid && AcceptableRequestId(*rid)) ? std::string(*rid)
                                                                                 : NewRequestId();
    RouteMatch match = self->router_.Match(req->method, req->path);
    if (match.route != nullptr) {
      req->route = match.route;
      req->params = std::move(match.params);
    }
    size_t limit = (match.route && match.route->options.max_body_bytes != 0)
                       ? match.route->options.max_body_bytes
                       : opt.max_body_bytes;
    unsigned version = parser.version();
    bool keep_alive = parser.keep_alive();
    bool head = req->method == "HEAD";
    if (auto len = parser.content_length(); len && *len > limit) {
      co_await WriteError(conn, opt, 413, "payload_too_large",
                          "request body of " + std::to_string(*len) +
                              " bytes exceeds the limit of " + std::to_string(limit),
                          req->request_id);
      co_return false;
    }
    parser.body_limit(limit);
    if (!parser.is_done() && buffer.size() > 0) {
      boost::system::error_code pec = ParseBuffered(parser, buffer);
      if (pec && pec != bhttp::error::need_more) {
        if (pec == bhttp::error::body_limit) {
          co_await WriteError(
              conn, opt, 413, "payload_too_large",
              "request body exceeds the limit of " + std::to_string(limit) + " bytes",
              req->request_id);
        } else {
          co_await WriteError(conn, opt, 400, "invalid_argument",
                              "malformed HTTP request body: " + pec.message(), req->request_id);
        }
        co_return false;
      }
    }
    if (!parser.is_done()) {
      if (internal::ExpectsContinue(req->headers)) {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, version};
        conn->stream.expires_after(opt.write_timeout);
        auto [wec, wn] = co_await bhttp::async_write(conn->stream, cont, kNoThrow);
        if (wec) co_return false;
      }
      conn->stream.expires_after(opt.body_timeout);
      auto [bec, bn] = co_await bhttp::async_read(conn->stream, buffer, parser, kNoThrow);
      if (bec) {
        if (bec == bhttp::error::body_limit) {
          co_await WriteError(
              conn, opt, 413, "payload_too_large",
              "request body exceeds the limit of " + std::to_string(limit) + " bytes",
              req->request_id);
        } else if (bec != beast::error::timeout && bec != net::error::eof) {
          co_await WriteError(conn, opt, 400, "invalid_argument",
                              "malformed HTTP request body: " + bec.message(), req->request_id);
        }
        co_return false;
      }
    }
    req->body = std::move(parser.body());
    // The request is in: an empty read buffer goes back to the allocator rather than staying with
    // the connection while the response runs (a long stream, then an idle keep-alive wait).
    if (buffer.size() == 0) buffer.shrink_to_fit();
    ++self->requests_;

    // Dispatch: middleware chain and handler, inline or on the blocking pool.
    auto reply = std::make_shared<internal::ReplyState>(req);
    auto entered = std::make_shared<std::atomic<size_t>>(0);
    Request& request = *req;
    bool blocking = match.route != nullptr && match.route->options.blocking &&
                    !(match.route->options.run_inline && match.route->options.run_inline(*req));
    auto run = [self, &request, reply, entered, match = std::move(match)]() mutable {
      self->RunChain(request, match, reply, *entered);
    };
    if (blocking) {
      net::post(self->pool_, std::move(run));
    } else {
      run();
    }
    std::optional<Response> response;
    if (reply->done()) {
      response = reply->Take();
    } else {
      auto timeout = request.route ? request.route->options.timeout : std::chrono::milliseconds(0);
      if (timeout.count() > 0) {
        auto timer = std::make_shared<net::steady_timer>(conn->stream.get_executor());
        timer->expires_after(timeout);
        auto exec = conn->stream.get_executor();
        if (reply->SetWaker([timer, exec] { net::post(exec, [timer] { timer->cancel(); }); })) {
          co_await timer->async_wait(kNoThrow);
        }
      } else {
        // No deadline: the session's own completion handler is the waker (one post, no timer).
        co_await net::async_initiate<decltype(net::use_awaitable), void()>(
            [&reply](auto handler) {
              auto waiting = std::make_shared<decltype(handler)>(std::move(handler));
              if (!reply->SetWaker([waiting] { net::post(std::move(*waiting)); })) {
                net::post(std::move(*waiting));
              }
            },
            net::use_awaitable);
      }
      response = reply->Take();
      if (!response) {
        if (reply->done()) {
          response = Response::FromStatus(Internal("response lost"));
        } else {
          reply->Abandon();
          response = Response::FromStatus(DeadlineExceeded(
              "the request did not complete within " + std::to_string(timeout.count()) + " ms"));
        }
      }
    }
    Response& res = *response;
    for (size_t i = entered->load(); i-- > 0;) {
      try {
        self->middleware_[i]->OnResponse(request, res);
      } catch (const std::exception& e) {
        if (self->logger_) {
          self->logger_->error("http: middleware OnResponse threw: {} req={}", e.what(),
                               request.request_id);
        }
      }
    }
    if (res.error) res.body = ErrorJson(*res.error, request.request_id);
    res.headers.Set("x-request-id", request.request_id);
    bool ok;
    // Recorded before the write so that a client that got its answer sees it in /metrics.
    self->Record(request, res.status, Clock::now() - start, res.body.size());
    if (res.stream && !head) {
      // The connection is kept after a stream its producer ended, unless the client left.
      keep_alive = keep_alive && !self->stopping_;
      ok = co_await WriteStream(self, conn, buffer, res, version, keep_alive);
    } else {
      // HEAD of a streaming route: nobody will drain the stream, so its producer is told now.
      if (res.stream) res.stream->CloseFromServer(BodyStream::CloseReason::kClientGone);
      keep_alive = keep_alive && !self->stopping_;
      ok = co_await WriteSimple(conn, opt, res.status, res.headers, std::move(res.body), keep_alive,
                                head, version);
    }
    co_return ok&& keep_alive;
  }

  void RunChain(Request& req, const RouteMatch& match,
                const std::shared_ptr<internal::ReplyState>& reply, std::atomic<size_t>& entered) {
    ScopedRequestId scoped_id(req.request_id);  // log lines of handlers carry the request id
    auto slot = std::make_shared<internal::ReplySlot>(reply);
    Responder responder(slot);
    slot.reset();
    try {
      for (const auto& m : middleware_) {
        entered.fetch_add(1);
        if (auto early = m->OnRequest(req)) {
          responder.Send(std::move(*early));
          return;
        }
      }
      if (match.kind == RouteMatch::Kind::kNotFound) {
        responder.Send(
            Response::FromStatus(NotFound("no route for " + req.method + " " + req.path)));
        return;
      }
      if (match.kind == RouteMatch::Kind::kMethodNotAllowed) {
        std::string allow;
        for (const auto& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
        Response r = Response::Json(405, ErrorJson("method_not_allowed",
                                                   "method " + req.method + " is not allowed on " +
                                                       req.path + " (allowed: " + allow + ")",
                                                   req.request_id));
        r.headers.Set("Allow", allow);
        responder.Send(std::move(r));
        return;
      }
      match.route->handler(req, responder);
    } catch (const std::exception& e) {
      if (logger_) {
        logger_->error("http: handler for {} {} threw: {} req={}", req.method, req.path, e.what(),
                       req.request_id);
      }
      responder.Send(Response::FromStatus(Internal("internal error")));
    } catch (...) {
      if (logger_) logger_->error("http: handler threw a non-exception req={}", req.request_id);
      responder.Send(Response::FromStatus(Internal("internal error")));
    }
  }

  static net::awaitable<void> WriteError(std::shared_ptr<Conn> conn, const ServerOptions& opt,
                                         int status, std::string_view code, std::string message,
                                         std::string request_id = NewRequestId()) {
    Headers h;
    h.Set("Content-Type", "application/json");
    h.Set("x-request-id", request_id);
    co_await WriteSimple(conn, opt, status, h, ErrorJson(code, message, request_id), false, false,
                         11);
  }

  // Watches the client while a stream is written, until the writer finishes and cancels it. A
  // read that fails (EOF, reset) means the client is gone: the stream is closed and the writer
  // stops. Bytes that arrive instead (the client's next request, sent early) are kept in
  // `buffer` for the session, and the watch then only waits to be cancelled.
  static net::awaitable<void> WatchClient(std::shared_ptr<Conn> conn,
                                          std::shared_ptr<BodyStream> body,
                                          beast::flat_buffer& buffer, bool& client_gone) {
    char scratch[512];
    auto [ec, n] = co_await conn->stream.socket().async_read_some(net::buffer(scratch), kNoThrow);
    if (ec == net::error::operation_aborted) co_return;  // the stream ended first
    if (ec) {
      client_gone = true;
      body->CloseFromServer(BodyStream::CloseReason::kClientGone);
      co_return;
    }
    buffer.commit(net::buffer_copy(buffer.prepare(n), net::buffer(scratch, n)));
    net::steady_timer until_cancelled(conn->stream.get_executor(), Clock::time_point::max());
    co_await until_cancelled.async_wait(kNoThrow);
  }

  // Writes the chunks of a stream as its producer queues them (and heartbeats while it is
  // quiet), then the last chunk once it finishes; false on a failed write.
  static net::awaitable<bool> WriteChunks(std::shared_ptr<Conn> conn,
                                          std::shared_ptr<BodyStream> body,
                                          std::shared_ptr<net::steady_timer> timer,
                                          const ServerOptions& opt) {
    auto last_write = Clock::now();
    while (true) {
      auto drained = body->Drain();
      std::string framed;
      for (auto& c : drained.chunks) AppendChunk(framed, c);
      if (drained.finished) framed += "0\r\n\r\n";  // the last chunk, in the same write
      if (!framed.empty()) {
        if (!co_await Write(conn, opt, framed)) co_return false;
        last_write = Clock::now();
      }
      if (drained.finished) co_return true;
      auto hb = body->heartbeat_interval();
      if (hb.count() > 0 && Clock::now() - last_write >= hb) {
        framed.clear();
        AppendChunk(framed, body->heartbeat_chunk());
        if (!co_await Write(conn, opt, framed)) co_return false;
        last_write = Clock::now();
        continue;
      }
      if (hb.count() > 0) {
        timer->expires_at(last_write + hb);
      } else {
        timer->expires_at(Clock::time_point::max());
      }
      if (body->queued_bytes() == 0 && !body->closed()) co_await timer->async_wait(kNoThrow);
    }
  }

  // Writes a streamed (chunked) response. `keep_alive` in: what the request allows; out: whether
  // the connection stays open.
  static net::awaitable<bool> WriteStream(std::shared_ptr<State> self, std::shared_ptr<Conn> conn,
                                          beast::flat_buffer& buffer, Response& res,
                                          unsigned version, bool& keep_alive) {
    const ServerOptions& opt = self->options_;
    std::shared_ptr<BodyStream> body = res.stream;
    // A producer still running may be a read away from its end (a short answer that arrived in
    // two parts): the event loop gets two turns first, so that such an answer still goes out
    // whole, in one write and without a watch. Costs two queue passes, no timer.
    for (int turn = 0; turn < 2 && !body->closed(); ++turn) {
      co_await net::post(conn->stream.get_executor(), net::use_awaitable);
    }
    std::string out = ResponseHead(version, res.status, res.headers, std::nullopt, keep_alive);
    if (body->closed() && body->close_reason() == BodyStream::CloseReason::kProducer) {
      // Complete already (a short answer, relayed whole): head, chunks and the last chunk in
      // one write, and no disconnect watch, so the connection can serve the next request.
      for (const auto& c : body->Drain().chunks) AppendChunk(out, c);
      out += "0\r\n\r\n";
      bool written = co_await Write(conn, opt, out);
      body->CloseFromServer(BodyStream::CloseReason::kClientGone);
      co_return written;
    }
    // Still running: the connection stays open afterwards when the stream ends as its producer
    // meant it to and the client is still there (its watch keeps what it sent meanwhile).
    if (!co_await Write(conn, opt, out)) {
      body->CloseFromServer(BodyStream::CloseReason::kClientGone);
      co_return false;
    }
    ++self->open_streams_;
    if (self->open_streams_gauge_) self->open_streams_gauge_->Inc();
    conn->body = body;
    if (self->stopping_) body->CloseFromServer(BodyStream::CloseReason::kServerShutdown);
    auto exec = conn->stream.get_executor();
    auto timer = std::make_shared<net::steady_timer>(exec);
    body->SetWaker([timer, exec] { net::post(exec, [timer] { timer->cancel(); }); });
    bool client_gone = false;
    auto first_done = co_await (WriteChunks(conn, body, timer, opt) ||
                                WatchClient(conn, body, buffer, client_gone));
    bool ok = first_done.index() == 0 && std::get<0>(first_done);  // last chunk written
    bool finished_by_producer = body->close_reason() == BodyStream::CloseReason::kProducer;
    body->CloseFromServer(BodyStream::CloseReason::kClientGone);
    body->SetWaker(nullptr);
    conn->body.reset();
    --self->open_streams_;
    if (self->open_streams_gauge_) self->open_streams_gauge_->Dec();
    keep_alive = keep_alive && ok && finished_by_producer && !client_gone && !self->stopping_;
    if (!keep_alive) {
      boost::system::error_code sec;
      conn->stream.socket().shutdown(tcp::socket::shutdown_send, sec);
    }
    co_return ok;
  }

  void Record(const Request& req, int status, Clock::duration elapsed, size_t bytes) {
    double seconds = std::chrono::duration<double>(elapsed).count();
    const std::string& route = req.route ? req.route->pattern : kUnmatched;
    if (requests_total_ != nullptr) {
      auto it = req.route ? route_metrics_.find(req.route) : route_metrics_.end();
      if (it != route_metrics_.end() && req.method == req.route->method && status >= 100 &&
          status < 600) {
        RouteMetrics& m = *it->second;
        m.latency->Observe(seconds);
        Counter* c = m.by_status[status].load(std::memory_order_acquire);
        if (c == nullptr) {
          std::string code = std::to_string(status);
          c = &requests_total_->WithLabels({req.method, route, code});
          m.by_status[status].store(c, std::memory_order_release);
        }
        c->Inc();
      } else {
        std::string code = std::to_string(status);
        requests_total_->WithLabels({req.method, route, code}).Inc();
        request_seconds_->WithLabels({req.method, route}).Observe(seconds);
      }
    }
    if (logger_ && logger_->should_log(spdlog::level::info)) {
      logger_->info("{} {} {} {}B {:.3f}ms remote={} req={}", req.method, req.target, status, bytes,
                    seconds * 1000, req.remote_addr, req.request_id);
    }
  }

  inline static const std::string kUnmatched = "unmatched";

  // Per-route metric series, resolved up front (latency) or on first use (status counters).
  struct RouteMetrics {
    Histogram* latency = nullptr;
    std::array<std::atomic<Counter*>, 600> by_status{};
  };
  std::unordered_map<const Route*, std::unique_ptr<RouteMetrics>> route_metrics_;  // fixed

  ServerOptions options_;
  Router router_;
  std::shared_ptr<spdlog::logger> logger_;
  CounterFamily* requests_total_ = nullptr;
  HistogramFamily* request_seconds_ = nullptr;
  Gauge* open_connections_gauge_ = nullptr;
  Gauge* open_streams_gauge_ = nullptr;
  std::vector<std::shared_ptr<Middleware>> middleware_;  // fixed after Start
  std::vector<std::unique_ptr<net::io_context>> iocs_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work_;
  size_t next_context_ = 0;  // accept loop only
  net::io_context& NextContext() { return *iocs_[next_context_++ % iocs_.size()]; }
  std::unique_ptr<tcp::acceptor> acceptor_;
  net::thread_pool pool_;
  std::unique_ptr<net::signal_set> signals_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  bool started_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0}, rejected_{0}, requests_{0};
  std::atomic<int64_t> open_connections_{0}, open_streams_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::weak_ptr<Conn>, std::owner_less<std::weak_ptr<Conn>>> conns_;  // guarded by mu_
  bool shutdown_requested_ = false;                                            // guarded by mu_
  bool shutting_down_ = false;                                                 // guarded by mu_
  bool stopped_ = false;                                                       // guarded by mu_
};

Server::Server(ServerOptions options, Router router, std::shared_ptr<spdlog::logger> logger,
               MetricsRegistry* metrics)
    : state_(std::make_shared<State>(std::move(options), std::move(router), std::move(logger),
                                     metrics)) {}

Server::~Server() { Shutdown(); }

void Server::Use(std::shared_ptr<Middleware> middleware) { state_->Use(std::move(middleware)); }
Status Server::Start() { return state_->Start(); }
uint16_t Server::port() const { return state_->port(); }
std::string Server::host() const { return state_->options().host; }
void Server::ShutdownOnSignals() { state_->ShutdownOnSignals(); }
void Server::Shutdown() { state_->Shutdown(); }
void Server::Wait() { state_->Wait(); }
ServerStats Server::stats() const { return state_->stats(); }
const Router& Server::router() const { return state_->router(); }

Response OkJson() { return Response::Json(200, R"({"status":"ok"})"); }

}  // namespace atrium::http
