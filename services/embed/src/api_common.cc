#include "api_common.h"

#include <algorithm>
#include <any>
#include <cmath>
#include <cstring>
#include <iterator>

#include <fmt/format.h>

#include "atrium/auth/principal.h"
#include "atrium/core/base64.h"
#include "atrium/core/strings.h"

namespace atrium::embed::api {

Result<json::object> ParseObject(std::string_view body) {
  if (body.empty()) return InvalidArgument("body: a JSON object is required");
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return InvalidArgument("body: invalid JSON (" + ec.message() + ")");
  if (!v.is_object()) return InvalidArgument("body: must be a JSON object");
  return std::move(v.as_object());
}

Status ReadBool(const json::object& o, std::string_view name, bool& out) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return Status::Ok();
  if (!v->is_bool()) return InvalidArgument(std::string(name) + ": must be true or false");
  out = v->as_bool();
  return Status::Ok();
}

Status ReadString(const json::object& o, std::string_view name, std::string& out) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return Status::Ok();
  if (!v->is_string()) return InvalidArgument(std::string(name) + ": must be a string");
  out = std::string(v->as_string());
  return Status::Ok();
}

Status ReadSize(const json::object& o, std::string_view name, size_t& out, size_t min) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return Status::Ok();
  if (!v->is_int64() && !v->is_uint64()) {
    return InvalidArgument(std::string(name) + ": must be an integer");
  }
  if (v->is_int64() && v->as_int64() < static_cast<int64_t>(min)) {
    return InvalidArgument(fmt::format("{}: must be at least {}", name, min));
  }
  out = v->is_int64() ? static_cast<size_t>(v->as_int64()) : static_cast<size_t>(v->as_uint64());
  return Status::Ok();
}

namespace {

Result<std::vector<int32_t>> TokenIds(const json::array& a, std::string_view field) {
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (const auto& e : a) {
    if (!e.is_int64() && !e.is_uint64()) {
      return InvalidArgument(std::string(field) + ": token ids must be integers");
    }
    int64_t id = e.is_int64() ? e.as_int64() : static_cast<int64_t>(e.as_uint64());
    if (id < 0 || id > INT32_MAX) {
      return InvalidArgument(fmt::format("{}: token id {} is out of range", field, id));
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

}  // namespace

Status ReadInputs(const json::value& value, std::string_view field, EmbedCall& call) {
  std::string f(field);
  if (value.is_string()) {
    call.texts.emplace_back(value.as_string());
    return Status::Ok();
  }
  if (!value.is_array()) {
    return InvalidArgument(f +
                           ": must be a string, an array of strings, an array of token ids "
                           "or an array of token-id arrays");
  }
  const auto& a = value.as_array();
  if (a.empty()) return InvalidArgument(f + ": must not be empty");
  if (a.front().is_string()) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_string()) {
        return InvalidArgument(fmt::format("{}[{}]: every element must be a string", f, i));
      }
      call.texts.emplace_back(a[i].as_string());
    }
    return Status::Ok();
  }
  if (a.front().is_number()) {
    ASSIGN_OR_RETURN(auto ids, TokenIds(a, f));
    call.token_inputs.push_back(std::move(ids));
    return Status::Ok();
  }
  if (a.front().is_array()) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_array()) {
        return InvalidArgument(
            fmt::format("{}[{}]: every element must be an array of token ids", f, i));
      }
      ASSIGN_OR_RETURN(auto ids, TokenIds(a[i].as_array(), fmt::format("{}[{}]", f, i)));
      call.token_inputs.push_back(std::move(ids));
    }
    return Status::Ok();
  }
  return InvalidArgument(f + ": elements must be strings or token ids");
}

Status ApplyCaller(const http::Request& request, const json::object& body,
                   const http::Responder& responder, EmbedCall& call) {
  std::string priority(request.headers.GetOr("x-priority", ""));
  RETURN_IF_ERROR(ReadString(body, "priority", priority));
  const auto* principal = std::any_cast<auth::Principal>(&request.principal);
  if (!priority.empty()) {
    ASSIGN_OR_RETURN(call.priority, ParsePriority(AsciiToLower(priority)));
    // Only administrators may jump the queue ahead of everyone.
    bool admin = principal == nullptr || principal->Allows("admin");
    if (call.priority == Priority::kCritical && !admin) call.priority = Priority::kHigh;
  }
  if (principal != nullptr && principal->is_api_key())
    call.tier_weight = TierWeight(principal->tier);
  call.abandoned = [responder] { return responder.Abandoned(); };
  return Status::Ok();
}

Status ReadLongInput(const json::object& o, bool truncate_default, EmbedCall& call) {
  bool truncate = truncate_default;
  RETURN_IF_ERROR(ReadBool(o, "truncate", truncate));
  call.long_input = truncate ? LongInput::kTruncate : LongInput::kError;
  std::string mode;
  RETURN_IF_ERROR(ReadString(o, "long_input", mode));
  if (mode == "chunk") {
    call.long_input = LongInput::kChunk;
  } else if (mode == "truncate") {
    call.long_input = LongInput::kTruncate;
  } else if (mode == "error") {
    call.long_input = LongInput::kError;
  } else if (!mode.empty()) {
    return InvalidArgument("long_input: expected truncate, chunk or error");
  }
  std::string direction;
  RETURN_IF_ERROR(ReadString(o, "truncation_direction", direction));
  direction = AsciiToLower(direction);
  if (direction == "left") {
    call.truncate_left = true;
  } else if (!direction.empty() && direction != "right") {
    return InvalidArgument("truncation_direction: expected Right or Left");
  }
  return Status::Ok();
}

void AppendVector(std::string& out, const std::vector<float>& v) {
  out.push_back('[');
  auto it = std::back_inserter(out);
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.push_back(',');
    fmt::format_to(it, "{}", v[i]);
  }
  out.push_back(']');
}

void AppendBase64Vector(std::string& out, const std::vector<float>& v) {
  std::string bytes(v.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());  // x86-64 and aarch64 are little-endian
  out.push_back('"');
  out += Base64Encode(bytes);
  out.push_back('"');
}

std::string FieldOf(const Status& status) {
  const std::string& m = status.message();
  size_t colon = m.find(':');
  if (colon == std::string::npos || colon == 0) return "";
  std::string_view head(m.data(), colon);
  for (char c : head) {
    if (c == ' ') return "";
  }
  size_t bracket = head.find('[');
  return std::string(bracket == std::string_view::npos ? head : head.substr(0, bracket));
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return 0;
  return dot / std::sqrt(na * nb);
}

std::chrono::steady_clock::time_point DeadlineFor(const EmbedService& service) {
  return std::chrono::steady_clock::now() + service.options().request_timeout;
}

http::RouteOptions EmbedRouteOptions(const EmbedService& service) {
  return http::RouteOptions{
      .max_body_bytes = service.options().max_body_bytes,
      .blocking = true,  // tokenization of large batches stays off the I/O threads
      .run_inline = [&service](http::Request& req) { return service.AdmitsInline(req); },
      .timeout = service.options().request_timeout + std::chrono::seconds(1),
      .auth_scope = service.options().public_access ? "" : "embed",
      .rate_limit_class = "embed",
  };
}

}  // namespace atrium::embed::api
