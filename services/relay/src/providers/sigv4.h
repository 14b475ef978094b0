// AWS Signature Version 4 (the `bedrock` provider signs every request with it).
//
// The algorithm as AWS documents it ("Create a signed AWS API request", IAM user guide): a
// canonical request (method, canonical URI, canonical query, canonical headers, signed header
// names, hex SHA-256 of the payload), a string to sign (algorithm, x-amz-date, credential scope,
// hex SHA-256 of the canonical request), a signing key derived by HMAC-SHA256 from the secret key
// through date, region, service and "aws4_request", and the Authorization header carrying the
// hex HMAC of the string to sign. Session credentials add `x-amz-security-token`, which is signed.
//
// The canonical URI follows AWS's rule for every service but S3: each byte of the path as sent on
// the wire that is not unreserved (A-Z a-z 0-9 - . _ ~) or '/' is percent-encoded again, so a
// Bedrock model id sent as `.../v1:0/invoke` is signed as `.../v1%3A0/invoke`, and one sent as
// `%2F` is signed as `%252F`. Paths are not normalised (the relay builds them without dot
// segments or repeated slashes).
//
// Pure functions of their inputs (the time is passed in); thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/client.h"

namespace atrium::relay::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term credentials
};

// What SigV4 signs of one request.
struct SignableRequest {
  std::string method;
  std::string path = "/";                                  // as sent on the wire, without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded names and values
  std::vector<std::pair<std::string, std::string>> headers;  // every header to sign, host included
  std::string payload_sha256;                                // lower-case hex
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "content-type;host;x-amz-date"
  std::string signature;       // lower-case hex
  std::string authorization;   // the Authorization header value
};

// RFC 3986 percent-encoding as SigV4 wants it: unreserved bytes kept, everything else %XX with
// upper-case hex; '/' kept when `keep_slash`.
std::string UriEncode(std::string_view text, bool keep_slash);
// The canonical URI of a path as sent on the wire ("/" when empty).
std::string CanonicalUri(std::string_view path);
// Names and values encoded, sorted by name then value, joined with '&'.
std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> query);
// "20150830T123600Z" for microseconds since the epoch.
std::string AmzDate(int64_t micros);
// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"),
// raw 32 bytes; `date` is YYYYMMDD.
std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service);
// Lower-case hex of `bytes`.
std::string Hex(std::string_view bytes);

// Signs `request` at `amz_date` (YYYYMMDDTHHMMSSZ, which must also be the request's x-amz-date
// header when it has one) for `region` and `service`.
Signature Sign(const SignableRequest& request, const Credentials& credentials,
               std::string_view region, std::string_view service, std::string_view amz_date);

// Signs an outgoing request in place: sets `host` (as the HTTP client sends it: the port only
// when not the scheme's default), `x-amz-date`, `x-amz-security-token` (session credentials),
// `x-amz-content-sha256` (when `content_sha256`) and `authorization`, signing every header of
// `request` except user-agent, expect and x-amzn-trace-id (which proxies may rewrite).
// InvalidArgument when the URL is not an absolute http(s) URL or the credentials are incomplete.
Status SignRequest(http::ClientRequest& request, const Credentials& credentials,
                   std::string_view region, std::string_view service, int64_t now_micros,
                   bool content_sha256);

}  // namespace atrium::relay::aws
