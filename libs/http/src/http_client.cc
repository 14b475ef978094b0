// HttpClient implementation. One io_context per I/O thread; each request runs as a coroutine on
// one of them, and each context has its own connection pool, so no pool state is shared between
// threads. With run_on_server_threads, a request started on an http::Server I/O thread runs on
// that thread's io_context instead, with a pool of its own there (see "Server threads" below).
// See atrium/http/client.h for the contract and docs/http-client.md for a guide.
#include "atrium/core/thread_name.h"
#include "atrium/http/client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "client_connection.h"
#include "client_url.h"
#include "io_thread.h"
#include "message_parser.h"
#include "wire.h"

namespace atrium::http {

// ---- CancelToken ----

void CancelToken::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  // Run under the lock so that RemoveCallback() can promise that no callback is still running.
  for (auto& [id, fn] : callbacks_) fn();
  callbacks_.clear();
}

bool CancelToken::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

CancelToken::CallbackId CancelToken::AddCallback(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return 0;
  CallbackId id = next_id_++;
  callbacks_.emplace_back(id, std::move(fn));
  return id;
}

void CancelToken::RemoveCallback(CallbackId id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(callbacks_, [id](const auto& entry) { return entry.first == id; });
}

// ---- HttpClient::Impl ----

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using client_internal::Clock;
using client_internal::Connection;
using client_internal::Limits;
using client_internal::ProxyKind;
using client_internal::ProxySpec;
using client_internal::RequestControl;
using client_internal::TargetUrl;
using std::chrono::milliseconds;

// The client whose I/O thread this is (SendSync refuses to block there).
thread_local const void* t_current_client = nullptr;

// Response body read buffers: small enough for the allocator's thread cache (one per request),
// never zero-filled. Streamed bodies (SSE events, a few hundred bytes each, and a buffer per open
// stream for as long as it runs) get the smaller one.
constexpr size_t kChunkBufferSize = 16 * 1024;
constexpr size_t kStreamChunkBufferSize = 4 * 1024;
constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kRedirectBodyLimit = 1 << 20;  // larger redirect bodies close the connection

bool IsIdempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    if (EqualsIgnoreCase(method, m)) return true;
  }
  return false;
}

bool IsRedirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// One client's world on one I/O thread: the io_context, its pool and its requests. Touched only
// on that thread (after construction), except `live`.
struct IoContext {
  explicit IoContext(asio::io_context& context) : io(context), sweep_timer(context) {}
  asio::io_context& io;
  asio::steady_timer sweep_timer;
  bool stopping = false;
  // Idle connections per pool key, oldest first.
  std::map<std::string, std::deque<std::unique_ptr<Connection>>> idle;
  std::unordered_set<std::shared_ptr<RequestControl>> active;
  // Requests started here whose coroutine has not ended (for a server thread's context, the
  // client's destructor waits for none to be left).
  std::atomic<int> live{0};
  // Parsed request URLs: a relay sends the same few URLs over and over. Shared pointers, so that
  // clearing the map (when it fills) leaves the requests in flight their copy.
  std::unordered_map<std::string, std::shared_ptr<const client_internal::TargetUrl>> targets;

  Result<std::shared_ptr<const client_internal::TargetUrl>> ParseTarget(const std::string& url) {
    if (auto it = targets.find(url); it != targets.end()) return it->second;
    ASSIGN_OR_RETURN(auto parsed, client_internal::ParseTargetUrl(url));
    auto target = std::make_shared<const client_internal::TargetUrl>(std::move(parsed));
    if (targets.size() >= 256) targets.clear();
    targets.emplace(url, target);
    return target;
  }

  // Ends the pool and aborts the requests (on the context's thread, or with it not running).
  void Stop(const char* why) {
    stopping = true;
    for (const auto& control : active) control->Abort(why);
    for (auto& [key, connections] : idle) {
      for (auto& connection : connections) connection->Close();
    }
    idle.clear();
    sweep_timer.cancel();
  }
};

