// End-to-end tests of the auth routes on a real http::Server (port 0): the generated security
// matrix over every registered route, and the register/login/refresh/logout/key/invite flows.
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <thread>

#include <boost/json.hpp>
#include <cctype>
#include <sstream>

#include "atrium/auth/auth_service.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "test_db.h"

namespace atrium::auth {
namespace {
namespace json = boost::json;
using testing::Backend;

struct Reply {
  int status = 0;
  http::Headers headers;
  json::value body;
  std::string raw;
};

struct Session {
  std::string user_id, workspace_id, access, refresh;
};

class AuthHttpTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    db_ = testing::OpenTestDatabase(GetParam(), tmp_, "auth_http_test");
    if (db_ == nullptr) GTEST_SKIP() << "PostgreSQL not configured (run through ctest, fixture pg)";
    log_sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_stream_);
    auto logger = std::make_shared<spdlog::logger>("auth", log_sink_);
    logger->set_level(spdlog::level::trace);
    AuthOptions o;
    o.jwt_secret = std::string(40, 's');
    o.password_cost = PasswordCost::kTest;
    o.revocation_sync = std::chrono::milliseconds(0);
    o.rate_limits = {{"auth", *ParseRateLimit("1000/1m")},
                     {"login", *ParseRateLimit("1000/1m")},
                     {"api", *ParseRateLimit("1000/1m")}};
    o.login_attempts = *ParseRateLimit("5/1m");
    auto svc = AuthService::Create(o, *db_, Env::Default(), nullptr, nullptr, logger);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    auth_ = std::move(*svc);
    http::Router router;
    ASSERT_TRUE(auth_->AddRoutes(router).ok());
    // A route of another service, audited, to show declarative use by other modules.
    ASSERT_TRUE(router
                    .Add("GET", "/api/v1/test/embed-only",
                         http::SyncHandler([](http::Request&) { return http::OkJson(); }),
                         {.blocking = true, .auth_scope = "embed", .audit = true})
                    .ok());
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{.port = 0, .io_threads = 2, .blocking_threads = 4}, std::move(router),
        logger);
    server_->Use(auth_->auth_middleware());
    server_->Use(auth_->rate_limit_middleware());
    ASSERT_TRUE(server_->Start().ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::ClientRequest req;
    req.method = method;
    req.url = base_ + path;
    req.body = body;
    if (!body.empty()) req.headers.Set("content-type", "application/json");
    for (auto& [k, v] : headers) req.headers.Set(k, v);
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Reply out;
    if (!r.ok()) return out;
    out.status = r->status;
    out.headers = r->headers;
    out.raw = r->body;
    boost::system::error_code ec;
    out.body = json::parse(r->body, ec);
    return out;
  }

  static std::vector<std::pair<std::string, std::string>> Bearer(const std::string& t) {
    return {{"authorization", "Bearer " + t}};
  }

  Session SessionFrom(const Reply& r) {
    Session s;
    if (!r.body.is_object()) return s;
    const auto& o = r.body.as_object();
    s.user_id = json::value_to<std::string>(o.at("user").at("id"));
    s.workspace_id = json::value_to<std::string>(o.at("workspace").at("id"));
    s.access = json::value_to<std::string>(o.at("access_token"));
    s.refresh = json::value_to<std::string>(o.at("refresh_token"));
    return s;
  }

  Session Register(const std::string& email, const std::string& password = "password-123",
                   const std::string& invite = "") {
    json::object body{{"email", email}, {"password", password}, {"name", "N"}};
    if (!invite.empty()) body["invite_code"] = invite;
    Reply r = Send("POST", "/api/v1/auth/register", json::serialize(body));
    EXPECT_EQ(r.status, 201) << r.raw;
    return SessionFrom(r);
  }

  Reply Login(const std::string& email, const std::string& password) {
    return Send("POST", "/api/v1/auth/login",
                json::serialize(json::object{{"email", email}, {"password", password}}));
  }

  // Creates an API key for `s` and returns {id, secret}.
  std::pair<std::string, std::string> CreateKey(const Session& s, std::vector<std::string> scopes) {
    json::array a;
    for (auto& sc : scopes) a.emplace_back(sc);
    Reply r = Send("POST", "/api/v1/keys",
                   json::serialize(json::object{{"name", "k"}, {"scopes", a}}), Bearer(s.access));
    EXPECT_EQ(r.status, 201) << r.raw;
    if (r.status != 201) return {};
    return {json::value_to<std::string>(r.body.at("id")),
            json::value_to<std::string>(r.body.at("key"))};
  }

  // The route's template with parameters filled in.
  static std::string Fill(const std::string& pattern, const std::string& workspace_id,
                          const std::string& key_id) {
    std::string out;
    size_t pos = 0;
    while (pos < pattern.size()) {
      size_t open = pattern.find('{', pos);
      if (open == std::string::npos) {
        out += pattern.substr(pos);
        break;
      }
      size_t close = pattern.find('}', open);
      out += pattern.substr(pos, open - pos);
      std::string name = pattern.substr(open + 1, close - open - 1);
      out += name == "workspace_id" ? workspace_id : name == "key_id" ? key_id : "x";
      pos = close + 1;
    }
    return out;
  }

  std::vector<const http::Route*> ProtectedRoutes() {
    std::vector<const http::Route*> out;
    for (const auto* r : server_->router().routes()) {
      if (!r->options.auth_scope.empty()) out.push_back(r);
    }
    return out;
  }

  atrium::testing::TempDir tmp_;
  std::unique_ptr<store::Database> db_;
  std::ostringstream log_stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> log_sink_;
  std::unique_ptr<AuthService> auth_;
  std::unique_ptr<http::Server> server_;
  http::HttpClient client_;
  std::string base_;
};

