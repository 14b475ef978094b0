// Principal: who a request acts for, as the AuthMiddleware puts it into http::Request::principal.
//
// Route scopes (RouteOptions::auth_scope):
//   ""         public, no credentials needed;
//   "session"  any authenticated principal (a user session or an API key);
//   "user"     a user session (JWT) only; API keys get 403;
//   anything else ("embed", "relay", "track:read", "track:write", "chat", "bus:publish",
//              "bus:subscribe", "admin"): a user session, or an API key whose scopes include it
//              (or "admin"). "track:write" keys also satisfy "track:read".
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace atrium::auth {

inline constexpr std::string_view kScopeSession = "session";
inline constexpr std::string_view kScopeUser = "user";
// Scopes an API key may carry.
inline constexpr std::string_view kKeyScopes[] = {
    "embed", "relay", "track:write", "track:read", "chat", "bus:publish", "bus:subscribe", "admin"};

struct Principal {
  std::string user_id;              // the user (the key's owner for API keys)
  std::string workspace_id;         // every query of the request is scoped by it
  std::string role;                 // role in the workspace: owner, admin, member
  std::string key_id;               // empty for user sessions
  std::vector<std::string> scopes;  // the key's scopes; empty for user sessions (all allowed)
  std::string jti;                  // the access token's id (user sessions)
  std::string session_id;           // the refresh-token family of the session (user sessions)
  int64_t token_expires_at = 0;     // seconds since the epoch (user sessions)
  int64_t key_rpm = 0;              // the key's own requests-per-minute limit; 0 = route class
  std::string tier;                 // the key's embed priority tier (free, basic, pro, enterprise)

  bool is_api_key() const { return !key_id.empty(); }
  bool is_workspace_admin() const { return role == "owner" || role == "admin"; }

  // Whether this principal may call a route with `scope` (see the file comment).
  bool Allows(std::string_view scope) const {
    if (scope.empty() || scope == kScopeSession) return true;
    if (scope == kScopeUser) return !is_api_key();
    if (!is_api_key()) return true;
    auto has = [this](std::string_view s) {
      return std::find(scopes.begin(), scopes.end(), s) != scopes.end();
    };
    if (has("admin") || has(scope)) return true;
    return scope == "track:read" && has("track:write");
  }
};

}  // namespace atrium::auth
