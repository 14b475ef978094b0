// Anthropic Messages API (api.anthropic.com): x-api-key (or an OAuth bearer access token),
// anthropic-version, and the client's anthropic-beta flags passed through.
#include "providers.h"

namespace atrium::relay {
namespace {

class AnthropicAdapter : public ProviderAdapter {
 public:
  std::string_view name() const override { return "anthropic"; }
  ApiFormat format() const override { return ApiFormat::kAnthropic; }
  bool Supports(Operation op) const override { return op != Operation::kEmbeddings; }
  std::vector<std::string> required_credentials() const override { return {}; }
  Status Prepare(const Account& account, Operation op, std::string_view, bool stream,
                 const http::Headers& client_headers, http::ClientRequest& out) const override {
    std::string base = account.base_url.empty() ? "https://api.anthropic.com" : account.base_url;
    out.url =
        JoinUrl(base, op == Operation::kCountTokens ? "/v1/messages/count_tokens" : "/v1/messages");
    auto key = account.credentials.find("api_key");
    auto token = account.credentials.find("access_token");
    if (key != account.credentials.end() && !key->second.empty()) {
      out.headers.Set("x-api-key", key->second);
    } else if (token != account.credentials.end() && !token->second.empty()) {
      out.headers.Set("authorization", "Bearer " + token->second);
      out.headers.Set("anthropic-beta", "oauth-2025-04-20");
    } else {
      return InvalidArgument("account " + account.id +
                             ": credentials.api_key or credentials.access_token is required");
    }
    out.headers.Set("anthropic-version", client_headers.GetOr("anthropic-version", "2023-06-01"));
    if (auto beta = client_headers.Get("anthropic-beta"); beta && !beta->empty()) {
      std::string merged(*beta);
      if (auto own = out.headers.Get("anthropic-beta")) merged = std::string(*own) + "," + merged;
      out.headers.Set("anthropic-beta", merged);
    }
    out.headers.Set("accept", stream ? "text/event-stream" : "application/json");
    return Status::Ok();
  }
};

}  // namespace

const ProviderAdapter& AnthropicProvider() {
  static const AnthropicAdapter kAdapter;
  return kAdapter;
}

}  // namespace atrium::relay