TEST_P(AuthHttpTest, EveryProtectedRouteRejectsMissingAndInvalidCredentials) {
  auto routes = ProtectedRoutes();
  ASSERT_GE(routes.size(), 15u);
  JwtClaims forged{.sub = "usr_x",
                   .ws = "ws_x",
                   .role = "owner",
                   .jti = "j",
                   .iat = Env::Default().NowMicros() / 1000000,
                   .exp = Env::Default().NowMicros() / 1000000 + 600};
  std::string wrong_key_token = JwtCodec::Create(std::string(40, 'w'), "atrium")->Sign(forged);
  for (const auto* route : routes) {
    std::string path = Fill(route->pattern, "ws_x", "key_x");
    SCOPED_TRACE(route->method + " " + path);
    Reply none = Send(route->method, path, route->method == "GET" ? "" : "{}");
    EXPECT_EQ(none.status, 401);
    EXPECT_TRUE(none.headers.Has("www-authenticate"));
    EXPECT_EQ(Send(route->method, path, "{}", Bearer(wrong_key_token)).status, 401);
    EXPECT_EQ(Send(route->method, path, "{}", Bearer("not.a.jwt")).status, 401);
    EXPECT_EQ(Send(route->method, path, "{}", {{"x-api-key", "atr_doesnotexist"}}).status, 401);
  }
}

TEST_P(AuthHttpTest, OtherWorkspacesResourcesAreNotFound) {
  Session a = Register("a@example.com");
  Session b = Register("b@example.com");
  auto [a_key_id, a_key] = CreateKey(a, {"embed"});
  auto [b_key_id, b_key] = CreateKey(b, {"admin"});
  int checked = 0;
  for (const auto* route : ProtectedRoutes()) {
    bool ws_param = route->pattern.find("{workspace_id}") != std::string::npos;
    bool key_param = route->pattern.find("{key_id}") != std::string::npos;
    if (!ws_param && !key_param) continue;
    std::string path = Fill(route->pattern, a.workspace_id, a_key_id);
    SCOPED_TRACE(route->method + " " + path);
    EXPECT_EQ(Send(route->method, path, "{\"role\":\"member\"}", Bearer(b.access)).status, 404);
    if (ws_param) {
      EXPECT_EQ(Send(route->method, path, "{}", {{"x-api-key", b_key}}).status,
                route->options.auth_scope == "user" ? 403 : 404);
    }
    ++checked;
  }
  EXPECT_GE(checked, 5);
  // And A still sees its own resources.
  EXPECT_EQ(Send("GET", "/api/v1/keys/" + a_key_id, "", Bearer(a.access)).status, 200);
  EXPECT_EQ(Send("GET", "/api/v1/workspaces/" + a.workspace_id, "", Bearer(a.access)).status, 200);
}