// A thread of the client's own.
struct OwnedThread {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::shared_ptr<IoContext> context = std::make_shared<IoContext>(io);
  std::thread thread;
};

}  // namespace

class HttpClient::Impl {
 public:
  explicit Impl(ClientOptions options);
  ~Impl();

  void Send(ClientRequest request, std::function<void(Result<ClientResponse>)> done);
  Stats stats() const { return Stats{opened_.load(), reused_.load(), retries_.load()}; }
  const Status& init_status() const { return init_status_; }

 private:
  struct Job;
  struct Outcome;

  static asio::awaitable<void> Run(std::shared_ptr<Job> job);
  static asio::awaitable<Result<ClientResponse>> Perform(std::shared_ptr<Job> job);
  // The request's method, headers and body are passed by reference: they stay in Perform's
  // frame (or the job's request) while these run, and are never copied per attempt, so a large
  // body held for the life of a long stream exists once.
  static asio::awaitable<Outcome> ExchangeWithRetry(std::shared_ptr<Job> job,
                                                    const TargetUrl& target,
                                                    const std::string& method,
                                                    const Headers& headers,
                                                    const std::string& body);
  template <bool kTls>
  static asio::awaitable<Outcome> Exchange(std::shared_ptr<Job> job, Connection* connection,
                                           bool reused, const TargetUrl& target,
                                           const std::string& method, const Headers& headers,
                                           const std::string& body);
  static asio::awaitable<void> SweepLoop(Impl* impl, std::shared_ptr<IoContext> context);
  // This client's context on the server I/O thread running `io` (the calling thread), made on
  // first use.
  std::shared_ptr<IoContext> ServerThreadContext(asio::io_context& io);
  // Stops this client's contexts on server threads and waits until their requests have ended.
  void StopServerThreadContexts();
  static void Finish(const std::shared_ptr<Job>& job, Result<ClientResponse> result);
  // After a request's coroutine has ended (its `done` has run).
  static void JobEnded(IoContext& context);

  std::unique_ptr<Connection> TakeIdle(IoContext& context, const std::string& key);
  void ReleaseIdle(IoContext& context, std::unique_ptr<Connection> connection);
  void Prune(IoContext& context);

  const ClientOptions options_;
  Status init_status_;
  asio::ssl::context ssl_context_{asio::ssl::context::tls_client};
  std::vector<std::unique_ptr<OwnedThread>> owned_;
  std::atomic<size_t> next_context_{0};
  std::atomic<uint64_t> opened_{0};
  std::atomic<uint64_t> reused_{0};
  std::atomic<uint64_t> retries_{0};
};

struct HttpClient::Impl::Job {
  Impl* impl = nullptr;
  std::shared_ptr<IoContext> context;
  ClientRequest request;
  std::function<void(Result<ClientResponse>)> done;
  std::shared_ptr<RequestControl> control = std::make_shared<RequestControl>();
  Limits limits;
  ProxySpec proxy;
  CancelToken::CallbackId cancel_id = 0;
  bool finished = false;
  std::unique_ptr<char[]> chunk;  // read buffer for response bodies, chunk_size bytes
  size_t chunk_size = 0;
};

// The result of one request/response exchange on one connection.
struct HttpClient::Impl::Outcome {
  Status status;
  bool retriable = false;  // failed on a reused connection before the request could take effect
  ClientResponse response;
  std::optional<std::string> redirect_location;
  bool reusable = false;  // the connection may go back to the pool

  static Outcome Fail(Status status) {
    Outcome outcome;
    outcome.status = std::move(status);
    return outcome;
  }
};

HttpClient::Impl::Impl(ClientOptions options) : options_(std::move(options)) {
  beast::error_code ec;
  ssl_context_.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1);
  ssl_context_.set_default_verify_paths(ec);  // a missing system store is not fatal
  if (!options_.ca_file.empty()) {
    ssl_context_.load_verify_file(options_.ca_file, ec);
    if (ec) {
      init_status_ =
          InvalidArgument("cannot load ca_file '" + options_.ca_file + "': " + ec.message());
    }
  }
  int threads = std::max(1, options_.threads);
  for (int i = 0; i < threads; ++i) owned_.push_back(std::make_unique<OwnedThread>());
  for (auto& owned : owned_) {
    asio::co_spawn(owned->io, SweepLoop(this, owned->context), asio::detached);
    owned->thread = std::thread([this, io = &owned->io] {
      SetThreadName("http-client");
      t_current_client = this;
      io->run();
    });
  }
}

