// URL handling for HttpClient (private): request URLs, proxy URLs and redirect targets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "atrium/core/base64.h"
#include "atrium/core/status.h"

namespace atrium::http::client_internal {

// An absolute http(s) URL split into what a request needs.
struct TargetUrl {
  bool tls = false;
  std::string host;           // decoded, IPv6 without brackets
  uint16_t port = 0;          // explicit or the scheme's default
  std::string target;         // origin-form: "/path?query" (never empty)
  std::string host_header;    // "host" or "host:port" (IPv6 bracketed); port only when non-default
  std::string authorization;  // "Basic ..." from user info, or empty
  // "http://127.0.0.1:8080/x?y" with the port always present, for absolute-form proxy requests.
  std::string AbsoluteForm() const;
  // "host:port" (IPv6 bracketed), the CONNECT authority.
  std::string Authority() const;
};

// InvalidArgument naming the URL when it is not an absolute http or https URL with a host.
Result<TargetUrl> ParseTargetUrl(std::string_view url);

enum class ProxyKind { kNone, kHttp, kSocks5, kSocks5h };

struct ProxySpec {
  ProxyKind kind = ProxyKind::kNone;
  std::string host;
  uint16_t port = 0;
  bool has_credentials = false;
  std::string user;
  std::string password;
};

// Empty `url` gives kind kNone. InvalidArgument naming the URL otherwise when malformed or of an
// unsupported scheme.
Result<ProxySpec> ParseProxyUrl(std::string_view url);

// Resolves a Location header value against the URL it was received for.
Result<std::string> ResolveRedirect(std::string_view base, std::string_view location);

// True for IPv4 or IPv6 literals (no SNI for those).
bool IsIpLiteral(std::string_view host);

}  // namespace atrium::http::client_internal