TEST_P(AuthHttpTest, KeysWithoutTheRouteScopeAreForbidden) {
  Session a = Register("a@example.com");
  auto [key_id, embed_key] = CreateKey(a, {"embed"});
  auto [key2_id, relay_key] = CreateKey(a, {"relay"});
  for (const auto* route : ProtectedRoutes()) {
    std::string path = Fill(route->pattern, a.workspace_id, key_id);
    SCOPED_TRACE(route->method + " " + path);
    Principal embed_principal{.key_id = "k", .scopes = {"embed"}};
    int status = Send(route->method, path, "{}", {{"x-api-key", relay_key}}).status;
    Principal relay_principal{.key_id = "k", .scopes = {"relay"}};
    if (!relay_principal.Allows(route->options.auth_scope)) {
      EXPECT_EQ(status, 403);
    } else {
      EXPECT_NE(status, 401);
      EXPECT_NE(status, 403);
    }
    (void)embed_principal;
  }
  EXPECT_EQ(Send("GET", "/api/v1/test/embed-only", "", {{"x-api-key", embed_key}}).status, 200);
  EXPECT_EQ(Send("GET", "/api/v1/test/embed-only", "", {{"x-api-key", relay_key}}).status, 403);
  // Denials are audited.
  auto page = auth_->sql_audit()->Query(
      AuditQuery{.workspace_id = a.workspace_id, .action = "auth.permission_denied"});
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->records.empty());
}

TEST_P(AuthHttpTest, RegisterLoginAndMeReturnTheWireShapes) {
  Reply r = Send("POST", "/api/v1/auth/register",
                 R"({"email":"Ann@Example.com","password":"password-123","name":"Ann"})");
  ASSERT_EQ(r.status, 201) << r.raw;
  const auto& o = r.body.as_object();
  EXPECT_EQ(o.at("user").at("email"), "Ann@Example.com");
  EXPECT_EQ(o.at("user").at("name"), "Ann");
  EXPECT_TRUE(o.at("workspace").at("id").is_string());
  EXPECT_EQ(o.at("token_type"), "Bearer");
  EXPECT_EQ(o.at("expires_in"), 900);
  // Duplicate (case-insensitive) email.
  EXPECT_EQ(Send("POST", "/api/v1/auth/register",
                 R"({"email":"ann@example.COM","password":"password-123"})")
                .status,
            409);
  Reply login = Login("ann@example.com", "password-123");
  ASSERT_EQ(login.status, 200) << login.raw;
  Session s = SessionFrom(login);
  Reply me = Send("GET", "/api/v1/auth/me", "", Bearer(s.access));
  ASSERT_EQ(me.status, 200) << me.raw;
  EXPECT_EQ(me.body.at("role"), "owner");
  EXPECT_EQ(me.body.at("workspace").at("id"), json::value(s.workspace_id));
  // Bad input.
  EXPECT_EQ(
      Send("POST", "/api/v1/auth/register", R"({"email":"x","password":"password-123"})").status,
      400);
  EXPECT_EQ(Send("POST", "/api/v1/auth/register", R"({"email":"x@y.z","password":"short"})").status,
            400);
  EXPECT_EQ(Send("POST", "/api/v1/auth/register", "not json").status, 400);
}

TEST_P(AuthHttpTest, UnknownEmailAndWrongPasswordLookTheSame) {
  Register("c@example.com");
  Reply wrong = Login("c@example.com", "wrong-password");
  Reply unknown = Login("nobody@example.com", "wrong-password");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(wrong.body.at("error").at("message"), unknown.body.at("error").at("message"));
}

TEST_P(AuthHttpTest, RepeatedLoginsForOneAccountAreRateLimited) {
  Register("d@example.com");
  int limited = 0;
  for (int i = 0; i < 8; ++i) {
    Reply r = Login("D@example.com", "wrong-password");
    if (r.status == 429) {
      ++limited;
      EXPECT_TRUE(r.headers.Has("retry-after"));
      EXPECT_TRUE(r.headers.Has("x-ratelimit-limit"));
    } else {
      EXPECT_EQ(r.status, 401);
    }
  }
  EXPECT_EQ(limited, 3);  // 5 attempts per minute
  EXPECT_EQ(Login("d@example.com", "password-123").status, 429);
}

