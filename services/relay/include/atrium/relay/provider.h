// Provider adapters: how the relay talks to one kind of upstream (docs/relay.md, "Providers").
//
// Each provider is an extension behind ProviderAdapter, in its own file under src/providers/,
// registered in one place (src/providers/registry.cc). An adapter knows the provider's wire
// format (which decides pass-through vs translation), its default base URL, and how to address
// and authenticate a request (URL layout, auth headers, API versions, request signing). Everything
// else — the body, streaming, failover, usage — is the relay's and shared by all providers;
// providers whose envelope differs from their API format's (bedrock: the Anthropic Messages API
// inside AWS's event-stream framing and error shapes) adapt it through the optional hooks.
//
// Adapters are stateless and immutable: thread-safe. A stream decoder belongs to one response.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/client.h"
#include "atrium/relay/types.h"

namespace atrium::relay {

// A failure a provider signalled inside a 2xx stream (or a stream that could not be decoded), as
// the HTTP status it stands for: 429 for throttling, 5xx for server-side faults.
struct UpstreamStreamError {
  int status = 502;
  std::string message;
};

// Turns the bytes of a provider's streaming response into SSE of the adapter's format(), for
// providers whose streams are not SSE. One per response; not thread-safe.
class UpstreamStreamDecoder {
 public:
  virtual ~UpstreamStreamDecoder() = default;
  // Appends upstream bytes; returns the SSE text of the events they complete. After a failure the
  // text ends with the format's error event and later bytes are ignored.
  virtual std::string Feed(std::string_view bytes) = 0;
  // Set once the stream carried an exception or could not be decoded.
  virtual const std::optional<UpstreamStreamError>& error() const = 0;
  // Whether any event other than the error was decoded (a failure before that can fail over).
  virtual bool delivered() const = 0;
};

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
  // Authenticates the finished request (URL, headers and body final) at `now_micros`: request
  // signing (bedrock: AWS SigV4). Runs after Prepare; InvalidArgument like Prepare.
  virtual Status Sign(const Account&, int64_t /*now_micros*/, http::ClientRequest&) const {
    return Status::Ok();
  }
  // A decoder for the body of a 2xx streaming response, or null when it is already SSE of
  // format().
  virtual std::unique_ptr<UpstreamStreamDecoder> MakeStreamDecoder() const { return nullptr; }
  // An HTTP error body of the provider in format()'s error shape (providers whose errors are not
  // shaped like their API format's: bedrock); the body unchanged by default.
  virtual std::string NormalizeErrorBody(int /*status*/, const http::Headers& /*headers*/,
                                         std::string body) const {
    return body;
  }
  // Usage a provider reports in the headers of a non-streaming response (bedrock's
  // x-amzn-bedrock-*-token-count), used when the body reports none.
  virtual std::optional<Usage> UsageFromHeaders(const http::Headers&) const { return std::nullopt; }
};

// The registered adapter for `provider`, or null (a provider name no adapter serves).
const ProviderAdapter* FindProvider(std::string_view provider);
// Providers whose adapters serve `op` for a client speaking `client`: for chat any format
// (translated when it differs from the client's), for token counting the client's own. The
// names live as long as the program.
std::span<const std::string_view> ProvidersServing(Operation op, ApiFormat client);

// Internal request header carrying the Gemini method of the client's path
// ("generateContent", "streamGenerateContent?alt=sse", "streamGenerateContent", "countTokens").
inline constexpr std::string_view kGeminiMethodHeader = "x-atrium-gemini-method";

// `base` without trailing slashes, joined with `path` (which starts with '/').
std::string JoinUrl(std::string_view base, std::string_view path);

}  // namespace atrium::relay
