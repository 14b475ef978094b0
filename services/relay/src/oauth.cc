// Anthropic OAuth accounts (Claude Code subscriptions; docs/relay.md, "OAuth accounts"): the
// access token is refreshed through the token endpoint before it expires and after a 401, once
// for all the requests that need it at the same moment; the new tokens are sealed like every
// credential.
//
// Token endpoint wire format (the one the Claude Code CLI uses):
//   POST {token_url}  content-type: application/json
//   {"grant_type":"refresh_token","refresh_token":"<rt>","client_id":"<client id>"}
//   → 200 {"token_type":"Bearer","access_token","refresh_token"?,"expires_in":<seconds>,...}
//   → 4xx {"error":"invalid_grant","error_description":"..."}
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <future>

#include "relay_impl.h"

namespace atrium::relay {
namespace json = boost::json;

namespace {

std::string Cred(const Account& a, const std::string& name) {
  auto it = a.credentials.find(name);
  return it == a.credentials.end() ? std::string() : it->second;
}

}  // namespace

bool CanRefreshOAuth(const Account& a) {
  return a.provider == "anthropic" && Cred(a, "api_key").empty() &&
         !Cred(a, "refresh_token").empty();
}

bool OAuthNeedsRefresh(const Account& a, int64_t now_micros, std::chrono::milliseconds margin) {
  if (!CanRefreshOAuth(a)) return false;
  std::string expires = Cred(a, "expires_at");
  if (expires.empty()) return Cred(a, "access_token").empty();
  char* end = nullptr;
  long long ms = std::strtoll(expires.c_str(), &end, 10);
  if (end == expires.c_str()) return true;  // unreadable: refresh
  return ms * 1000 - now_micros <= margin.count() * 1000;
}

void RelayService::Impl::RefreshOAuth(const std::string& account_id,
                                      const std::string& failed_token,
                                      std::function<void(Status)> done) {
  auto account = scheduler.Find(account_id);
  if (account == nullptr) return done(NotFound("account " + account_id + " is gone"));
  if (!CanRefreshOAuth(*account)) {
    return done(InvalidArgument("account " + account_id + " has no refresh_token"));
  }
  // A request that failed with an older token only needs the newer one.
  if (!failed_token.empty() && Cred(*account, "access_token") != failed_token) {
    return done(Status::Ok());
  }
  {
    std::lock_guard lock(oauth_mu_);
    auto [it, first] = oauth_waiters_.try_emplace(account_id);
    it->second.push_back(std::move(done));
    if (!first) return;  // joins the refresh in flight
  }
  if (oauth_refreshes != nullptr) oauth_refreshes->Inc();
  auto finish = [this, account_id](Status st) {
    std::vector<std::function<void(Status)>> waiters;
    {
      std::lock_guard lock(oauth_mu_);
      auto it = oauth_waiters_.find(account_id);
      if (it != oauth_waiters_.end()) {
        waiters = std::move(it->second);
        oauth_waiters_.erase(it);
      }
    }
    for (auto& w : waiters) w(st);
  };
  std::string token_url = Cred(*account, "token_url");
  if (token_url.empty()) token_url = options.oauth_token_url;
  std::string client_id = Cred(*account, "client_id");
  if (client_id.empty()) client_id = options.oauth_client_id;
  http::ClientRequest req;
  req.method = "POST";
  req.url = token_url;
  req.headers.Set("content-type", "application/json");
  req.headers.Set("accept", "application/json");
  req.body = json::serialize(json::object{{"grant_type", "refresh_token"},
                                          {"refresh_token", Cred(*account, "refresh_token")},
                                          {"client_id", client_id}});
  req.proxy = account->proxy;
  req.connect_timeout = options.connect_timeout;
  req.read_timeout = std::min(options.read_timeout, std::chrono::milliseconds(30'000));
  if (client == nullptr) return finish(Unavailable("the relay is stopping"));
  client->Send(std::move(req), [this, account_id, finish](Result<http::ClientResponse> r) {
    if (!r.ok()) {
      return finish(Unavailable("OAuth token refresh failed: " + r.status().message()));
    }
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
    if (r->status < 200 || r->status >= 300 || o == nullptr) {
      std::string why = "HTTP " + std::to_string(r->status);
      if (o != nullptr) {
        for (const char* f : {"error", "error_description"}) {
          if (const auto* e = o->if_contains(f); e != nullptr && e->is_string()) {
            why += std::string(" ") + std::string(e->as_string());
          }
        }
      }
      Status st = r->status == 400 || r->status == 401 || r->status == 403
                      ? Unauthenticated("OAuth token refresh refused: " + why)
                      : Unavailable("OAuth token refresh failed: " + why);
      return finish(st);
    }
    const auto* access = o->if_contains("access_token");
    if (access == nullptr || !access->is_string() || access->as_string().empty()) {
      return finish(Unavailable("OAuth token refresh: the answer has no access_token"));
    }
    auto live = scheduler.Find(account_id);
    if (live == nullptr) return finish(NotFound("account " + account_id + " is gone"));
    Account updated = *live;
    updated.credentials["access_token"] = std::string(access->as_string());
    if (const auto* rt = o->if_contains("refresh_token");
        rt != nullptr && rt->is_string() && !rt->as_string().empty()) {
      updated.credentials["refresh_token"] = std::string(rt->as_string());  // rotated
    }
    if (const auto* e = o->if_contains("expires_in"); e != nullptr && e->is_number()) {
      auto seconds = static_cast<int64_t>(e->to_number<double>());
      updated.credentials["expires_at"] = std::to_string(env.NowMicros() / 1000 + seconds * 1000);
    } else {
      updated.credentials.erase("expires_at");  // unknown: refreshed again on the next 401
    }
    // Saved first: a node that restarts (or another node reloading) reads the rotated tokens.
    if (Status s = accounts.SetCredentials(updated); !s.ok()) {
      if (log)
        log->error("relay: account {} refreshed tokens not saved: {}", account_id, s.ToString());
      return finish(s);
    }
    scheduler.UpdateCredentials(account_id, updated.credentials);
    if (log) log->info("relay: account {} OAuth access token refreshed", account_id);
    finish(Status::Ok());
  });
}

Status RelayService::Impl::RefreshOAuthSync(const std::string& account_id,
                                            const std::string& failed_token) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  RefreshOAuth(account_id, failed_token, [promise](Status st) { promise->set_value(st); });
  return future.get();
}

}  // namespace atrium::relay
