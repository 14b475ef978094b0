// The HTTP handlers of the identity module. Wire shapes: docs/identity.md.
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>

#include "atrium/auth/auth_service.h"
#include "atrium/auth/crypto.h"
#include "auth_impl.h"

namespace atrium::auth {
namespace json = boost::json;
using http::Request;
using http::Response;

Status ValidateEmail(std::string_view email) {
  size_t at = email.find('@');
  bool ok = email.size() >= 3 && email.size() <= 254 && at != std::string_view::npos && at > 0 &&
            at + 1 < email.size() && email.find('@', at + 1) == std::string_view::npos;
  for (char c : email) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) ok = false;
  }
  return ok ? Status::Ok() : InvalidArgument("email is not a valid address");
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Result<json::object> ParseBody(const Request& req) {
  if (req.body.empty()) return json::object();
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) return InvalidArgument("the body must be a JSON object");
  return std::move(v.as_object());
}

// A string member; `required` makes absence an error. Wrong types are always errors.
Result<std::string> GetString(const json::object& o, std::string_view name, bool required,
                              size_t max_len = 1024) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) {
    if (required) return InvalidArgument(std::string(name) + " is required");
    return std::string();
  }
  if (!v->is_string()) return InvalidArgument(std::string(name) + " must be a string");
  if (v->as_string().size() > max_len) return InvalidArgument(std::string(name) + " is too long");
  return std::string(v->as_string());
}

Result<std::vector<std::string>> GetStringList(const json::object& o, std::string_view name) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return InvalidArgument(std::string(name) + " must be a list of strings");
  for (const auto& e : v->as_array()) {
    if (!e.is_string() || e.as_string().empty() || e.as_string().size() > 256) {
      return InvalidArgument(std::string(name) + " must be a list of non-empty strings");
    }
    out.emplace_back(e.as_string());
  }
  if (out.size() > 100) return InvalidArgument(std::string(name) + " has too many entries");
  return out;
}

Result<double> GetNumber(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return 0.0;
  if (!v->is_number()) return InvalidArgument(std::string(name) + " must be a number");
  double d = v->to_number<double>();
  if (d < 0) return InvalidArgument(std::string(name) + " must not be negative");
  return d;
}

Response Error(const Status& s) { return Response::FromStatus(s); }

