// Router: maps (method, path) to a handler with path parameters.
//
// Templates are '/'-separated; a segment is a literal, `{name}` (one segment) or, as the last
// segment only, `{name...}` (the rest of the path, possibly empty). When several templates match,
// the most specific wins, segment by segment: literal > `{param}` > `{rest...}`. HEAD falls back
// to GET. A path that matches some template but not the method yields 405 with the allowed methods.
// Built once at start-up, then read-only: concurrent Match calls are safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/handler.h"

namespace atrium::http {

struct Route {
  std::string method;
  std::string pattern;  // the template, also the metrics label
  RouteOptions options;
  Handler handler;
};

struct RouteMatch {
  enum class Kind { kFound, kNotFound, kMethodNotAllowed };
  Kind kind = Kind::kNotFound;
  const Route* route = nullptr;
  std::vector<std::pair<std::string, std::string>> params;  // decoded
  std::vector<std::string> allowed;                         // for kMethodNotAllowed, sorted
};

class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers a route. Errors (returned, not thrown) for malformed templates and duplicates.
  Status Add(std::string_view method, std::string_view pattern, Handler handler,
             RouteOptions options = {});
  // Registers a synchronous handler.
  Status Add(std::string_view method, std::string_view pattern, SyncHandler handler,
             RouteOptions options = {});

  // Matches a raw (percent-encoded) path without query.
  RouteMatch Match(std::string_view method, std::string_view path) const;

  // Every registered route, in registration order (used to generate security test matrices).
  std::vector<const Route*> routes() const;

  struct Node;  // opaque trie node

 private:
  std::unique_ptr<Node> root_;
  std::vector<std::unique_ptr<Route>> routes_;
};

// Percent-decodes `s`; '+' becomes ' ' when `plus_as_space`. Invalid escapes are kept verbatim.
std::string PercentDecode(std::string_view s, bool plus_as_space = false);

}  // namespace atrium::http
