#include "atrium/http/cors.h"

namespace atrium::http {

bool CorsMiddleware::OriginAllowed(std::string_view origin) const {
  for (const auto& o : options_.allowed_origins) {
    if (o == "*" || o == origin) return true;
  }
  return false;
}

std::optional<Response> CorsMiddleware::OnRequest(Request& request) {
  if (request.method != "OPTIONS") return std::nullopt;
  auto origin = request.headers.Get("origin");
  if (!origin || !request.headers.Has("access-control-request-method")) return std::nullopt;
  Response res;
  res.status = 204;
  if (OriginAllowed(*origin)) {
    res.headers.Set("Access-Control-Allow-Methods", options_.allowed_methods);
    res.headers.Set("Access-Control-Allow-Headers", options_.allowed_headers);
    res.headers.Set("Access-Control-Max-Age", std::to_string(options_.max_age_seconds));
  }
  return res;
}

void CorsMiddleware::OnResponse(const Request& request, Response& response) {
  auto origin = request.headers.Get("origin");
  if (!origin || !OriginAllowed(*origin)) return;
  response.headers.Set("Access-Control-Allow-Origin", *origin);
  response.headers.Add("Vary", "Origin");
  if (options_.allow_credentials) {
    response.headers.Set("Access-Control-Allow-Credentials", "true");
  }
  if (!options_.exposed_headers.empty()) {
    response.headers.Set("Access-Control-Expose-Headers", options_.exposed_headers);
  }
}

}  // namespace atrium::http