// Expands to an early error return for handlers answering Response.
#define ASSIGN_OR_RETURN_RESPONSE(lhs, expr) \
  ASSIGN_OR_RETURN_RESPONSE_IMPL_(ATRIUM_CONCAT_(auth_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_RESPONSE_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return Error(tmp.status());            \
  lhs = std::move(tmp).value()

Response JsonReply(int status, const json::value& v) {
  return Response::Json(status, json::serialize(v));
}

json::value TimeOrNull(int64_t micros) {
  if (micros == 0) return nullptr;
  return json::value(FormatRfc3339(micros));
}

constexpr std::string_view kRefreshCookie = "atrium_refresh";
constexpr std::string_view kCsrfCookie = "atrium_csrf";

// The value of cookie `name` in the request's Cookie headers ("" when absent).
std::string CookieValue(const Request& req, std::string_view name) {
  for (const auto& [field, value] : req.headers.fields()) {
    if (!http::EqualsIgnoreCase(field, "cookie")) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view item = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      size_t eq = item.find('=');
      if (eq != std::string_view::npos && item.substr(0, eq) == name) {
        return std::string(item.substr(eq + 1));
      }
    }
  }
  return "";
}

// Whether the client asked for cookie mode ({"cookie": true}, the web UI).
bool WantsCookie(const json::object& body) {
  const auto* v = body.if_contains("cookie");
  return v != nullptr && v->is_bool() && v->as_bool();
}

void ClearSessionCookies(Response& r) {
  r.headers.Add("set-cookie", std::string(kRefreshCookie) +
                                  "=; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; "
                                  "Max-Age=0");
  r.headers.Add("set-cookie",
                std::string(kCsrfCookie) + "=; Secure; SameSite=Strict; Path=/; Max-Age=0");
}

const Principal* PrincipalOf(const Request& req) {
  return std::any_cast<Principal>(&req.principal);
}

json::object KeyJson(const ApiKey& k) {
  json::array scopes, models, tags;
  for (const auto& s : k.scopes) scopes.emplace_back(s);
  for (const auto& s : k.models) models.emplace_back(s);
  for (const auto& s : k.tags) tags.emplace_back(s);
  return json::object{
      {"id", k.id},
      {"name", k.name},
      {"prefix", k.prefix},
      {"workspace_id", k.workspace_id},
      {"owner_id", k.owner_id},
      {"scopes", std::move(scopes)},
      {"models", std::move(models)},
      {"rate_limit", json::object{{"rpm", k.rpm}, {"tpm", k.tpm}}},
      {"budget", json::object{{"daily", k.budget_daily},
                              {"weekly", k.budget_weekly},
                              {"monthly", k.budget_monthly},
                              {"total", k.budget_total}}},
      {"max_concurrency", k.max_concurrency},
      {"tier", k.tier},
      {"enabled", k.enabled},
      {"tags", std::move(tags)},
      {"expires_at", TimeOrNull(k.expires_at)},
      {"created_at", FormatRfc3339(k.created_at)},
      {"last_used_at", TimeOrNull(k.last_used_at)},
  };
}

// Handlers bound to the service implementation.
class Routes {
 public:
  explicit Routes(AuthService::Impl& impl) : s_(impl) {}

  // POST /api/v1/auth/register
  Response Register(Request& req) {
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto email, GetString(body, "email", true, 254));
    ASSIGN_OR_RETURN_RESPONSE(auto password, GetString(body, "password", true));
    ASSIGN_OR_RETURN_RESPONSE(auto name, GetString(body, "name", false, 200));
    ASSIGN_OR_RETURN_RESPONSE(auto invite, GetString(body, "invite_code", false, 200));
    if (Status st = ValidateEmail(email); !st.ok()) return Error(st);
    if (Status st = PasswordHasher::CheckPolicy(password); !st.ok()) return Error(st);
    ASSIGN_OR_RETURN_RESPONSE(auto hash, s_.hasher.Hash(password));
    int64_t now = s_.env.NowMicros();
    User user{.id = NewId(s_.env, "usr_"),
              .email = email,
              .name = name.empty() ? email.substr(0, email.find('@')) : name,
              .password_hash = std::move(hash),
              .created_at = now,
              .last_login_at = now};
    Membership m;
    if (!invite.empty()) {
      auto joined = s_.store.CreateUserWithInvite(user, Sha256Hex(invite), now);
      if (!joined.ok()) return Error(joined.status());
      m = *joined;
    } else {
      Workspace ws{.id = NewId(s_.env, "ws_"),
                   .name = user.name + "'s workspace",
                   .owner_id = user.id,
                   .created_at = now};
      if (Status st = s_.store.CreateUserWithWorkspace(user, ws); !st.ok()) return Error(st);
      m = Membership{.workspace_id = ws.id, .user_id = user.id, .role = "owner"};
    }
    s_.Audit(&req, nullptr,
             AuditRecord{.workspace_id = m.workspace_id,
                         .actor_type = "user",
                         .actor_id = user.id,
                         .action = invite.empty() ? "auth.register" : "invite.accept",
                         .resource_type = "user",
                         .resource_id = user.id,
                         .outcome = "success"});
    return SessionReply(201, user, m.workspace_id, m.role, "", 0, WantsCookie(body));
  }

  // POST /api/v1/auth/login
  Response Login(Request& req) {
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto email, GetString(body, "email", true, 254));
    ASSIGN_OR_RETURN_RESPONSE(auto password, GetString(body, "password", true));
    ASSIGN_OR_RETURN_RESPONSE(auto ws_wanted, GetString(body, "workspace_id", false, 100));
    // Attempts per account, whatever the client IP (the route class limits per IP).
    auto attempt = s_.limiter->Acquire("login-account|" + Lower(email), s_.options.login_attempts);
    if (attempt.ok() && !attempt->allowed) {
      s_.Audit(&req, nullptr,
               AuditRecord{.action = "auth.login",
                           .resource_type = "user",
                           .outcome = "denied",
                           .details = R"({"reason":"rate_limited"})"});
      Response r = Error(ResourceExhausted("too many login attempts; retry later"));
      SetRateLimitHeaders(*attempt, r.headers);
      return r;
    }
    // Unknown email and wrong password take the same path and time (dummy hash).
    Status invalid = Unauthenticated("invalid email or password");
    auto user = s_.store.FindUserByEmail(email);
    if (!user.ok() && user.status().code() != StatusCode::kNotFound) return Error(user.status());
    bool ok = user.ok() ? s_.hasher.Verify(password, user->password_hash)
                        : s_.hasher.VerifyDummy(password);
    if (!ok || user->status != "active") {
      std::string ws;
      if (user.ok()) {
        auto list = s_.store.ListWorkspaces(user->id);
        if (list.ok() && !list->empty()) ws = list->front().workspace_id;
      }
      s_.Audit(&req, nullptr,
               AuditRecord{.workspace_id = ws,
                           .actor_type = user.ok() ? "user" : "anonymous",
                           .actor_id = user.ok() ? user->id : "",
                           .action = "auth.login",
                           .resource_type = "user",
                           .resource_id = user.ok() ? user->id : "",
                           .outcome = "failure"});
      return Error(invalid);
    }
    ASSIGN_OR_RETURN_RESPONSE(auto list, s_.store.ListWorkspaces(user->id));
    if (list.empty()) return Error(PermissionDenied("the account belongs to no workspace"));
    const Membership* m = &list.front();
    if (!ws_wanted.empty()) {
      auto it = std::find_if(list.begin(), list.end(),
                             [&](const Membership& x) { return x.workspace_id == ws_wanted; });
      if (it == list.end()) return Error(NotFound("no such workspace"));
      m = &*it;
    }
    int64_t now = s_.env.NowMicros();
    (void)s_.store.TouchLogin(user->id, now);
    s_.Audit(&req, nullptr,
             AuditRecord{.workspace_id = m->workspace_id,
                         .actor_type = "user",
                         .actor_id = user->id,
                         .action = "auth.login",
                         .resource_type = "user",
                         .resource_id = user->id,
                         .outcome = "success"});
    return SessionReply(200, *user, m->workspace_id, m->role, "", 0, WantsCookie(body));
  }

  // POST /api/v1/auth/refresh
  Response Refresh(Request& req) {
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto token, GetString(body, "refresh_token", false, 200));
    bool cookie = false;
    if (token.empty()) {
      // Cookie mode: the browser sends the cookie on its own, so a CSRF token must prove that the
      // page itself asked (double submit: header equals the non-HttpOnly cookie).
      token = CookieValue(req, kRefreshCookie);
      if (token.empty()) return Error(InvalidArgument("refresh_token is required"));
      std::string csrf = CookieValue(req, kCsrfCookie);
      std::string header(req.headers.GetOr("x-csrf-token", ""));
      if (csrf.empty() || !ConstantTimeEquals(csrf, header)) {
        return Error(PermissionDenied("missing or wrong CSRF token (x-csrf-token)"));
      }
      cookie = true;
    }
    Status invalid = Unauthenticated("invalid refresh token");
    int64_t now = s_.env.NowMicros();
    auto rt = s_.store.FindRefreshToken(Sha256Hex(token));
    if (!rt.ok()) {
      return Error(rt.status().code() == StatusCode::kNotFound ? invalid : rt.status());
    }
    auto reuse = [&]() {
      (void)s_.store.RevokeFamily(rt->family_id, now);
      s_.Audit(&req, nullptr,
               AuditRecord{.workspace_id = rt->workspace_id,
                           .actor_type = "user",
                           .actor_id = rt->user_id,
                           .action = "auth.refresh_reuse",
                           .resource_type = "session",
                           .resource_id = rt->family_id,
                           .outcome = "denied"});
      if (s_.log) s_.log->warn("refresh token reuse detected; session family revoked");
      return Error(invalid);
    };
    if (rt->revoked_at != 0) return Error(invalid);
    if (rt->rotated_at != 0) return reuse();
    if (rt->expires_at <= now || rt->family_expires_at <= now) return Error(invalid);
    ASSIGN_OR_RETURN_RESPONSE(bool rotated, s_.store.MarkRotated(rt->token_hash, now));
    if (!rotated) return reuse();
    auto user = s_.store.FindUser(rt->user_id);
    if (!user.ok() || user->status != "active") return Error(invalid);
    auto m = s_.store.FindMembership(rt->workspace_id, rt->user_id);
    if (!m.ok()) return Error(invalid);
    return SessionReply(200, *user, rt->workspace_id, m->role, rt->family_id, rt->family_expires_at,
                        cookie);
  }

  // POST /api/v1/auth/logout
  Response Logout(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    int64_t now = s_.env.NowMicros();
    if (!p->session_id.empty()) {
      if (Status st = s_.store.RevokeFamily(p->session_id, now); !st.ok()) return Error(st);
    }
    Status st = s_.revocations.Revoke(
        Revocation{.id = "jti:" + p->jti,
                   .not_before = now,
                   .expires_at = (p->token_expires_at + JwtCodec::kLeewaySeconds + 1) * 1'000'000,
                   .created_at = now});
    if (!st.ok()) return Error(st);
    s_.Audit(&req, p,
             AuditRecord{.action = "auth.logout",
                         .resource_type = "session",
                         .resource_id = p->session_id,
                         .outcome = "success"});
    Response r = Response::NoContent();
    if (!CookieValue(req, kRefreshCookie).empty()) ClearSessionCookies(r);
    return r;
  }

  // POST /api/v1/auth/logout-all
  Response LogoutAll(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    if (Status st = RevokeAllSessions(p->user_id); !st.ok()) return Error(st);
    s_.Audit(&req, p,
             AuditRecord{.action = "auth.logout_all",
                         .resource_type = "user",
                         .resource_id = p->user_id,
                         .outcome = "success"});
    return Response::NoContent();
  }

  // GET /api/v1/auth/me
  Response Me(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto user, s_.store.FindUser(p->user_id));
    ASSIGN_OR_RETURN_RESPONSE(auto ws, s_.store.FindWorkspace(p->workspace_id));
    json::object out{{"user", json::object{{"id", user.id},
                                           {"email", user.email},
                                           {"name", user.name},
                                           {"platform_role", user.platform_role}}},
                     {"workspace", json::object{{"id", ws.id}, {"name", ws.name}}},
                     {"role", p->role}};
    if (p->is_api_key()) {
      json::array scopes;
      for (const auto& sc : p->scopes) scopes.emplace_back(sc);
      out["key"] = json::object{{"id", p->key_id}, {"scopes", std::move(scopes)}};
    }
    return JsonReply(200, out);
  }

  // POST /api/v1/auth/password {"current_password","new_password"}
  Response ChangePassword(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto current, GetString(body, "current_password", true));
    ASSIGN_OR_RETURN_RESPONSE(auto fresh, GetString(body, "new_password", true));
    ASSIGN_OR_RETURN_RESPONSE(auto user, s_.store.FindUser(p->user_id));
    if (!s_.hasher.Verify(current, user.password_hash)) {
      s_.Audit(&req, p,
               AuditRecord{.action = "auth.password_change",
                           .resource_type = "user",
                           .resource_id = user.id,
                           .outcome = "failure"});
      return Error(PermissionDenied("the current password is wrong"));
    }
    ASSIGN_OR_RETURN_RESPONSE(auto hash, s_.hasher.Hash(fresh));
    if (Status st = s_.store.SetPassword(user.id, hash); !st.ok()) return Error(st);
    // Every session ends, this one included: whoever knew the old password is out.
    if (Status st = RevokeAllSessions(user.id); !st.ok()) return Error(st);
    s_.Audit(&req, p,
             AuditRecord{.action = "auth.password_change",
                         .resource_type = "user",
                         .resource_id = user.id,
                         .outcome = "success"});
    return Response::NoContent();
  }

  // GET /api/v1/workspaces
  Response ListWorkspaces(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto list, s_.store.ListWorkspaces(p->user_id));
    json::array items;
    for (const auto& m : list) {
      items.push_back(
          json::object{{"id", m.workspace_id}, {"name", m.workspace_name}, {"role", m.role}});
    }
    return JsonReply(200, json::object{{"workspaces", std::move(items)}, {"next_cursor", nullptr}});
  }

  // POST /api/v1/workspaces {"name"}
  Response CreateWorkspace(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto name, GetString(body, "name", true, 200));
    if (name.empty()) return Error(InvalidArgument("name must not be empty"));
    Workspace ws{.id = NewId(s_.env, "ws_"),
                 .name = name,
                 .owner_id = p->user_id,
                 .created_at = s_.env.NowMicros()};
    if (Status st = s_.store.CreateWorkspace(ws); !st.ok()) return Error(st);
    s_.Audit(&req, p,
             AuditRecord{.workspace_id = ws.id,
                         .action = "workspace.create",
                         .resource_type = "workspace",
                         .resource_id = ws.id,
                         .outcome = "success"});
    return JsonReply(201, json::object{{"id", ws.id}, {"name", ws.name}, {"role", "owner"}});
  }

  // GET /api/v1/workspaces/{workspace_id}
  Response GetWorkspace(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto ws, s_.store.FindWorkspace(p->workspace_id));
    return JsonReply(200, json::object{{"id", ws.id},
                                       {"name", ws.name},
                                       {"owner_id", ws.owner_id},
                                       {"role", p->role},
                                       {"created_at", FormatRfc3339(ws.created_at)}});
  }

  // GET /api/v1/workspaces/{workspace_id}/members
  Response ListMembers(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto list, s_.store.ListMembers(p->workspace_id));
    json::array items;
    for (const auto& m : list) {
      items.push_back(json::object{{"user_id", m.user_id},
                                   {"email", m.email},
                                   {"name", m.name},
                                   {"role", m.role},
                                   {"joined_at", FormatRfc3339(m.created_at)}});
    }
    return JsonReply(200, json::object{{"members", std::move(items)}, {"next_cursor", nullptr}});
  }

  // PATCH /api/v1/workspaces/{workspace_id}/members/{user_id} {"role": "admin"|"member"}
  // Owners and admins change the role of any member but the owner. The member's access tokens
  // issued before the change are revoked, so the new role applies at once (clients refresh).
  Response UpdateMember(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    std::string user_id(req.Param("user_id"));
    AuditRecord audit{.action = "member.update",
                      .resource_type = "member",
                      .resource_id = user_id,
                      .outcome = "denied"};
    if (!p->is_workspace_admin()) {
      s_.Audit(&req, p, audit);
      return Error(PermissionDenied("only workspace owners and admins can change roles"));
    }
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto role, GetString(body, "role", true, 20));
    if (role != "admin" && role != "member") {
      return Error(InvalidArgument("role: must be \"admin\" or \"member\" (got \"" + role + "\")"));
    }
    ASSIGN_OR_RETURN_RESPONSE(auto m, s_.store.FindMembership(p->workspace_id, user_id));
    if (m.role == "owner") {
      s_.Audit(&req, p, audit);
      return Error(PermissionDenied("the owner's role cannot be changed"));
    }
    if (Status st = s_.store.SetMemberRole(p->workspace_id, user_id, role); !st.ok()) {
      return Error(st);
    }
    if (Status st = RevokeAccessTokens(user_id); !st.ok()) return Error(st);
    audit.outcome = "success";
    audit.details = json::serialize(json::object{{"role", role}});
    s_.Audit(&req, p, audit);
    return JsonReply(200, json::object{{"user_id", user_id}, {"role", role}});
  }

  // DELETE /api/v1/workspaces/{workspace_id}/members/{user_id}
  // Owners and admins remove members; any member may remove itself (leave). The owner stays.
  Response RemoveMember(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    std::string user_id(req.Param("user_id"));
    AuditRecord audit{.action = "member.remove",
                      .resource_type = "member",
                      .resource_id = user_id,
                      .outcome = "denied"};
    bool self = !p->is_api_key() && user_id == p->user_id;
    if (!self && !p->is_workspace_admin()) {
      s_.Audit(&req, p, audit);
      return Error(PermissionDenied("only workspace owners and admins can remove members"));
    }
    ASSIGN_OR_RETURN_RESPONSE(auto m, s_.store.FindMembership(p->workspace_id, user_id));
    if (m.role == "owner") {
      s_.Audit(&req, p, audit);
      return Error(PermissionDenied("the owner cannot be removed from the workspace"));
    }
    if (Status st = s_.store.RemoveMember(p->workspace_id, user_id); !st.ok()) return Error(st);
    if (Status st = RevokeAccessTokens(user_id); !st.ok()) return Error(st);
    audit.outcome = "success";
    s_.Audit(&req, p, audit);
    return Response::NoContent();
  }

  // POST /api/v1/workspaces/{workspace_id}/invites {"email"?, "role"}
  Response CreateInvite(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    if (!p->is_workspace_admin()) {
      s_.Audit(&req, p,
               AuditRecord{.action = "invite.create",
                           .resource_type = "workspace",
                           .resource_id = p->workspace_id,
                           .outcome = "denied"});
      return Error(PermissionDenied("only workspace owners and admins can invite"));
    }
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto email, GetString(body, "email", false, 254));
    ASSIGN_OR_RETURN_RESPONSE(auto role, GetString(body, "role", false, 20));
    if (role.empty()) role = "member";
    if (role != "member" && role != "admin") {
      return Error(InvalidArgument("role must be member or admin"));
    }
    if (!email.empty()) {
      if (Status st = ValidateEmail(email); !st.ok()) return Error(st);
    }
    std::string code = "inv_" + Base62Encode(RandomBytes(s_.env, 24));
    int64_t now = s_.env.NowMicros();
    Invite inv{.code_hash = Sha256Hex(code),
               .workspace_id = p->workspace_id,
               .email = email,
               .role = role,
               .created_by = p->user_id,
               .created_at = now,
               .expires_at = now + s_.options.invite_ttl.count() * 1'000'000};
    if (Status st = s_.store.CreateInvite(inv); !st.ok()) return Error(st);
    s_.Audit(&req, p,
             AuditRecord{.action = "invite.create",
                         .resource_type = "workspace",
                         .resource_id = p->workspace_id,
                         .outcome = "success",
                         .details = json::serialize(json::object{{"role", role}})});
    return JsonReply(
        201, json::object{
                 {"code", code}, {"role", role}, {"expires_at", FormatRfc3339(inv.expires_at)}});
  }

  // POST /api/v1/invites/accept {"code"}
  Response AcceptInvite(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ASSIGN_OR_RETURN_RESPONSE(auto code, GetString(body, "code", true, 200));
    ASSIGN_OR_RETURN_RESPONSE(auto user, s_.store.FindUser(p->user_id));
    auto m = s_.store.AcceptInvite(Sha256Hex(code), user.id, user.email, s_.env.NowMicros());
    if (!m.ok()) {
      s_.Audit(
          &req, p,
          AuditRecord{.action = "invite.accept", .resource_type = "invite", .outcome = "failure"});
      return Error(m.status());
    }
    ASSIGN_OR_RETURN_RESPONSE(auto ws, s_.store.FindWorkspace(m->workspace_id));
    s_.Audit(&req, p,
             AuditRecord{.workspace_id = ws.id,
                         .action = "invite.accept",
                         .resource_type = "workspace",
                         .resource_id = ws.id,
                         .outcome = "success"});
    return JsonReply(200,
                     json::object{{"workspace", json::object{{"id", ws.id}, {"name", ws.name}}},
                                  {"role", m->role}});
  }

  // POST /api/v1/keys
  Response CreateKey(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto body, ParseBody(req));
    ApiKey k;
    ASSIGN_OR_RETURN_RESPONSE(k.name, GetString(body, "name", true, 200));
    ASSIGN_OR_RETURN_RESPONSE(k.scopes, GetStringList(body, "scopes"));
    ASSIGN_OR_RETURN_RESPONSE(k.models, GetStringList(body, "models"));
    ASSIGN_OR_RETURN_RESPONSE(k.tags, GetStringList(body, "tags"));
    ASSIGN_OR_RETURN_RESPONSE(auto tier, GetString(body, "tier", false, 20));
    ASSIGN_OR_RETURN_RESPONSE(auto expires, GetString(body, "expires_at", false, 64));
    if (k.scopes.empty()) return Error(InvalidArgument("scopes must name at least one scope"));
    for (const auto& sc : k.scopes) {
      if (std::find(std::begin(kKeyScopes), std::end(kKeyScopes), sc) == std::end(kKeyScopes)) {
        return Error(InvalidArgument(
            "unknown scope '" + sc +
            "' (embed, relay, track:write, track:read, chat, bus:publish, bus:subscribe, admin)"));
      }
    }
    if (std::find(k.scopes.begin(), k.scopes.end(), "admin") != k.scopes.end() &&
        !p->is_workspace_admin()) {
      return Error(PermissionDenied("only workspace owners and admins can create admin keys"));
    }
    if (!tier.empty()) {
      if (tier != "free" && tier != "basic" && tier != "pro" && tier != "enterprise") {
        return Error(InvalidArgument("tier must be free, basic, pro or enterprise"));
      }
      k.tier = tier;
    }
    int64_t now = s_.env.NowMicros();
    if (!expires.empty()) {
      ASSIGN_OR_RETURN_RESPONSE(k.expires_at, ParseRfc3339(expires));
      if (k.expires_at <= now) return Error(InvalidArgument("expires_at must be in the future"));
    }
    if (const auto* rl = body.if_contains("rate_limit"); rl != nullptr && !rl->is_null()) {
      if (!rl->is_object()) return Error(InvalidArgument("rate_limit must be an object"));
      ASSIGN_OR_RETURN_RESPONSE(double rpm, GetNumber(rl->as_object(), "rpm"));
      ASSIGN_OR_RETURN_RESPONSE(double tpm, GetNumber(rl->as_object(), "tpm"));
      k.rpm = static_cast<int64_t>(rpm);
      k.tpm = static_cast<int64_t>(tpm);
    }
    if (const auto* b = body.if_contains("budget"); b != nullptr && !b->is_null()) {
      if (!b->is_object()) return Error(InvalidArgument("budget must be an object"));
      ASSIGN_OR_RETURN_RESPONSE(k.budget_daily, GetNumber(b->as_object(), "daily"));
      ASSIGN_OR_RETURN_RESPONSE(k.budget_weekly, GetNumber(b->as_object(), "weekly"));
      ASSIGN_OR_RETURN_RESPONSE(k.budget_monthly, GetNumber(b->as_object(), "monthly"));
      ASSIGN_OR_RETURN_RESPONSE(k.budget_total, GetNumber(b->as_object(), "total"));
    }
    ASSIGN_OR_RETURN_RESPONSE(double conc, GetNumber(body, "max_concurrency"));
    k.max_concurrency = static_cast<int64_t>(conc);
    std::string secret = std::string(kApiKeyPrefix) + Base62Encode(RandomBytes(s_.env, 32));
    k.id = NewId(s_.env, "key_");
    k.key_hash = Sha256Hex(secret);
    k.prefix = secret.substr(0, 10);
    k.workspace_id = p->workspace_id;
    k.owner_id = p->user_id;
    k.created_at = now;
    if (Status st = s_.store.InsertApiKey(k); !st.ok()) return Error(st);
    s_.Audit(&req, p,
             AuditRecord{.action = "key.create",
                         .resource_type = "api_key",
                         .resource_id = k.id,
                         .outcome = "success"});
    json::object out = KeyJson(k);
    out["key"] = secret;  // the only time the secret is shown
    return JsonReply(201, out);
  }

  // GET /api/v1/keys
  Response ListKeys(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto keys, s_.store.ListApiKeys(p->workspace_id));
    json::array items;
    for (const auto& k : keys) items.push_back(KeyJson(k));
    return JsonReply(200, json::object{{"keys", std::move(items)}, {"next_cursor", nullptr}});
  }

  // GET /api/v1/keys/{key_id}
  Response GetKey(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    ASSIGN_OR_RETURN_RESPONSE(auto k, s_.store.FindApiKey(p->workspace_id, req.Param("key_id")));
    return JsonReply(200, KeyJson(k));
  }

  // DELETE /api/v1/keys/{key_id}
  Response DeleteKey(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    std::string id(req.Param("key_id"));
    ASSIGN_OR_RETURN_RESPONSE(auto k, s_.store.FindApiKey(p->workspace_id, id));
    if (k.owner_id != p->user_id && !p->is_workspace_admin()) {
      s_.Audit(&req, p,
               AuditRecord{.action = "key.delete",
                           .resource_type = "api_key",
                           .resource_id = id,
                           .outcome = "denied"});
      return Error(PermissionDenied("only the key's owner or a workspace admin can revoke it"));
    }
    if (Status st = s_.store.DeleteApiKey(p->workspace_id, id); !st.ok()) return Error(st);
    s_.ForgetKey(id);
    s_.Audit(&req, p,
             AuditRecord{.action = "key.delete",
                         .resource_type = "api_key",
                         .resource_id = id,
                         .outcome = "success"});
    return Response::NoContent();
  }

  // GET /api/v1/audit/logs
  Response AuditLogs(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    if (Status st = RequireAuditReader(*p); !st.ok()) return Error(st);
    AuditQuery q;
    q.workspace_id = p->workspace_id;
    q.actor_id = req.Query("actor").value_or("");
    q.action = req.Query("action").value_or("");
    q.resource_type = req.Query("resource_type").value_or("");
    q.resource_id = req.Query("resource_id").value_or("");
    q.outcome = req.Query("outcome").value_or("");
    ASSIGN_OR_RETURN_RESPONSE(q.since, TimeParam(req, "since"));
    ASSIGN_OR_RETURN_RESPONSE(q.until, TimeParam(req, "until"));
    if (auto c = req.Query("cursor"); c && !c->empty()) {
      try {
        q.before_id = std::stoll(*c);
      } catch (...) {
        return Error(InvalidArgument("cursor is malformed"));
      }
    }
    if (auto l = req.Query("limit"); l && !l->empty()) {
      try {
        q.limit = std::stoi(*l);
      } catch (...) {
        return Error(InvalidArgument("limit must be a number"));
      }
    }
    ASSIGN_OR_RETURN_RESPONSE(auto page, s_.sql_audit->Query(q));
    json::array items;
    for (const auto& r : page.records) {
      boost::system::error_code ec;
      json::value details = json::parse(r.details, ec);
      if (ec) details = json::object();
      items.push_back(
          json::object{{"id", std::to_string(r.id)},
                       {"time", FormatRfc3339(r.at)},
                       {"workspace_id", r.workspace_id},
                       {"actor", json::object{{"type", r.actor_type}, {"id", r.actor_id}}},
                       {"action", r.action},
                       {"resource", json::object{{"type", r.resource_type}, {"id", r.resource_id}}},
                       {"ip", r.ip},
                       {"user_agent", r.user_agent},
                       {"outcome", r.outcome},
                       {"details", std::move(details)}});
    }
    json::value cursor = nullptr;
    if (page.next_cursor != 0) cursor = std::to_string(page.next_cursor);
    return JsonReply(200, json::object{{"logs", std::move(items)}, {"next_cursor", cursor}});
  }

  // GET /api/v1/audit/stats
  Response AuditStatsReply(Request& req) {
    const Principal* p = PrincipalOf(req);
    if (p == nullptr) return Error(Unauthenticated("authentication required"));
    if (Status st = RequireAuditReader(*p); !st.ok()) return Error(st);
    ASSIGN_OR_RETURN_RESPONSE(int64_t since, TimeParam(req, "since"));
    ASSIGN_OR_RETURN_RESPONSE(int64_t until, TimeParam(req, "until"));
    ASSIGN_OR_RETURN_RESPONSE(auto stats, s_.sql_audit->Stats(p->workspace_id, since, until));
    json::object by_action, by_outcome;
    for (const auto& [k, v] : stats.by_action) by_action[k] = v;
    for (const auto& [k, v] : stats.by_outcome) by_outcome[k] = v;
    return JsonReply(200, json::object{{"total", stats.total},
                                       {"by_action", std::move(by_action)},
                                       {"by_outcome", std::move(by_outcome)}});
  }

 private:
  Result<int64_t> TimeParam(const Request& req, std::string_view name) {
    auto v = req.Query(name);
    if (!v || v->empty()) return int64_t{0};
    return ParseRfc3339(*v);
  }

  Status RequireAuditReader(const Principal& p) {
    if (p.is_api_key()) {
      return p.Allows("admin") ? Status::Ok() : PermissionDenied("the audit log needs admin");
    }
    if (p.is_workspace_admin()) return Status::Ok();
    auto user = s_.store.FindUser(p.user_id);
    if (user.ok() && user->platform_role == "admin") return Status::Ok();
    return PermissionDenied("the audit log is for workspace owners and admins");
  }

  Status RevokeAllSessions(const std::string& user_id) {
    RETURN_IF_ERROR(s_.store.RevokeUserRefreshTokens(user_id, s_.env.NowMicros()));
    return RevokeAccessTokens(user_id);
  }

  // Revokes every access token of the user issued so far; its refresh tokens stay valid, so its
  // clients get fresh tokens (with the current roles and memberships) on their next refresh.
  Status RevokeAccessTokens(const std::string& user_id) {
    int64_t now = s_.env.NowMicros();
    // Tokens issued up to the end of this second are revoked (iat has second precision);
    // tokens issued afterwards get iat >= not_before (see SessionReply).
    int64_t not_before = (now / 1'000'000 + 1) * 1'000'000;
    return s_.revocations.Revoke(Revocation{
        .id = "user:" + user_id,
        .not_before = not_before,
        .expires_at =
            not_before + (s_.options.access_ttl.count() + JwtCodec::kLeewaySeconds + 1) * 1'000'000,
        .created_at = now});
  }

  // Issues an access token and a refresh token (a new family when `family` is empty).
  // In cookie mode the refresh token travels only in an HttpOnly cookie (the body has null) and
  // a CSRF token is set as a readable cookie and returned as "csrf_token".
  Response SessionReply(int status, const User& user, const std::string& workspace_id,
                        const std::string& role, std::string family, int64_t family_expires,
                        bool cookie) {
    int64_t now = s_.env.NowMicros();
    auto ws = s_.store.FindWorkspace(workspace_id);
    if (!ws.ok()) return Error(ws.status());
    std::string refresh = "rt_" + Base62Encode(RandomBytes(s_.env, 32));
    if (family.empty()) {
      family = NewId(s_.env, "ses_");
      family_expires = now + s_.options.refresh_max_age.count() * 1'000'000;
    }
    RefreshToken rt{
        .token_hash = Sha256Hex(refresh),
        .family_id = family,
        .user_id = user.id,
        .workspace_id = workspace_id,
        .created_at = now,
        .expires_at = std::min(now + s_.options.refresh_ttl.count() * 1'000'000, family_expires),
        .family_expires_at = family_expires};
    if (Status st = s_.store.InsertRefreshToken(rt); !st.ok()) return Error(st);
    int64_t iat = std::max(now, s_.revocations.UserNotBefore(user.id)) / 1'000'000;
    JwtClaims c{.sub = user.id,
                .ws = workspace_id,
                .role = role,
                .jti = NewId(s_.env, "jti_"),
                .sid = family,
                .iat = iat,
                .exp = iat + s_.options.access_ttl.count()};
    json::object out{
        {"user", json::object{{"id", user.id}, {"email", user.email}, {"name", user.name}}},
        {"workspace", json::object{{"id", ws->id}, {"name", ws->name}}},
        {"role", role},
        {"access_token", s_.jwt.Sign(c)},
        {"refresh_token", refresh},
        {"token_type", "Bearer"},
        {"expires_in", s_.options.access_ttl.count()}};
    if (!cookie) return JsonReply(status, out);
    std::string csrf = Base64UrlEncode(RandomBytes(s_.env, 24));
    out["refresh_token"] = nullptr;
    out["csrf_token"] = csrf;
    Response r = JsonReply(status, out);
    std::string max_age = std::to_string(std::max<int64_t>(0, (rt.expires_at - now) / 1'000'000));
    r.headers.Add("set-cookie", std::string(kRefreshCookie) + "=" + refresh +
                                    "; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; "
                                    "Max-Age=" +
                                    max_age);
    r.headers.Add("set-cookie", std::string(kCsrfCookie) + "=" + csrf +
                                    "; Secure; SameSite=Strict; Path=/; Max-Age=" + max_age);
    return r;
  }

  AuthService::Impl& s_;
};

}  // namespace

