// libFuzzer target: HTTP/1.1 request parsing (the server's RequestParser: Beast's parser writing
// into Atrium's Headers, with Atrium's limits) followed by routing and query decoding, as the
// server does for every request.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/asio/buffer.hpp>

#include "atrium/http/router.h"
#include "message_parser.h"

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
  atrium::http::internal::RequestParser parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  (void)atrium::http::internal::ExpectsContinue(parser.headers());
  (void)parser.headers().Get("x-request-id");
  std::string_view target = parser.target();
  size_t q = target.find('?');
  atrium::http::Request r;
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
  r.headers = std::move(parser.headers());
  r.body = std::move(parser.body());
  auto m = TheRouter().Match(parser.method(), r.path);
  if (m.kind == atrium::http::RouteMatch::Kind::kFound) r.params = m.params;
  (void)r.QueryParams();
  (void)r.Query("a");
  return 0;
}