HttpClient::Impl::~Impl() {
  StopServerThreadContexts();
  for (auto& owned : owned_) {
    asio::post(owned->io, [c = owned->context] { c->Stop("HTTP client shut down"); });
    owned->work.reset();
  }
  for (auto& owned : owned_) owned->thread.join();
}

void HttpClient::Impl::Send(ClientRequest request,
                            std::function<void(Result<ClientResponse>)> done) {
  auto job = std::make_shared<Job>();
  job->impl = this;
  asio::io_context* server_io =
      options_.run_on_server_threads ? internal::CurrentServerIoContext() : nullptr;
  job->context = server_io != nullptr ? ServerThreadContext(*server_io)
                                      : owned_[next_context_.fetch_add(1) % owned_.size()]->context;
  job->request = std::move(request);
  job->done = std::move(done);
  job->context->live.fetch_add(1);
  asio::co_spawn(job->context->io, Run(job), [job](std::exception_ptr e) {
    if (e && !job->finished) {
      std::string what = "unexpected exception";
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        what = ex.what();
      } catch (...) {
      }
      Finish(job, Internal("HTTP client: " + what));
    }
    JobEnded(*job->context);  // last: the client may be destroyed right after
  });
}

void HttpClient::Impl::Finish(const std::shared_ptr<Job>& job, Result<ClientResponse> result) {
  if (job->finished) return;
  job->finished = true;
  job->context->active.erase(job->control);
  if (job->cancel_id != 0) job->request.cancel->RemoveCallback(job->cancel_id);
  auto done = std::move(job->done);
  if (done) done(std::move(result));
}

asio::awaitable<void> HttpClient::Impl::Run(std::shared_ptr<Job> job) {
  IoContext& context = *job->context;
  const ClientRequest& request = job->request;
  if (context.stopping) {
    Finish(job, Cancelled("HTTP client shut down"));
    co_return;
  }
  if (!job->impl->init_status_.ok()) {
    Finish(job, job->impl->init_status_);
    co_return;
  }
  context.active.insert(job->control);
  if (request.cancel) {
    std::weak_ptr<RequestControl> weak = job->control;
    job->cancel_id = request.cancel->AddCallback([weak, executor = context.io.get_executor()] {
      asio::post(executor, [weak] {
        if (auto control = weak.lock()) control->Abort("request cancelled");
      });
    });
    if (job->cancel_id == 0) {
      Finish(job, Cancelled("request cancelled"));
      co_return;
    }
  }
  job->limits.connect_timeout = request.connect_timeout;
  job->limits.read_timeout = request.read_timeout;
  job->limits.total_timeout = request.total_timeout;
  if (request.total_timeout.count() > 0) {
    job->limits.total_deadline = Clock::now() + request.total_timeout;
  }
  Result<ClientResponse> result = co_await Perform(job);
  Finish(job, std::move(result));
}

