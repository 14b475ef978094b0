#include "atrium/http/router.h"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <set>

namespace atrium::http {

struct Router::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;  // {name}
  std::string param_name;
  // Routes ending in {rest...} at this node, by method, with the parameter name.
  std::map<std::string, const Route*> rest_routes;
  std::string rest_name;
  // Routes ending exactly at this node, by method.
  std::map<std::string, const Route*> routes;
};

namespace {

// Inline room for the segments of a typical path: matching runs per request.
using Segments = boost::container::small_vector<std::string_view, 8>;

Segments SplitPath(std::string_view path) {
  Segments out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(path.substr(start));
      break;
    }
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsParam(std::string_view seg) {
  return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
}

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

struct Search {
  std::string_view method;
  const Segments* segs;
  // Best match so far.
  const Route* route = nullptr;
  std::vector<std::pair<std::string, std::string>> params;
  std::set<std::string> allowed;
  bool path_matched = false;
};

const Route* PickMethod(const std::map<std::string, const Route*>& routes,
                        std::string_view method) {
  auto it = routes.find(std::string(method));
  if (it != routes.end()) return it->second;
  if (method == "HEAD") {
    it = routes.find("GET");
    if (it != routes.end()) return it->second;
  }
  return nullptr;
}

void AddAllowed(const std::map<std::string, const Route*>& routes, std::set<std::string>& out) {
  for (const auto& [m, r] : routes) {
    out.insert(m);
    if (m == "GET") out.insert("HEAD");
  }
}

}  // namespace

std::string PercentDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_as_space && c == '+') ? ' ' : c;
  }
  return out;
}

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

Status Router::Add(std::string_view method, std::string_view pattern, SyncHandler handler,
                   RouteOptions options) {
  Handler h = [fn = std::move(handler)](Request& req, Responder responder) {
    responder.Send(fn(req));
  };
  return Add(method, pattern, std::move(h), std::move(options));
}

Status Router::Add(std::string_view method, std::string_view pattern, Handler handler,
                   RouteOptions options) {
  if (pattern.empty() || pattern.front() != '/') {
    return InvalidArgument("route pattern must start with '/': " + std::string(pattern));
  }
  if (method.empty()) return InvalidArgument("route method is empty");
  auto segs = SplitPath(pattern);
  Node* node = root_.get();
  bool rest = false;
  std::string rest_name;
  for (size_t i = 0; i < segs.size(); ++i) {
    std::string_view seg = segs[i];
    if (IsParam(seg)) {
      std::string_view name = seg.substr(1, seg.size() - 2);
      if (name.size() > 3 && name.substr(name.size() - 3) == "...") {
        if (i + 1 != segs.size()) {
          return InvalidArgument("{rest...} must be the last segment: " + std::string(pattern));
        }
        name.remove_suffix(3);
        if (!ValidName(name))
          return InvalidArgument("bad parameter name in " + std::string(pattern));
        rest = true;
        rest_name = std::string(name);
        break;
      }
      if (!ValidName(name)) return InvalidArgument("bad parameter name in " + std::string(pattern));
      if (!node->param) {
        node->param = std::make_unique<Node>();
        node->param_name = std::string(name);
      } else if (node->param_name != name) {
        return InvalidArgument("conflicting parameter names {" + node->param_name + "} and {" +
                               std::string(name) + "} in " + std::string(pattern));
      }
      node = node->param.get();
    } else {
      if (seg.find_first_of("{}") != std::string_view::npos) {
        return InvalidArgument("bad segment '" + std::string(seg) + "' in " + std::string(pattern));
      }
      auto& child = node->literals[std::string(seg)];
      if (!child) child = std::make_unique<Node>();
      node = child.get();
    }
  }
  auto route = std::make_unique<Route>(
      Route{std::string(method), std::string(pattern), std::move(options), std::move(handler)});
  auto& table = rest ? node->rest_routes : node->routes;
  if (rest) {
    if (!node->rest_name.empty() && node->rest_name != rest_name) {
      return InvalidArgument("conflicting rest parameter names in " + std::string(pattern));
    }
    node->rest_name = rest_name;
  }
  if (!table.emplace(route->method, route.get()).second) {
    return Conflict("duplicate route " + std::string(method) + " " + std::string(pattern));
  }
  routes_.push_back(std::move(route));
  return Status::Ok();
}

namespace {

// Depth-first search preferring literal > param > rest at each segment. Returns true when a route
// with the right method was found (stops the search).
bool Walk(const Router::Node* node, size_t i, Search& s,
          std::vector<std::pair<std::string, std::string>>& params) {
  const auto& segs = *s.segs;
  if (i == segs.size()) {
    if (!node->routes.empty()) {
      if (const Route* r = PickMethod(node->routes, s.method)) {
        s.route = r;
        s.params = params;
        return true;
      }
      s.path_matched = true;
      AddAllowed(node->routes, s.allowed);
    }
  } else {
    auto it = node->literals.find(segs[i]);
    if (it != node->literals.end() && Walk(it->second.get(), i + 1, s, params)) return true;
    if (node->param && !segs[i].empty()) {
      params.emplace_back(node->param_name, PercentDecode(segs[i]));
      if (Walk(node->param.get(), i + 1, s, params)) return true;
      params.pop_back();
    }
  }
  if (!node->rest_routes.empty()) {
    if (const Route* r = PickMethod(node->rest_routes, s.method)) {
      std::string rest;
      for (size_t j = i; j < segs.size(); ++j) {
        if (j > i) rest += '/';
        rest += segs[j];
      }
      s.route = r;
      s.params = params;
      s.params.emplace_back(node->rest_name, PercentDecode(rest));
      return true;
    }
    s.path_matched = true;
    AddAllowed(node->rest_routes, s.allowed);
  }
  return false;
}
}  // namespace

RouteMatch Router::Match(std::string_view method, std::string_view path) const {
  auto segs = SplitPath(path);
  Search s{.method = method, .segs = &segs};
  std::vector<std::pair<std::string, std::string>> params;
  RouteMatch m;
  if (Walk(root_.get(), 0, s, params)) {
    m.kind = RouteMatch::Kind::kFound;
    m.route = s.route;
    m.params = std::move(s.params);
  } else if (s.path_matched) {
    m.kind = RouteMatch::Kind::kMethodNotAllowed;
    m.allowed.assign(s.allowed.begin(), s.allowed.end());
  }
  return m;
}

std::vector<const Route*> Router::routes() const {
  std::vector<const Route*> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.push_back(r.get());
  return out;
}

}  // namespace atrium::http