TEST_P(AuthHttpTest, RefreshRotatesAndReuseRevokesTheFamily) {
  Session s = Register("e@example.com");
  Reply r1 = Send("POST", "/api/v1/auth/refresh",
                  json::serialize(json::object{{"refresh_token", s.refresh}}));
  ASSERT_EQ(r1.status, 200) << r1.raw;
  Session s2 = SessionFrom(r1);
  EXPECT_NE(s2.refresh, s.refresh);
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s2.access)).status, 200);
  // The old token again: theft assumed, the whole family dies.
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh",
                 json::serialize(json::object{{"refresh_token", s.refresh}}))
                .status,
            401);
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh",
                 json::serialize(json::object{{"refresh_token", s2.refresh}}))
                .status,
            401);
  auto page = auth_->sql_audit()->Query(
      AuditQuery{.workspace_id = s.workspace_id, .action = "auth.refresh_reuse"});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records.size(), 1u);
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh", R"({"refresh_token":"rt_bogus"})").status, 401);
}

TEST_P(AuthHttpTest, LogoutMakesTheAccessTokenUnusableAtOnce) {
  Session s = Register("f@example.com");
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s.access)).status, 200);
  EXPECT_EQ(Send("POST", "/api/v1/auth/logout", "", Bearer(s.access)).status, 204);
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s.access)).status, 401);
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh",
                 json::serialize(json::object{{"refresh_token", s.refresh}}))
                .status,
            401);
  // Another session of the same user is unaffected.
  Session other = SessionFrom(Login("f@example.com", "password-123"));
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(other.access)).status, 200);
}

TEST_P(AuthHttpTest, LogoutAllEndsEverySession) {
  Session s1 = Register("g@example.com");
  Session s2 = SessionFrom(Login("g@example.com", "password-123"));
  EXPECT_EQ(Send("POST", "/api/v1/auth/logout-all", "", Bearer(s1.access)).status, 204);
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s1.access)).status, 401);
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s2.access)).status, 401);
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh",
                 json::serialize(json::object{{"refresh_token", s2.refresh}}))
                .status,
            401);
  // Logging in again right away works.
  Session s3 = SessionFrom(Login("g@example.com", "password-123"));
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s3.access)).status, 200);
}

TEST_P(AuthHttpTest, CookieModeKeepsTheRefreshTokenOutOfTheBodyAndNeedsCsrf) {
  Register("web@example.com");
  Reply login = Send("POST", "/api/v1/auth/login",
                     R"({"email":"web@example.com","password":"password-123","cookie":true})");
  ASSERT_EQ(login.status, 200) << login.raw;
  EXPECT_TRUE(login.body.at("refresh_token").is_null());
  std::string csrf = json::value_to<std::string>(login.body.at("csrf_token"));
  std::string refresh_cookie, csrf_cookie;
  for (const auto& [name, value] : login.headers.fields()) {
    if (!http::EqualsIgnoreCase(name, "set-cookie")) continue;
    if (value.starts_with("atrium_refresh=")) {
      refresh_cookie = value.substr(0, value.find(';'));
      EXPECT_NE(value.find("HttpOnly"), std::string::npos);
      EXPECT_NE(value.find("Secure"), std::string::npos);
      EXPECT_NE(value.find("SameSite=Strict"), std::string::npos);
    }
    if (value.starts_with("atrium_csrf=")) csrf_cookie = value.substr(0, value.find(';'));
  }
  ASSERT_FALSE(refresh_cookie.empty());
  EXPECT_EQ(csrf_cookie, "atrium_csrf=" + csrf);
  std::string cookies = refresh_cookie + "; " + csrf_cookie;
  // A cross-site request carries the cookies but cannot read the CSRF token.
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh", "{}", {{"cookie", cookies}}).status, 403);
  EXPECT_EQ(
      Send("POST", "/api/v1/auth/refresh", "{}", {{"cookie", cookies}, {"x-csrf-token", "forged"}})
          .status,
      403);
  Reply refreshed =
      Send("POST", "/api/v1/auth/refresh", "{}", {{"cookie", cookies}, {"x-csrf-token", csrf}});
  ASSERT_EQ(refreshed.status, 200) << refreshed.raw;
  EXPECT_TRUE(refreshed.body.at("refresh_token").is_null());
  EXPECT_TRUE(refreshed.body.at("access_token").is_string());
}