asio::awaitable<Result<ClientResponse>> HttpClient::Impl::Perform(std::shared_ptr<Job> job) {
  const ClientRequest& request = job->request;
  auto proxy = client_internal::ParseProxyUrl(request.proxy);
  if (!proxy.ok()) co_return proxy.status();
  job->proxy = *proxy;
  std::string url = request.url;
  std::string method = request.method.empty() ? "GET" : request.method;
  if (!internal::IsHttpToken(method)) {
    co_return InvalidArgument("request method '" + method + "' is not an HTTP token");
  }
  // The request's own headers and body, until a redirect changes them.
  const Headers* headers = &request.headers;
  const std::string* body = &request.body;
  Headers redirect_headers;
  const std::string no_body;
  for (int redirects = 0;; ++redirects) {
    auto parsed = job->context->ParseTarget(url);
    if (!parsed.ok()) co_return parsed.status();
    std::shared_ptr<const client_internal::TargetUrl> target = std::move(*parsed);
    Outcome outcome = co_await ExchangeWithRetry(job, *target, method, *headers, *body);
    if (!outcome.status.ok()) co_return outcome.status;
    if (!outcome.redirect_location) co_return std::move(outcome.response);

    if (redirects >= kMaxRedirects) {
      co_return ResourceExhausted("too many redirects (more than " + std::to_string(kMaxRedirects) +
                                  ") from '" + request.url + "'");
    }
    auto next = client_internal::ResolveRedirect(url, *outcome.redirect_location);
    if (!next.ok()) co_return next.status();
    auto next_target = client_internal::ParseTargetUrl(*next);
    if (!next_target.ok()) co_return next_target.status();
    int status = outcome.response.status;
    if (headers != &redirect_headers) {
      redirect_headers = *headers;
      headers = &redirect_headers;
    }
    if (status == 303 || ((status == 301 || status == 302) && EqualsIgnoreCase(method, "POST"))) {
      if (!EqualsIgnoreCase(method, "HEAD")) method = "GET";
      body = &no_body;
      redirect_headers.Remove("Content-Type");
    }
    if (next_target->tls != target->tls || next_target->host != target->host ||
        next_target->port != target->port) {
      // Credentials are for the origin they were given to.
      redirect_headers.Remove("Authorization");
      redirect_headers.Remove("Cookie");
      redirect_headers.Remove("Host");
    }
    url = std::move(*next);
  }
}

asio::awaitable<HttpClient::Impl::Outcome> HttpClient::Impl::ExchangeWithRetry(
    std::shared_ptr<Job> job, const TargetUrl& target, const std::string& method,
    const Headers& headers, const std::string& body) {
  Impl* impl = job->impl;
  IoContext& context = *job->context;
  std::string key = std::string(target.tls ? "https://" : "http://") + target.Authority() + "|" +
                    job->request.proxy;
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Connection> connection = impl->TakeIdle(context, key);
    bool reused = connection != nullptr;
    if (reused) {
      impl->reused_.fetch_add(1);
    } else {
      client_internal::ConnectParams params;
      params.pool_key = key;
      params.target = target;
      params.proxy = job->proxy;
      params.limits = job->limits;
      params.ssl_context = &impl->ssl_context_;
      params.insecure_skip_verify = impl->options_.insecure_skip_verify;
      auto connected = co_await client_internal::Connect(std::move(params), job->control,
                                                         [impl] { impl->opened_.fetch_add(1); });
      job->control->connection = nullptr;
      if (!connected.ok()) co_return Outcome::Fail(connected.status());
      connection = std::move(*connected);
    }
    if (job->control->aborted) co_return Outcome::Fail(Cancelled(job->control->abort_reason));
    job->control->connection = connection.get();
    // (No co_await inside ?: — GCC 12 miscompiles it.)
    Outcome outcome;
    if (connection->is_tls()) {
      outcome =
          co_await Exchange<true>(job, connection.get(), reused, target, method, headers, body);
    } else {
      outcome =
          co_await Exchange<false>(job, connection.get(), reused, target, method, headers, body);
    }
    job->control->connection = nullptr;
    if (outcome.reusable) {
      impl->ReleaseIdle(context, std::move(connection));
    } else {
      connection->Close();
    }
    if (!outcome.status.ok() && outcome.retriable && reused && attempt == 0 &&
        !job->control->aborted) {
      impl->retries_.fetch_add(1);
      continue;
    }
    co_return outcome;
  }
}