Status AuthService::AddRoutes(http::Router& router) {
  auto routes = std::make_shared<Routes>(*impl_);
  struct Def {
    const char* method;
    const char* pattern;
    Response (Routes::*fn)(Request&);
    const char* scope;
    const char* rate_class;
  };
  static constexpr Def kRoutes[] = {
      {"POST", "/api/v1/auth/register", &Routes::Register, "", "auth"},
      {"POST", "/api/v1/auth/login", &Routes::Login, "", "login"},
      {"POST", "/api/v1/auth/refresh", &Routes::Refresh, "", "auth"},
      {"POST", "/api/v1/auth/logout", &Routes::Logout, "user", ""},
      {"POST", "/api/v1/auth/logout-all", &Routes::LogoutAll, "user", ""},
      {"GET", "/api/v1/auth/me", &Routes::Me, "session", "api"},
      {"POST", "/api/v1/auth/password", &Routes::ChangePassword, "user", "auth"},
      {"GET", "/api/v1/workspaces", &Routes::ListWorkspaces, "user", "api"},
      {"POST", "/api/v1/workspaces", &Routes::CreateWorkspace, "user", "api"},
      {"GET", "/api/v1/workspaces/{workspace_id}", &Routes::GetWorkspace, "user", "api"},
      {"GET", "/api/v1/workspaces/{workspace_id}/members", &Routes::ListMembers, "user", "api"},
      {"PATCH", "/api/v1/workspaces/{workspace_id}/members/{user_id}", &Routes::UpdateMember,
       "user", "api"},
      {"DELETE", "/api/v1/workspaces/{workspace_id}/members/{user_id}", &Routes::RemoveMember,
       "user", "api"},
      {"POST", "/api/v1/workspaces/{workspace_id}/invites", &Routes::CreateInvite, "user", "api"},
      {"POST", "/api/v1/invites/accept", &Routes::AcceptInvite, "user", "auth"},
      {"POST", "/api/v1/keys", &Routes::CreateKey, "user", "api"},
      {"GET", "/api/v1/keys", &Routes::ListKeys, "user", "api"},
      {"GET", "/api/v1/keys/{key_id}", &Routes::GetKey, "user", "api"},
      {"DELETE", "/api/v1/keys/{key_id}", &Routes::DeleteKey, "user", "api"},
      {"GET", "/api/v1/audit/logs", &Routes::AuditLogs, "admin", "api"},
      {"GET", "/api/v1/audit/stats", &Routes::AuditStatsReply, "admin", "api"},
  };
  for (const Def& d : kRoutes) {
    auto fn = d.fn;
    http::RouteOptions opts{.max_body_bytes = 64 * 1024,
                            .blocking = true,
                            .timeout = std::chrono::seconds(30),
                            .auth_scope = d.scope,
                            .rate_limit_class = d.rate_class};
    RETURN_IF_ERROR(router.Add(
        d.method, d.pattern,
        http::SyncHandler([routes, fn](Request& req) { return ((*routes).*fn)(req); }), opts));
  }
  return Status::Ok();
}

}  // namespace atrium::auth
