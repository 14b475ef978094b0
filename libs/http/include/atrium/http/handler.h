// Request, Response, Responder and Handler: the types a service uses to answer HTTP requests.
//
// A handler receives the parsed request and a Responder, and calls Responder::Send exactly once,
// either before returning (synchronous handlers) or later from any thread (asynchronous ones). The
// Request stays valid until Send is called; the handler must not touch it afterwards. Beast and
// Asio do not appear here on purpose: services include this header, not the server's internals.
#pragma once

#include <any>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/headers.h"

namespace atrium::http {

class BodyStream;
struct Route;

struct Request {
  std::string method;  // upper case: "GET", "POST", ...
  std::string target;  // raw request-target: "/api/v1/x?y=1"
  std::string path;    // target without the query, still percent-encoded
  std::string query;   // raw query string without '?'
  Headers headers;
  std::string body;
  std::string request_id;   // from x-request-id when acceptable, else generated
  std::string remote_addr;  // "ip:port" of the peer
  // Path parameters of the matched route, percent-decoded, in template order.
  std::vector<std::pair<std::string, std::string>> params;
  // The matched route; null when no route matched (middleware may still see the request).
  const Route* route = nullptr;
  // Slot for the authentication middleware of later modules (the principal of the request).
  std::any principal;

  // Path parameter `name` ("" when absent).
  std::string_view Param(std::string_view name) const;
  // First query parameter `name`, percent-decoded ('+' as space), or nullopt.
  std::optional<std::string> Query(std::string_view name) const;
  // All query parameters in order, percent-decoded.
  std::vector<std::pair<std::string, std::string>> QueryParams() const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // When set, the body is streamed with chunked encoding from this stream and `body` is ignored.
  std::shared_ptr<BodyStream> stream;
  // When set, the server renders Atrium's error JSON for it (with the request id) into `body`.
  std::optional<Status> error;

  static Response Json(int status, std::string json);
  static Response Text(int status, std::string text, std::string_view content_type = "text/plain");
  // Atrium's uniform error: {"error": {"code", "message", "request_id"}}, status from the code.
  static Response FromStatus(const Status& status);
  static Response NoContent() { return Response{.status = 204}; }
};

namespace internal {
class ReplySlot;
}

// Completes one request. Copyable; all copies share one slot. Thread-safe. The first Send wins;
// later ones are ignored. If every copy is destroyed without Send, the client gets a 500.
class Responder {
 public:
  explicit Responder(std::shared_ptr<internal::ReplySlot> slot) : slot_(std::move(slot)) {}
  void Send(Response response) const;
  // True once the client is gone or the route timed out: the work may stop early.
  bool Abandoned() const;

 private:
  std::shared_ptr<internal::ReplySlot> slot_;
};

// The general (possibly asynchronous) handler.
using Handler = std::function<void(Request& request, Responder responder)>;
// A synchronous handler: returns the response. Exceptions become 500s.
using SyncHandler = std::function<Response(Request& request)>;

// Per-route options, read by the server and by middleware of later modules.
struct RouteOptions {
  // Request body limit in bytes; 0 = the server default.
  size_t max_body_bytes = 0;
  // Run on the blocking worker pool (database calls, file I/O) instead of the I/O thread.
  bool blocking = false;
  // For a blocking route: called on the I/O thread before dispatch; when it returns true the
  // middleware chain and the handler run there instead, sparing two thread switches. For
  // handlers that block only on a cache miss: the predicate answers whether everything the
  // request needs is in memory (it may leave what it found in Request::principal). It must not
  // block.
  std::function<bool(Request&)> run_inline;
  // Time to produce a response before the server answers 504; 0 = no limit.
  std::chrono::milliseconds timeout{0};
  // Authentication requirement for the auth middleware: empty = public route.
  std::string auth_scope;
  // Rate-limit class for the rate-limit middleware; empty = none.
  std::string rate_limit_class;
  // Whether the audit middleware records this route's outcome.
  bool audit = false;
};

}  // namespace atrium::http
