#include "atrium/http/handler.h"

#include "atrium/http/router.h"

namespace atrium::http {

std::string_view Request::Param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

namespace {

template <typename Fn>
void ForEachQueryParam(std::string_view q, Fn&& fn) {
  size_t start = 0;
  while (start <= q.size() && !q.empty()) {
    size_t amp = q.find('&', start);
    std::string_view pair = q.substr(start, amp == std::string_view::npos ? amp : amp - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string_view k = pair.substr(0, eq);
      std::string_view v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      if (fn(k, v)) return;
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
}

}  // namespace

std::optional<std::string> Request::Query(std::string_view name) const {
  std::optional<std::string> out;
  ForEachQueryParam(query, [&](std::string_view k, std::string_view v) {
    if (PercentDecode(k, true) != name) return false;
    out = PercentDecode(v, true);
    return true;
  });
  return out;
}

std::vector<std::pair<std::string, std::string>> Request::QueryParams() const {
  std::vector<std::pair<std::string, std::string>> out;
  ForEachQueryParam(query, [&](std::string_view k, std::string_view v) {
    out.emplace_back(PercentDecode(k, true), PercentDecode(v, true));
    return false;
  });
  return out;
}

Response Response::Json(int status, std::string json) {
  Response r;
  r.status = status;
  r.headers.Set("Content-Type", "application/json");
  r.body = std::move(json);
  return r;
}

Response Response::Text(int status, std::string text, std::string_view content_type) {
  Response r;
  r.status = status;
  r.headers.Set("Content-Type", content_type);
  r.body = std::move(text);
  return r;
}

Response Response::FromStatus(const Status& status) {
  Response r;
  r.status = HttpStatusOf(status.code());
  r.headers.Set("Content-Type", "application/json");
  r.error = status.ok() ? Internal("FromStatus called with an ok status") : status;
  return r;
}

}  // namespace atrium::http
