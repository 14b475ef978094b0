#include "sigv4.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include "atrium/auth/crypto.h"
#include "atrium/http/router.h"

namespace atrium::relay::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

bool Unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims and collapses runs of spaces (and tabs) to one space, as canonical header values want.
std::string CanonicalValue(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (Unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalUri(std::string_view path) {
  if (path.empty()) return "/";
  return UriEncode(path, /*keep_slash=*/true);
}

std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> query) {
  for (auto& [k, v] : query) {
    k = UriEncode(k, false);
    v = UriEncode(v, false);
  }
  std::sort(query.begin(), query.end());
  std::string out;
  for (const auto& [k, v] : query) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

std::string AmzDate(int64_t micros) {
  time_t secs = static_cast<time_t>(micros / 1'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[20];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  std::string k = auth::HmacSha256("AWS4" + std::string(secret), date);
  k = auth::HmacSha256(k, region);
  k = auth::HmacSha256(k, service);
  return auth::HmacSha256(k, "aws4_request");
}

Signature Sign(const SignableRequest& request, const Credentials& credentials,
               std::string_view region, std::string_view service, std::string_view amz_date) {
  // Lower-case names, sorted; repeated names joined with ',' in their order.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : request.headers) {
    auto [it, fresh] = headers.try_emplace(Lower(name), CanonicalValue(value));
    if (!fresh) it->second += "," + CanonicalValue(value);
  }
  Signature s;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!s.signed_headers.empty()) s.signed_headers.push_back(';');
    s.signed_headers += name;
  }
  s.canonical_request = request.method + "\n" + CanonicalUri(request.path) + "\n" +
                        CanonicalQuery(request.query) + "\n" + canonical_headers + "\n" +
                        s.signed_headers + "\n" + request.payload_sha256;
  std::string_view date = amz_date.substr(0, 8);
  std::string scope =
      std::string(date) + "/" + std::string(region) + "/" + std::string(service) + "/aws4_request";
  s.string_to_sign = std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + scope + "\n" +
                     auth::Sha256Hex(s.canonical_request);
  std::string key = SigningKey(credentials.secret_access_key, date, region, service);
  s.signature = Hex(auth::HmacSha256(key, s.string_to_sign));
  s.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                    scope + ", SignedHeaders=" + s.signed_headers + ", Signature=" + s.signature;
  return s;
}

Status SignRequest(http::ClientRequest& request, const Credentials& credentials,
                   std::string_view region, std::string_view service, int64_t now_micros,
                   bool content_sha256) {
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return InvalidArgument("AWS credentials need an access key id and a secret access key");
  }
  std::string_view url = request.url;
  bool tls = false;
  if (url.starts_with("https://")) {
    tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return InvalidArgument("cannot sign '" + request.url + "': not an http(s) URL");
  }
  size_t authority_end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, authority_end);
  std::string_view rest =
      authority_end == std::string_view::npos ? std::string_view() : url.substr(authority_end);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  if (authority.empty()) return InvalidArgument("cannot sign '" + request.url + "': no host");
  // The client sends the port only when it is not the scheme's default.
  std::string host(authority);
  size_t bracket = host.rfind(']');
  size_t colon = host.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    std::string_view port = std::string_view(host).substr(colon + 1);
    if (port.empty() || port == (tls ? "443" : "80")) host.resize(colon);
  }
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t qmark = rest.find('?');
  SignableRequest sr;
  sr.method = request.method;
  sr.path = std::string(rest.substr(0, qmark));
  if (sr.path.empty()) sr.path = "/";
  if (qmark != std::string_view::npos) {
    std::string_view query = rest.substr(qmark + 1);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      sr.query.emplace_back(
          http::PercentDecode(pair.substr(0, eq)),
          eq == std::string_view::npos ? std::string() : http::PercentDecode(pair.substr(eq + 1)));
    }
  }
  std::string amz_date = AmzDate(now_micros);
  request.headers.Remove("authorization");
  request.headers.Set("host", host);
  request.headers.Set("x-amz-date", amz_date);
  if (!credentials.session_token.empty()) {
    request.headers.Set("x-amz-security-token", credentials.session_token);
  } else {
    request.headers.Remove("x-amz-security-token");
  }
  sr.payload_sha256 = auth::Sha256Hex(request.body);
  if (content_sha256) request.headers.Set("x-amz-content-sha256", sr.payload_sha256);
  for (const auto& [name, value] : request.headers.fields()) {
    std::string lower = Lower(name);
    if (lower == "user-agent" || lower == "expect" || lower == "x-amzn-trace-id") continue;
    sr.headers.emplace_back(std::move(lower), value);
  }
  Signature s = Sign(sr, credentials, region, service, amz_date);
  request.headers.Set("authorization", s.authorization);
  return Status::Ok();
}

}  // namespace atrium::relay::aws