template <bool kTls>
asio::awaitable<HttpClient::Impl::Outcome> HttpClient::Impl::Exchange(
    std::shared_ptr<Job> job, Connection* connection, bool reused, const TargetUrl& target,
    const std::string& method, const Headers& headers, const std::string& body) {
  auto& stream = [connection]() -> auto& {
    if constexpr (kTls) {
      return connection->tls();
    } else {
      return connection->tcp();
    }
  }
  ();
  const ClientRequest& request = job->request;
  const Limits& limits = job->limits;
  RequestControl& control = *job->control;
  const ClientOptions& options = job->impl->options_;
  bool plain_via_http_proxy = job->proxy.kind == ProxyKind::kHttp && !target.tls;

  // The head is serialized here; the body is sent from the caller's string, not copied.
  std::string absolute_form;
  if (plain_via_http_proxy) absolute_form = target.AbsoluteForm();
  const std::string_view request_target =
      plain_via_http_proxy ? std::string_view(absolute_form) : std::string_view(target.target);
  std::string request_head;
  request_head.reserve(128 + 64 * headers.size() + request_target.size());
  request_head.append(method).append(" ").append(request_target).append(" HTTP/1.1\r\n");
  for (const auto& [name, value] : headers.fields()) {
    if (internal::IsBodyFramingField(name)) continue;  // Content-Length is written below
    if (!internal::AppendHeaderField(request_head, name, value)) {
      co_return Outcome::Fail(InvalidArgument("request header '" + std::string(name) +
                                              "' is not a valid HTTP field (a name that is not a "
                                              "token, or CR, LF or NUL in its value)"));
    }
  }
  if (!headers.Has("Host")) internal::AppendHeaderField(request_head, "Host", target.host_header);
  if (!headers.Has("User-Agent") && !options.user_agent.empty()) {
    internal::AppendHeaderField(request_head, "User-Agent", options.user_agent);
  }
  if (!headers.Has("Authorization") && !target.authorization.empty()) {
    internal::AppendHeaderField(request_head, "Authorization", target.authorization);
  }
  if (plain_via_http_proxy && job->proxy.has_credentials && !headers.Has("Proxy-Authorization")) {
    internal::AppendHeaderField(
        request_head, "Proxy-Authorization",
        "Basic " + Base64Encode(job->proxy.user + ":" + job->proxy.password));
  }
  // A length whenever there is a body, and for the methods that expect one even when it is empty
  // (Beast's prepare_payload rule for POST, PUT and OPTIONS, and PATCH).
  if (!body.empty() || EqualsIgnoreCase(method, "POST") || EqualsIgnoreCase(method, "PUT") ||
      EqualsIgnoreCase(method, "OPTIONS") || EqualsIgnoreCase(method, "PATCH")) {
    internal::AppendHeaderField(request_head, "Content-Length", std::to_string(body.size()));
  }
  request_head.append("\r\n");
  bool idempotent = IsIdempotent(method);

  beast::error_code ec;
  Clock::time_point deadline = limits.OpDeadline(limits.read_timeout);
  size_t written = 0;
  if constexpr (kTls) {
    connection->tcp().expires_at(deadline);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(request_head), asio::buffer(body)};
    written =
        co_await asio::async_write(stream, buffers, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    internal::WriteResult result = internal::SendNow(stream, request_head, body);
    if (internal::NeedsRest(result, request_head, body)) {
      result = co_await internal::WriteRest(stream, request_head, body, result, deadline);
    }
    ec = result.error;
    written = result.written;
  }
  request_head = std::string();
  if (ec || control.aborted) {
    Outcome outcome = Outcome::Fail(client_internal::OperationError(
        ec, control, limits, limits.read_timeout, deadline, "sending request to " + request.url));
    outcome.retriable = reused && (idempotent || written == 0) && ec != beast::error::timeout;
    co_return outcome;
  }

  // The response's reads: past the TLS stream or straight to the socket, never through tcp()'s
  // per-operation timer; the connection's read deadline bounds each instead. A read it cancelled
  // timed out.
  auto& reader = [connection]() -> auto& {
    if constexpr (kTls) {
      return connection->tls();
    } else {
      return connection->tcp().socket();
    }
  }
  ();
  connection->tcp().expires_never();  // the request's write set it; TLS reads pass through tcp()
  internal::ReadDeadline& read_deadline = connection->read_deadline();
  auto ReadEnded = [&read_deadline](beast::error_code& read_ec) {
    read_deadline.Disarm();
    if (read_ec == asio::error::operation_aborted && read_deadline.expired()) {
      read_ec = beast::error::timeout;
    }
  };

  // Response head; interim 1xx responses (100 Continue, 103 Early Hints) are skipped.
  std::optional<internal::ResponseParser> parser;
  beast::flat_buffer& buffer = connection->buffer();
  for (;;) {
    parser.emplace();
    parser->body_limit(boost::none);  // enforced below, and only when accumulating
    parser->header_limit(kHeaderLimit);
    if (EqualsIgnoreCase(method, "HEAD")) parser->skip(true);
    deadline = limits.OpDeadline(limits.read_timeout);
    read_deadline.Arm(deadline);
    co_await http::async_read_header(reader, buffer, *parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    ReadEnded(ec);
    if (ec || control.aborted) {
      Outcome outcome = Outcome::Fail(
          client_internal::OperationError(ec, control, limits, limits.read_timeout, deadline,
                                          "reading response headers from " + request.url));
      outcome.retriable =
          reused && idempotent && !parser->got_some() && ec != beast::error::timeout;
      co_return outcome;
    }
    int code = parser->status();
    if (code < 100 || code >= 200 || code == 101) break;
  }

  Outcome outcome;
  outcome.response.status = parser->status();
  outcome.response.headers = std::move(parser->headers());
  const auto location = outcome.response.headers.Get("location");
  bool redirecting = request.follow_redirects &&
                     IsRedirect(static_cast<unsigned>(outcome.response.status)) && location;
  if (redirecting) outcome.redirect_location = std::string(*location);
  bool streaming = !redirecting && request.on_data != nullptr;
  size_t limit = redirecting ? kRedirectBodyLimit : request.max_response_bytes;
  if (!redirecting && request.on_headers) {
    request.on_headers(outcome.response.status, outcome.response.headers);
    if (control.aborted) co_return Outcome::Fail(Cancelled(control.abort_reason));
  }
  if (!streaming && parser->content_length() && *parser->content_length() > limit) {
    if (redirecting) {
      outcome.status = Status();
      co_return outcome;  // not worth draining; the connection is closed
    }
    co_return Outcome::Fail(ResourceExhausted(
        "response body of " + std::to_string(*parser->content_length()) +
        " bytes exceeds max_response_bytes (" + std::to_string(limit) + ") for " + request.url));
  }

  const size_t chunk_size = streaming ? kStreamChunkBufferSize : kChunkBufferSize;
  if (!job->chunk || job->chunk_size != chunk_size) {
    job->chunk = std::make_unique_for_overwrite<char[]>(chunk_size);
    job->chunk_size = chunk_size;
  }
  std::string& accumulated = outcome.response.body;
  while (!parser->is_done()) {
    parser->SetBodyWindow(job->chunk.get(), chunk_size);
    deadline = limits.OpDeadline(limits.read_timeout);
    // Bytes read with the head (often the whole body) are parsed here: a completed
    // async_read_some would cost a trip through the scheduler for nothing.
    bool parsed = false;
    if (buffer.size() > 0) {
      size_t used = parser->put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) ec = {};
      parsed = used > 0 || ec;
    }
    if (!parsed) {
      read_deadline.Arm(deadline);
      co_await http::async_read_some(reader, buffer, *parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
      ReadEnded(ec);
    }
    if (ec == http::error::need_buffer) ec = {};
    if constexpr (kTls) {
      // Servers that end an EOF-delimited body without close_notify.
      if (ec == asio::ssl::error::stream_truncated && parser->need_eof()) {
        ec = {};
        parser->put_eof(ec);
      }
    }
    if (ec || control.aborted) {
      co_return Outcome::Fail(
          client_internal::OperationError(ec, control, limits, limits.read_timeout, deadline,
                                          "reading response body from " + request.url));
    }
    size_t n = chunk_size - parser->body_window_left();
    if (n == 0) continue;
    std::string_view data(job->chunk.get(), n);
    if (streaming) {
      if (!request.on_data(data)) co_return Outcome::Fail(Cancelled("request aborted by on_data"));
      if (control.aborted) co_return Outcome::Fail(Cancelled(control.abort_reason));
    } else if (accumulated.size() + n > limit) {
      if (redirecting) {
        accumulated.clear();
        co_return outcome;  // connection not kept
      }
      co_return Outcome::Fail(ResourceExhausted("response body exceeds max_response_bytes (" +
                                                std::to_string(limit) + ") for " + request.url));
    } else {
      accumulated.append(data);
    }
  }
  if (redirecting) accumulated.clear();
  if (parser->keep_alive() && !parser->need_eof() && buffer.size() == 0 && !control.aborted) {
    outcome.reusable = true;
  }
  co_return outcome;
}

asio::awaitable<void> HttpClient::Impl::SweepLoop(Impl* impl, std::shared_ptr<IoContext> context) {
  auto period = std::max<Clock::duration>(impl->options_.idle_timeout / 2, std::chrono::seconds(1));
  while (!context->stopping) {
    beast::error_code ec;
    context->sweep_timer.expires_after(period);
    co_await context->sweep_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (context->stopping) break;
    impl->Prune(*context);
  }
}

std::unique_ptr<Connection> HttpClient::Impl::TakeIdle(IoContext& context, const std::string& key) {
  auto it = context.idle.find(key);
  if (it == context.idle.end()) return nullptr;
  auto& connections = it->second;
  std::unique_ptr<Connection> found;
  Clock::time_point now = Clock::now();
  while (!connections.empty() && !found) {
    std::unique_ptr<Connection> candidate = std::move(connections.back());
    connections.pop_back();
    if (now - candidate->idle_since < options_.idle_timeout && candidate->LooksReusable()) {
      found = std::move(candidate);
    } else {
      candidate->Close();
    }
  }
  if (connections.empty()) context.idle.erase(it);
  return found;
}

void HttpClient::Impl::ReleaseIdle(IoContext& context, std::unique_ptr<Connection> connection) {
  if (context.stopping || options_.max_idle_per_origin == 0) {
    connection->Close();
    return;
  }
  connection->idle_since = Clock::now();
  auto& connections = context.idle[connection->pool_key()];
  connections.push_back(std::move(connection));
  while (connections.size() > options_.max_idle_per_origin) {
    connections.front()->Close();
    connections.pop_front();
  }
}

void HttpClient::Impl::Prune(IoContext& context) {
  Clock::time_point now = Clock::now();
  for (auto it = context.idle.begin(); it != context.idle.end();) {
    std::erase_if(it->second, [&](const std::unique_ptr<Connection>& connection) {
      if (now - connection->idle_since < options_.idle_timeout && connection->LooksReusable()) {
        return false;
      }
      connection->Close();
      return true;
    });
    it = it->second.empty() ? context.idle.erase(it) : std::next(it);
  }
}

// ---- Server threads (ClientOptions::run_on_server_threads) ----
//
// A client's contexts on io_contexts it does not own live in one registry, by (io_context,
// client). Two things end them:
//  - the io_context goes away: ServerThreadClients, an Asio service of that io_context, has its
//    shutdown() called first thing in the io_context's destruction (while its scheduler and
//    reactor still exist, and with nothing running it), and stops every client context there;
//  - the client goes away: its destructor posts a stop to each of its contexts and waits until
//    every request it started there has ended (JobEnded) or the io_context has gone.
// The server must therefore keep running its I/O threads, or be destroyed, while a client that
// used them is destroyed (http::Server::Shutdown destroys its io_contexts).
namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::condition_variable& RegistryChanged() {
  static std::condition_variable cv;
  return cv;
}
// Guarded by RegistryMutex().
std::map<std::pair<asio::io_context*, const void*>, std::shared_ptr<IoContext>>& Registry() {
  static std::map<std::pair<asio::io_context*, const void*>, std::shared_ptr<IoContext>> entries;
  return entries;
}

// Removes the entry of a stopped context once its last request has ended, and wakes the
// destructor waiting for it. Only a destructor stops a context that is still registered (an
// io_context going away removes its entries itself), so a stopped entry is a closing one.
void EraseStoppedEntry(const IoContext& context) {
  std::lock_guard lock(RegistryMutex());
  std::erase_if(Registry(), [&](const auto& kv) { return kv.second.get() == &context; });
  RegistryChanged().notify_all();
}

class ServerThreadClients : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  explicit ServerThreadClients(asio::execution_context& owner)
      : asio::execution_context::service(owner), io_(static_cast<asio::io_context&>(owner)) {}

 private:
  void shutdown() override {
    std::vector<std::shared_ptr<IoContext>> stopped;
    {
      std::lock_guard lock(RegistryMutex());
      auto& entries = Registry();
      for (auto it = entries.lower_bound({&io_, nullptr});
           it != entries.end() && it->first.first == &io_;) {
        stopped.push_back(std::move(it->second));
        it = entries.erase(it);
      }
    }
    for (auto& context : stopped) context->Stop("the server's I/O thread is shutting down");
    RegistryChanged().notify_all();
  }

  asio::io_context& io_;
};

}  // namespace

