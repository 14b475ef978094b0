// Provider adapters: how the relay talks to one kind of upstream (docs/relay.md, "Providers").
//
// Each provider is an extension behind ProviderAdapter, in its own file under src/providers/,
// registered in one place (src/providers/registry.cc). An adapter knows the provider's wire
// format (which decides pass-through vs translation), its default base URL, and how to address
// and authenticate a request (URL layout, auth headers, API versions). Everything else — the
// body, streaming, failover, usage — is the relay's and shared by all providers.
//
// Adapters are stateless and immutable: thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/client.h"
#include "atrium/relay/types.h"

namespace atrium::relay {

class ProviderAdapter {
 public:
  virtual ~ProviderAdapter() = default;
  // The provider name accounts use ("anthropic", "openai", ...).
  virtual std::string_view name() const = 0;
  // The wire format of the provider's chat API.
  virtual ApiFormat format() const = 0;
  // Whether the provider serves `op`.
  virtual bool Supports(Operation op) const = 0;
  // True for providers served inside the process (`local`: the embed engine), not over HTTP.
  virtual bool in_process() const { return false; }
  // Credential fields an account of this provider must have (validated on create).
  virtual std::vector<std::string> required_credentials() const { return {"api_key"}; }
  // Fills the URL and the provider's headers of `out` (method POST, body already set) for `op`
  // on `account` with `upstream_model`. `client_headers` are the client's request headers (some
  // are forwarded: anthropic-version, anthropic-beta). InvalidArgument when the account lacks
  // what the provider needs (base URL, credentials), naming it.
  virtual Status Prepare(const Account& account, Operation op, std::string_view upstream_model,
                         bool stream, const http::Headers& client_headers,
                         http::ClientRequest& out) const = 0;
};

// The registered adapter for `provider`, or null (providers known to the store but not served by
// this build: bedrock).
const ProviderAdapter* FindProvider(std::string_view provider);
// Providers whose adapters serve `op` for a client speaking `client`: for chat any format
// (translated when it differs from the client's), for token counting the client's own.
std::vector<std::string> ProvidersServing(Operation op, ApiFormat client);

// Internal request header carrying the Gemini method of the client's path
// ("generateContent", "streamGenerateContent?alt=sse", "streamGenerateContent", "countTokens").
inline constexpr std::string_view kGeminiMethodHeader = "x-atrium-gemini-method";

// `base` without trailing slashes, joined with `path` (which starts with '/').
std::string JoinUrl(std::string_view base, std::string_view path);

}  // namespace atrium::relay