TEST_P(AuthHttpTest, RateLimitHeadersAndPerKeyLimits) {
  Session s = Register("rl@example.com");
  Reply me = Send("GET", "/api/v1/auth/me", "", Bearer(s.access));
  EXPECT_EQ(me.headers.GetOr("x-ratelimit-limit", ""), "1000");
  EXPECT_FALSE(me.headers.GetOr("x-ratelimit-remaining", "").empty());
  EXPECT_FALSE(me.headers.GetOr("x-ratelimit-reset", "").empty());
  Reply created =
      Send("POST", "/api/v1/keys", R"({"name":"slow","scopes":["embed"],"rate_limit":{"rpm":2}})",
           Bearer(s.access));
  ASSERT_EQ(created.status, 201);
  std::string key = json::value_to<std::string>(created.body.at("key"));
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", {{"x-api-key", key}}).status, 200);
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", {{"x-api-key", key}}).status, 200);
  Reply limited = Send("GET", "/api/v1/auth/me", "", {{"x-api-key", key}});
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.headers.GetOr("x-ratelimit-limit", ""), "2");
  EXPECT_EQ(limited.headers.GetOr("x-ratelimit-remaining", ""), "0");
  EXPECT_FALSE(limited.headers.GetOr("retry-after", "").empty());
  EXPECT_EQ(limited.body.at("error").at("code"), "resource_exhausted");
  // The user's own session is limited separately.
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s.access)).status, 200);
}

TEST_P(AuthHttpTest, PasswordChangeRequiresTheCurrentPassword) {
  Session s = Register("h@example.com");
  EXPECT_EQ(
      Send("POST", "/api/v1/auth/password",
           R"({"current_password":"nope-nope","new_password":"new-password-1"})", Bearer(s.access))
          .status,
      403);
  EXPECT_EQ(Send("POST", "/api/v1/auth/password",
                 R"({"current_password":"password-123","new_password":"new-password-1"})",
                 Bearer(s.access))
                .status,
            204);
  EXPECT_EQ(Login("h@example.com", "password-123").status, 401);
  EXPECT_EQ(Login("h@example.com", "new-password-1").status, 200);
}

TEST_P(AuthHttpTest, InvitesJoinWorkspacesAndOnlyAdminsInvite) {
  Session owner = Register("owner@example.com");
  std::string path = "/api/v1/workspaces/" + owner.workspace_id + "/invites";
  Reply inv = Send("POST", path, R"({"role":"member"})", Bearer(owner.access));
  ASSERT_EQ(inv.status, 201) << inv.raw;
  std::string code = json::value_to<std::string>(inv.body.at("code"));
  EXPECT_TRUE(inv.body.at("expires_at").is_string());
  Session member = Register("member@example.com", "password-123", code);
  EXPECT_EQ(member.workspace_id, owner.workspace_id);
  // Single use.
  EXPECT_EQ(
      Send("POST", "/api/v1/auth/register",
           json::serialize(json::object{
               {"email", "late@example.com"}, {"password", "password-123"}, {"invite_code", code}}))
          .status,
      404);
  // Members cannot invite; they can list members.
  EXPECT_EQ(Send("POST", path, R"({"role":"member"})", Bearer(member.access)).status, 403);
  Reply members = Send("GET", "/api/v1/workspaces/" + owner.workspace_id + "/members", "",
                       Bearer(member.access));
  ASSERT_EQ(members.status, 200);
  EXPECT_EQ(members.body.at("members").as_array().size(), 2u);
  // An existing user accepts an invite bound to its email.
  Session other = Register("other@example.com");
  Reply inv2 =
      Send("POST", path, R"({"role":"admin","email":"Other@example.com"})", Bearer(owner.access));
  ASSERT_EQ(inv2.status, 201);
  Reply acc =
      Send("POST", "/api/v1/invites/accept",
           json::serialize(json::object{{"code", inv2.body.at("code")}}), Bearer(other.access));
  ASSERT_EQ(acc.status, 200) << acc.raw;
  EXPECT_EQ(acc.body.at("role"), "admin");
  EXPECT_EQ(
      Send("GET", "/api/v1/workspaces/" + owner.workspace_id, "", Bearer(other.access)).status,
      200);
  Reply list = Send("GET", "/api/v1/workspaces", "", Bearer(other.access));
  EXPECT_EQ(list.body.at("workspaces").as_array().size(), 2u);
}