void HttpClient::Impl::JobEnded(IoContext& context) {
  // The last request of a stopped context: a destructor may be waiting for it.
  if (context.live.fetch_sub(1) == 1 && context.stopping) EraseStoppedEntry(context);
}

std::shared_ptr<IoContext> HttpClient::Impl::ServerThreadContext(asio::io_context& io) {
  {
    std::lock_guard lock(RegistryMutex());
    auto it = Registry().find({&io, this});
    if (it != Registry().end()) return it->second;
  }
  // First use on this thread (the only thread that can ask for this key): the service first, so
  // that it exists before the entry it must clean up.
  asio::use_service<ServerThreadClients>(io);
  auto context = std::make_shared<IoContext>(io);
  {
    std::lock_guard lock(RegistryMutex());
    Registry()[{&io, this}] = context;
  }
  asio::co_spawn(io, SweepLoop(this, context), asio::detached);
  return context;
}

void HttpClient::Impl::StopServerThreadContexts() {
  std::unique_lock lock(RegistryMutex());
  auto& entries = Registry();
  bool any = false;
  for (auto& [key, context] : entries) {
    if (key.second != this) continue;
    any = true;
    // Posted under the lock: the io_context cannot be destroyed meanwhile (its shutdown() takes
    // the lock first).
    asio::post(*key.first, [context] {
      context->Stop("HTTP client shut down");
      if (context->live.load() == 0) EraseStoppedEntry(*context);  // else JobEnded does
    });
  }
  if (!any) return;
  RegistryChanged().wait(lock, [&] {
    return std::none_of(entries.begin(), entries.end(),
                        [this](const auto& kv) { return kv.first.second == this; });
  });
}

// ---- HttpClient ----

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Result<std::unique_ptr<HttpClient>> HttpClient::Create(ClientOptions options) {
  auto client = std::make_unique<HttpClient>(std::move(options));
  if (!client->impl_->init_status().ok()) return client->impl_->init_status();
  return client;
}

HttpClient::~HttpClient() = default;

void HttpClient::Send(ClientRequest request, std::function<void(Result<ClientResponse>)> done) {
  impl_->Send(std::move(request), std::move(done));
}

Result<ClientResponse> HttpClient::SendSync(ClientRequest request) {
  if (t_current_client == impl_.get()) {
    return Internal("HttpClient::SendSync called on one of the client's own I/O threads");
  }
  std::promise<Result<ClientResponse>> promise;
  auto future = promise.get_future();
  impl_->Send(std::move(request),
              [&promise](Result<ClientResponse> result) { promise.set_value(std::move(result)); });
  return future.get();
}

HttpClient::Stats HttpClient::stats() const { return impl_->stats(); }

}  // namespace atrium::http
