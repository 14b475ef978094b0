// libFuzzer target: HTTP/1.1 request parsing (Beast's parser with Atrium's limits) followed by
// routing and query decoding, as the server does for every request.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "atrium/http/router.h"

namespace {

atrium::http::Router& TheRouter() {
  static atrium::http::Router* router = [] {
    auto* r = new atrium::http::Router();
    auto h = atrium::http::SyncHandler(
        [](atrium::http::Request&) { return atrium::http::Response::Text(200, "x"); });
    (void)r->Add("GET", "/api/v1/chats/{id}/messages", h);
    (void)r->Add("POST", "/api/v1/chats/{id}/messages", h);
    (void)r->Add("GET", "/api/v1/runs/search", h);
    (void)r->Add("GET", "/api/v1/runs/{id}", h);
    (void)r->Add("GET", "/{path...}", h);
    return r;
  }();
  return *router;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace bhttp = boost::beast::http;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& req = parser.get();
  std::string_view target = req.target();
  size_t q = target.find('?');
  atrium::http::Request r;
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
  auto m = TheRouter().Match(req.method_string(), r.path);
  if (m.kind == atrium::http::RouteMatch::Kind::kFound) r.params = m.params;
  (void)r.QueryParams();
  (void)r.Query("a");
  return 0;
}