TEST_P(AuthHttpTest, AdminsChangeRolesAndRemoveMembersButNotTheOwner) {
  Session owner = Register("boss@example.com");
  std::string ws = "/api/v1/workspaces/" + owner.workspace_id;
  auto join = [&](const std::string& email) {
    Reply inv = Send("POST", ws + "/invites", R"({"role":"member"})", Bearer(owner.access));
    EXPECT_EQ(inv.status, 201) << inv.raw;
    return Register(email, "password-123", json::value_to<std::string>(inv.body.at("code")));
  };
  Session m1 = join("m1@example.com");
  Session m2 = join("m2@example.com");
  std::string m1_path = ws + "/members/" + m1.user_id;
  // Members cannot change roles; bad roles are 400 naming the field.
  EXPECT_EQ(Send("PATCH", m1_path, R"({"role":"admin"})", Bearer(m2.access)).status, 403);
  Reply bad = Send("PATCH", m1_path, R"({"role":"owner"})", Bearer(owner.access));
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("role"), std::string::npos);
  // The owner promotes m1; m1's old token is revoked and a refresh carries the new role.
  Reply up = Send("PATCH", m1_path, R"({"role":"admin"})", Bearer(owner.access));
  ASSERT_EQ(up.status, 200) << up.raw;
  EXPECT_EQ(up.body.at("role"), "admin");
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(m1.access)).status, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // iat has second precision
  Reply refreshed = Send("POST", "/api/v1/auth/refresh",
                         json::serialize(json::object{{"refresh_token", m1.refresh}}));
  ASSERT_EQ(refreshed.status, 200) << refreshed.raw;
  Session m1b = SessionFrom(refreshed);
  Reply me = Send("GET", "/api/v1/auth/me", "", Bearer(m1b.access));
  ASSERT_EQ(me.status, 200) << me.raw;
  EXPECT_EQ(me.body.at("role"), "admin");
  // The new admin removes m2; nobody can demote or remove the owner.
  EXPECT_EQ(Send("DELETE", ws + "/members/" + m2.user_id, "", Bearer(m1b.access)).status, 204);
  EXPECT_EQ(
      Send("PATCH", ws + "/members/" + owner.user_id, R"({"role":"member"})", Bearer(m1b.access))
          .status,
      403);
  EXPECT_EQ(Send("DELETE", ws + "/members/" + owner.user_id, "", Bearer(m1b.access)).status, 403);
  EXPECT_EQ(Send("DELETE", ws + "/members/nobody", "", Bearer(owner.access)).status, 404);
  // m2 can no longer refresh into the workspace.
  EXPECT_EQ(Send("POST", "/api/v1/auth/refresh",
                 json::serialize(json::object{{"refresh_token", m2.refresh}}))
                .status,
            401);
  // A member may leave on its own.
  EXPECT_EQ(Send("DELETE", ws + "/members/" + m1.user_id, "", Bearer(m1b.access)).status, 204);
  Reply members = Send("GET", ws + "/members", "", Bearer(owner.access));
  EXPECT_EQ(members.body.at("members").as_array().size(), 1u);
}

