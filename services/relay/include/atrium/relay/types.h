// Shared vocabulary of the relay (docs/relay.md): the wire formats it speaks, upstream accounts
// as the scheduler sees them, token usage, and small helpers (model globs).
//
// Plain value types; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace atrium::relay {

// The API dialect of a request or of an upstream.
enum class ApiFormat { kAnthropic, kOpenAI, kGemini };
std::string_view ApiFormatName(ApiFormat f);  // "anthropic", "openai", "gemini"

// The operations the relay forwards.
enum class Operation { kChat, kCountTokens, kEmbeddings };

// Account statuses (spec: "status with reason and until-time").
inline constexpr std::string_view kStatusActive = "active";
inline constexpr std::string_view kStatusRateLimited = "rate_limited";
inline constexpr std::string_view kStatusOverloaded = "overloaded";
inline constexpr std::string_view kStatusUnauthorized = "unauthorized";
inline constexpr std::string_view kStatusErrorCooldown = "error_cooldown";
inline constexpr std::string_view kStatusDisabled = "disabled";

// Every provider an account may name.
inline constexpr std::string_view kProviders[] = {
    "anthropic", "openai", "azure-openai", "gemini", "bedrock", "openai-compatible", "local"};

// One upstream account. Credentials are decrypted only in memory (never serialised to clients).
struct Account {
  std::string id;
  std::string workspace_id;  // the workspace whose keys may use the account
  std::string name;
  std::string provider;
  std::string base_url;             // empty: the provider's default
  std::string proxy;                // http://, socks5:// or socks5h:// URL; empty: direct
  int priority = 50;                // lower is preferred
  int weight = 1;                   // for the weighted strategy (> 0)
  int max_concurrency = 0;          // 0: unlimited
  std::vector<std::string> models;  // globs; empty: every model
  std::map<std::string, std::string> model_aliases;  // client model -> upstream model
  std::vector<std::string> groups;
  bool schedulable = true;
  std::string status = std::string(kStatusActive);
  std::string status_reason;
  int64_t status_until = 0;  // micros since the epoch; 0: no end (until changed)
  std::map<std::string, std::string> credentials;  // api_key, api_version, ...
  int64_t created_at = 0;
  int64_t updated_at = 0;

  // Whether `model` passes the allow-list (or an alias names it).
  bool AllowsModel(std::string_view model) const;
  // The upstream model for a client model (alias or the same name).
  std::string UpstreamModel(std::string_view model) const;
  // Whether the status lets the scheduler pick the account at `now_micros`.
  bool UsableAt(int64_t now_micros) const;
};

// Token counts of one request, as the upstream reported them (or as estimated).
struct Usage {
  int64_t input_tokens = 0;  // not counting cache reads and writes
  int64_t output_tokens = 0;
  int64_t cache_write_tokens = 0;  // Anthropic cache_creation_input_tokens
  int64_t cache_read_tokens = 0;   // Anthropic cache_read_input_tokens, OpenAI cached_tokens
  bool reported = false;           // the upstream sent usage (else estimated or none)
};

// Shell-style glob: `*` any run, `?` one character; case-sensitive.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace atrium::relay
