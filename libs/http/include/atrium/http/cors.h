// CorsMiddleware: Cross-Origin Resource Sharing for browser clients of the APIs.
//
// Answers preflight requests (OPTIONS with Access-Control-Request-Method) itself with 204 and adds
// Access-Control-Allow-Origin (the request's origin, echoed, with `Vary: Origin`) to responses for
// allowed origins. Origins not allowed get no CORS headers, so the browser blocks them.
// Thread-safe (immutable after construction).
#pragma once

#include <string>
#include <vector>

#include "atrium/http/server.h"

namespace atrium::http {

struct CorsOptions {
  // Exact origins ("https://app.example.com") or "*" for any.
  std::vector<std::string> allowed_origins;
  std::string allowed_methods = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
  std::string allowed_headers =
      "Authorization, Content-Type, X-Request-Id, X-Api-Key, X-CSRF-Token, Last-Event-ID, "
      "Idempotency-Key";
  std::string exposed_headers =
      "X-Request-Id, Retry-After, X-RateLimit-Limit, "
      "X-RateLimit-Remaining, X-RateLimit-Reset";
  int max_age_seconds = 600;
  bool allow_credentials = false;
};

class CorsMiddleware final : public Middleware {
 public:
  explicit CorsMiddleware(CorsOptions options) : options_(std::move(options)) {}
  std::optional<Response> OnRequest(Request& request) override;
  void OnResponse(const Request& request, Response& response) override;

  bool OriginAllowed(std::string_view origin) const;

 private:
  CorsOptions options_;
};

}  // namespace atrium::http