TEST_P(AuthHttpTest, ApiKeysAreShownOnceAndAcceptedFromEveryCarrier) {
  Session s = Register("k@example.com");
  Reply created = Send("POST", "/api/v1/keys",
                       R"({"name":"ci","scopes":["embed","relay"],"models":["gpt-*"],)"
                       R"("rate_limit":{"rpm":60},"budget":{"monthly":10},"tier":"pro",)"
                       R"("expires_at":"2999-01-01T00:00:00Z","tags":["ci"]})",
                       Bearer(s.access));
  ASSERT_EQ(created.status, 201) << created.raw;
  std::string key = json::value_to<std::string>(created.body.at("key"));
  std::string id = json::value_to<std::string>(created.body.at("id"));
  EXPECT_TRUE(key.starts_with("atr_"));
  EXPECT_EQ(key.size(), 47u);
  EXPECT_EQ(created.body.at("tier"), "pro");
  EXPECT_EQ(created.body.at("expires_at"), "2999-01-01T00:00:00Z");
  Reply list = Send("GET", "/api/v1/keys", "", Bearer(s.access));
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.raw.find(key), std::string::npos);
  EXPECT_EQ(list.body.at("keys").as_array().size(), 1u);
  EXPECT_TRUE(list.body.at("next_cursor").is_null());
  for (auto headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {{"authorization", "Bearer " + key}},
           {{"x-api-key", key}},
           {{"x-goog-api-key", key}},
           {{"api-key", key}}}) {
    Reply me = Send("GET", "/api/v1/auth/me", "", headers);
    EXPECT_EQ(me.status, 200) << headers[0].first;
    EXPECT_EQ(me.body.at("key").at("id"), json::value(id));
  }
  EXPECT_EQ(Send("GET", "/api/v1/auth/me?key=" + key).status, 200);
  // Keys cannot manage keys or sessions.
  EXPECT_EQ(Send("GET", "/api/v1/keys", "", {{"x-api-key", key}}).status, 403);
  EXPECT_EQ(
      Send("POST", "/api/v1/keys", R"({"name":"x","scopes":["bogus"]})", Bearer(s.access)).status,
      400);
  EXPECT_EQ(Send("DELETE", "/api/v1/keys/" + id, "", Bearer(s.access)).status, 204);
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", {{"x-api-key", key}}).status, 401);
  EXPECT_EQ(Send("DELETE", "/api/v1/keys/" + id, "", Bearer(s.access)).status, 404);
}

TEST_P(AuthHttpTest, CachedAuthenticationAnswersOnlyFromMemory) {
  Session s = Register("cached@example.com");
  Reply created =
      Send("POST", "/api/v1/keys", R"({"name":"c","scopes":["relay"]})", Bearer(s.access));
  ASSERT_EQ(created.status, 201) << created.raw;
  std::string key = json::value_to<std::string>(created.body.at("key"));
  std::string id = json::value_to<std::string>(created.body.at("id"));
  http::Request with_key;
  with_key.headers.Set("x-api-key", key);
  // Not read yet: the cached path declines (the caller goes to the database).
  EXPECT_FALSE(auth_->AuthenticateCached(with_key).has_value());
  ASSERT_TRUE(auth_->Authenticate(with_key).ok());  // reads it, touches last-used, caches it
  auto cached = auth_->AuthenticateCached(with_key);
  ASSERT_TRUE(cached.has_value());
  ASSERT_TRUE(cached->ok()) << cached->status().ToString();
  EXPECT_EQ((*cached)->key_id, id);
  EXPECT_EQ((*cached)->workspace_id, s.workspace_id);
  // No credentials: refused at once. Access tokens need the revocation list: declined.
  auto none = auth_->AuthenticateCached(http::Request{});
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->status().code(), StatusCode::kUnauthenticated);
  http::Request with_token;
  with_token.headers.Set("authorization", "Bearer " + s.access);
  EXPECT_FALSE(auth_->AuthenticateCached(with_token).has_value());
  // A deleted key leaves the cache with it.
  ASSERT_EQ(Send("DELETE", "/api/v1/keys/" + id, "", Bearer(s.access)).status, 204);
  EXPECT_FALSE(auth_->AuthenticateCached(with_key).has_value());
  EXPECT_EQ(auth_->Authenticate(with_key).status().code(), StatusCode::kUnauthenticated);
}

TEST_P(AuthHttpTest, AuditLogIsQueryableByAdminsWithCursors) {
  Session s = Register("audit@example.com");
  for (int i = 0; i < 3; ++i) CreateKey(s, {"embed"});
  Reply page1 = Send("GET", "/api/v1/audit/logs?action=key.create&limit=2", "", Bearer(s.access));
  ASSERT_EQ(page1.status, 200) << page1.raw;
  EXPECT_EQ(page1.body.at("logs").as_array().size(), 2u);
  ASSERT_TRUE(page1.body.at("next_cursor").is_string());
  std::string cursor = json::value_to<std::string>(page1.body.at("next_cursor"));
  Reply page2 = Send("GET", "/api/v1/audit/logs?action=key.create&limit=2&cursor=" + cursor, "",
                     Bearer(s.access));
  EXPECT_EQ(page2.body.at("logs").as_array().size(), 1u);
  EXPECT_TRUE(page2.body.at("next_cursor").is_null());
  const auto& rec = page1.body.at("logs").as_array()[0];
  EXPECT_EQ(rec.at("actor").at("id"), json::value(s.user_id));
  EXPECT_EQ(rec.at("outcome"), "success");
  EXPECT_EQ(rec.at("ip"), "127.0.0.1");
  Reply stats = Send("GET", "/api/v1/audit/stats", "", Bearer(s.access));
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.body.at("by_action").at("key.create"), 3);
  // A plain member is refused.
  Reply inv =
      Send("POST", "/api/v1/workspaces/" + s.workspace_id + "/invites", "{}", Bearer(s.access));
  Session m =
      Register("m@example.com", "password-123", json::value_to<std::string>(inv.body.at("code")));
  EXPECT_EQ(Send("GET", "/api/v1/audit/logs", "", Bearer(m.access)).status, 403);
}

