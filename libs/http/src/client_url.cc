#include "client_url.h"

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>

#include <string>

namespace atrium::http::client_internal {
namespace {

namespace urls = boost::urls;

std::string Bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// The decoded host of `u` (IPv6 without brackets), or empty.
std::string HostOf(const urls::url_view& u) {
  switch (u.host_type()) {
    case urls::host_type::ipv6:
      return u.host_ipv6_address().to_string();
    case urls::host_type::ipv4:
      return u.host_ipv4_address().to_string();
    case urls::host_type::name:
      return u.host_name();
    default:
      return {};
  }
}

Result<uint16_t> PortOf(const urls::url_view& u, uint16_t fallback, std::string_view url) {
  if (!u.has_port() || u.port().empty()) return fallback;
  if (u.port().size() > 5 || u.port_number() == 0) {
    return InvalidArgument("invalid port in URL '" + std::string(url) + "'");
  }
  return static_cast<uint16_t>(u.port_number());
}

}  // namespace

std::string TargetUrl::AbsoluteForm() const {
  return std::string(tls ? "https://" : "http://") + Authority() + target;
}

std::string TargetUrl::Authority() const { return Bracketed(host) + ":" + std::to_string(port); }

Result<TargetUrl> ParseTargetUrl(std::string_view url) {
  auto parsed = urls::parse_uri(url);
  if (!parsed) {
    return InvalidArgument("invalid URL '" + std::string(url) + "': " + parsed.error().message());
  }
  const urls::url_view& u = *parsed;
  TargetUrl t;
  if (u.scheme_id() == urls::scheme::https) {
    t.tls = true;
  } else if (u.scheme_id() != urls::scheme::http) {
    return InvalidArgument("unsupported URL scheme in '" + std::string(url) +
                           "' (want http or https)");
  }
  t.host = HostOf(u);
  if (t.host.empty()) return InvalidArgument("URL '" + std::string(url) + "' has no host");
  uint16_t default_port = t.tls ? 443 : 80;
  ASSIGN_OR_RETURN(t.port, PortOf(u, default_port, url));
  t.target = std::string(u.encoded_target());
  if (t.target.empty() || t.target.front() != '/') t.target.insert(0, "/");
  t.host_header = Bracketed(t.host);
  if (t.port != default_port) t.host_header += ":" + std::to_string(t.port);
  if (u.has_userinfo()) {
    t.authorization = "Basic " + Base64Encode(u.user() + ":" + u.password());
  }
  return t;
}

Result<ProxySpec> ParseProxyUrl(std::string_view url) {
  ProxySpec p;
  if (url.empty()) return p;
  auto parsed = urls::parse_uri(url);
  if (!parsed) {
    return InvalidArgument("invalid proxy URL '" + std::string(url) +
                           "': " + parsed.error().message());
  }
  const urls::url_view& u = *parsed;
  std::string scheme = u.scheme();
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  uint16_t default_port = 0;
  if (scheme == "http") {
    p.kind = ProxyKind::kHttp;
    default_port = 80;
  } else if (scheme == "socks5") {
    p.kind = ProxyKind::kSocks5;
    default_port = 1080;
  } else if (scheme == "socks5h") {
    p.kind = ProxyKind::kSocks5h;
    default_port = 1080;
  } else {
    return InvalidArgument("unsupported proxy scheme in '" + std::string(url) +
                           "' (want http, socks5 or socks5h)");
  }
  p.host = HostOf(u);
  if (p.host.empty()) return InvalidArgument("proxy URL '" + std::string(url) + "' has no host");
  ASSIGN_OR_RETURN(p.port, PortOf(u, default_port, url));
  if (u.has_userinfo()) {
    p.has_credentials = true;
    p.user = u.user();
    p.password = u.password();
  }
  return p;
}

Result<std::string> ResolveRedirect(std::string_view base, std::string_view location) {
  auto b = urls::parse_uri(base);
  auto ref = urls::parse_uri_reference(location);
  if (!b || !ref) {
    return InvalidArgument("invalid redirect Location '" + std::string(location) + "'");
  }
  urls::url dest;
  auto r = urls::resolve(*b, *ref, dest);
  if (!r)
    return InvalidArgument("cannot resolve redirect Location '" + std::string(location) + "'");
  dest.remove_fragment();
  return std::string(dest.buffer());
}

bool IsIpLiteral(std::string_view host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(host), ec);
  return !ec;
}

}  // namespace atrium::http::client_internal