TEST_P(AuthHttpTest, SqlInjectionProbesLeaveTheDatabaseIntact) {
  Session s = Register("victim@example.com");
  const std::vector<std::string> probes = {"' OR '1'='1", "'; DROP TABLE auth_users; --",
                                           "\" OR 1=1 --", "x'); DELETE FROM auth_api_keys; --",
                                           "%' UNION SELECT password_hash FROM auth_users --"};
  for (const auto& p : probes) {
    Send("POST", "/api/v1/auth/register",
         json::serialize(json::object{{"email", p + "@x.io"},
                                      {"password", p + "long-pass"},
                                      {"name", p},
                                      {"invite_code", p}}));
    Send("POST", "/api/v1/auth/login",
         json::serialize(json::object{{"email", p}, {"password", p}}));
    Send("POST", "/api/v1/auth/refresh", json::serialize(json::object{{"refresh_token", p}}));
    Send("POST", "/api/v1/keys",
         json::serialize(
             json::object{{"name", p}, {"scopes", json::array{"embed"}}, {"tags", json::array{p}}}),
         Bearer(s.access));
    Send("POST", "/api/v1/invites/accept", json::serialize(json::object{{"code", p}}),
         Bearer(s.access));
    std::string encoded;
    for (unsigned char c : p) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      encoded += std::isalnum(c) ? std::string(1, static_cast<char>(c))
                                 : std::string{'%', kHex[c >> 4], kHex[c & 15]};
    }
    EXPECT_EQ(Send("GET", "/api/v1/audit/logs?action=" + encoded, "", Bearer(s.access)).status,
              200);
  }
  EXPECT_EQ(Login("victim@example.com", "password-123").status, 200);
  auto users = auth_->store().CountUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_GE(*users, 1);
  EXPECT_EQ(auth_->store().ListApiKeys(s.workspace_id)->size(), probes.size());
}

TEST_P(AuthHttpTest, PasswordsAndKeysNeverReachTheLog) {
  Session s = Register("secret@example.com", "very-secret-password");
  Login("secret@example.com", "wrong-secret-password");
  auto [id, key] = CreateKey(s, {"embed"});
  Send("GET", "/api/v1/auth/me", "", {{"x-api-key", key}});
  Send("POST", "/api/v1/auth/refresh", json::serialize(json::object{{"refresh_token", s.refresh}}));
  Send("POST", "/api/v1/auth/refresh", json::serialize(json::object{{"refresh_token", s.refresh}}));
  log_sink_->flush();
  std::string logs = log_stream_.str();
  EXPECT_EQ(logs.find("very-secret-password"), std::string::npos);
  EXPECT_EQ(logs.find("wrong-secret-password"), std::string::npos);
  EXPECT_EQ(logs.find(key), std::string::npos);
  EXPECT_EQ(logs.find(s.refresh), std::string::npos);
  EXPECT_EQ(logs.find(s.access), std::string::npos);
  // Nor the audit log.
  auto page = auth_->sql_audit()->Query(AuditQuery{.workspace_id = s.workspace_id, .limit = 500});
  for (const auto& r : page->records) {
    EXPECT_EQ(r.details.find("secret"), std::string::npos);
  }
}

TEST_P(AuthHttpTest, RevocationStoreFailureFailsClosed) {
  Session s = Register("closed@example.com");
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s.access)).status, 200);
  ASSERT_TRUE(db_->ExecScript("DROP TABLE auth_revocations").ok());
  EXPECT_EQ(Send("GET", "/api/v1/auth/me", "", Bearer(s.access)).status, 503);
}

INSTANTIATE_TEST_SUITE_P(Backends, AuthHttpTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace atrium::auth
