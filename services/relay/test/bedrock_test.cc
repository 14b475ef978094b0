// The `bedrock` provider: AWS SigV4 against AWS's published test vectors, the AWS event-stream
// decoder (whole, split at every byte, corrupt and oversized frames), Bedrock's stream decoding,
// and the provider end to end — clients of /v1/messages and /v1/chat/completions, streaming or
// not, through the relay to a local Bedrock (FakeUpstream) that checks every request's SigV4
// signature with its own independent recomputation (OpenSSL directly) and answers like Bedrock:
// InvokeModel JSON with token-count headers, event streams, throttling, bad signatures.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/core/base64.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/relay/relay_service.h"
#include "atrium/relay/usage.h"
#include "fake_upstream.h"
#include "providers/aws_eventstream.h"
#include "providers/providers.h"
#include "providers/sigv4.h"
#include "relay_fixture.h"

namespace atrium::relay {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::Backend;
using testing::FakeUpstream;
using testing::JsonReply;
using testing::RelayHttpTest;
using testing::Reply;
using testing::Script;
using testing::Step;
using testing::UpstreamRequest;

// ---------------------------------------------------------------------------------------------
// SigV4: AWS's test suite (credential AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service
// "service"). Expected values are copied from the published vectors, never computed here:
//   [js]  aws/aws-sdk-js-v3 packages/signature-v4/src/suite.fixture.ts (the suite's requests
//         and Authorization headers);
//   [crt] awslabs/aws-c-auth tests/aws-signing-test-suite/v4/<case>/ (header-signed-request.txt,
//         context.json, *-string-to-sign.txt);
//   [suite] the suite's get-vanilla.creq / .sts (docs.aws.amazon.com, "Signature Version 4 test
//         suite"), as vendored by the SDKs;
//   [iam] the IAM ListUsers example of the AWS docs ("Examples of how to derive a signing key",
//         "Create a signed AWS API request"), also asserted by awslabs/smithy-rs aws-sigv4.

constexpr const char* kAkid = "AKIDEXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr const char* kDate = "20150830T123600Z";
constexpr int64_t kDateMicros = int64_t{1440938160} * 1'000'000;  // 2015-08-30T12:36:00Z
constexpr const char* kEmptySha =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string SuiteAuthorization(const std::string& signed_headers, const std::string& signature,
                               const std::string& service = "service") {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/" + service +
         "/aws4_request, SignedHeaders=" + signed_headers + ", Signature=" + signature;
}

aws::SignableRequest SuiteRequest(std::string method, std::string path,
                                  std::vector<std::pair<std::string, std::string>> query = {},
                                  std::vector<std::pair<std::string, std::string>> extra = {}) {
  aws::SignableRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kDate}};
  for (auto& h : extra) r.headers.push_back(std::move(h));
  r.payload_sha256 = kEmptySha;
  return r;
}

aws::Signature SuiteSign(const aws::SignableRequest& r) {
  return aws::Sign(r, aws::Credentials{kAkid, kSecret, ""}, "us-east-1", "service", kDate);
}

TEST(SigV4, GetVanillaMatchesTheSuitesCanonicalRequestStringToSignAndSignature) {
  aws::Signature s = SuiteSign(SuiteRequest("GET", "/"));
  // [suite] get-vanilla.creq
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // [suite] get-vanilla.sts
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  // [js] [crt] get-vanilla
  EXPECT_EQ(s.authorization,
            SuiteAuthorization("host;x-amz-date",
                               "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(SigV4, SuiteCasesSignToTheirPublishedAuthorization) {
  struct Case {
    const char* name;
    aws::SignableRequest request;
    std::string signed_headers, signature;
  };
  const std::string unreserved =
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::vector<Case> cases = {
      // [js] [crt]
      {"get-vanilla-query-order-key-case",
       SuiteRequest("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}), "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      // [js] [crt]: the path "/ሴ" is signed as /%E1%88%B4
      {"get-utf8", SuiteRequest("GET", "/\xE1\x88\xB4"), "host;x-amz-date",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      // [js]
      {"get-unreserved", SuiteRequest("GET", "/" + unreserved), "host;x-amz-date",
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-vanilla-empty-query-key", SuiteRequest("GET", "/", {{"Param1", "value1"}}),
       "host;x-amz-date", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
      {"get-vanilla-query-unreserved", SuiteRequest("GET", "/", {{unreserved, unreserved}}),
       "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-vanilla-utf8-query", SuiteRequest("GET", "/", {{"\xE1\x88\xB4", "bar"}}),
       "host;x-amz-date", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-header-value-trim",
       SuiteRequest("GET", "/", {}, {{"My-Header1", "value1"}, {"My-Header2", "\"a   b   c\""}}),
       "host;my-header1;my-header2;x-amz-date",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"get-header-value-order",
       SuiteRequest("GET", "/", {}, {{"My-Header1", "value4,value1,value3,value2"}}),
       "host;my-header1;x-amz-date",
       "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
      // [js] [crt]
      {"post-vanilla", SuiteRequest("POST", "/"), "host;x-amz-date",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      // [js]
      {"post-vanilla-query", SuiteRequest("POST", "/", {{"Param1", "value1"}}), "host;x-amz-date",
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"post-header-value-case", SuiteRequest("POST", "/", {}, {{"My-Header1", "VALUE1"}}),
       "host;my-header1;x-amz-date",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"post-vanilla-query-nonunreserved",
       SuiteRequest("POST", "/", {{"@#$%^", ""}, {"+", "/,?><`\";:\\|][{}"}}), "host;x-amz-date",
       "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(SuiteSign(c.request).authorization, SuiteAuthorization(c.signed_headers, c.signature))
        << c.name;
  }
}

TEST(SigV4, PostFormBodyIsSignedByItsSha256) {
  // [js] post-x-www-form-urlencoded: body "Param1=value1".
  aws::SignableRequest r =
      SuiteRequest("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded"}});
  r.payload_sha256 = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
  EXPECT_EQ(SuiteSign(r).authorization,
            SuiteAuthorization("content-type;host;x-amz-date",
                               "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
}

TEST(SigV4, IamListUsersExampleFromTheAwsDocs) {
  // [iam] GET https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08
  aws::SignableRequest r;
  r.method = "GET";
  r.path = "/";
  r.query = {{"Action", "ListUsers"}, {"Version", "2010-05-08"}};
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"Host", "iam.amazonaws.com"},
               {"X-Amz-Date", kDate}};
  r.payload_sha256 = kEmptySha;
  aws::Signature s = aws::Sign(r, {kAkid, kSecret, ""}, "us-east-1", "iam", kDate);
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  EXPECT_EQ(aws::Hex(aws::SigningKey(kSecret, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
  EXPECT_EQ(s.authorization,
            SuiteAuthorization("content-type;host;x-amz-date",
                               "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
                               "iam"));
}

TEST(SigV4, SignRequestFillsTheHeadersOfAnOutgoingRequest) {
  http::ClientRequest get;
  get.method = "GET";
  get.url = "https://example.amazonaws.com/?Param2=value2&Param1=value1";
  ASSERT_TRUE(aws::SignRequest(get, {kAkid, kSecret, ""}, "us-east-1", "service", kDateMicros,
                               /*content_sha256=*/false)
                  .ok());
  EXPECT_EQ(get.headers.GetOr("host", ""), "example.amazonaws.com");
  EXPECT_EQ(get.headers.GetOr("x-amz-date", ""), kDate);
  EXPECT_EQ(get.headers.GetOr("authorization", ""),  // [js] [crt] query-order-key-case
            SuiteAuthorization("host;x-amz-date",
                               "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));

  // [crt] get-vanilla-with-session-token: the token is sent and signed.
  http::ClientRequest session;
  session.method = "GET";
  session.url = "https://example.amazonaws.com:443/";
  ASSERT_TRUE(aws::SignRequest(session,
                               {kAkid, kSecret,
                                "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"},
                               "us-east-1", "service", kDateMicros, false)
                  .ok());
  EXPECT_EQ(session.headers.GetOr("host", ""), "example.amazonaws.com");  // default port dropped
  EXPECT_EQ(session.headers.GetOr("x-amz-security-token", ""),
            "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267");
  EXPECT_EQ(session.headers.GetOr("authorization", ""),
            SuiteAuthorization("host;x-amz-date;x-amz-security-token",
                               "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"));

  // [js] post-x-www-form-urlencoded, with the body hashed by SignRequest itself.
  http::ClientRequest post;
  post.method = "POST";
  post.url = "https://example.amazonaws.com/";
  post.body = "Param1=value1";
  post.headers.Set("Content-Type", "application/x-www-form-urlencoded");
  post.headers.Set("User-Agent", "not-signed/1.0");
  ASSERT_TRUE(
      aws::SignRequest(post, {kAkid, kSecret, ""}, "us-east-1", "service", kDateMicros, false)
          .ok());
  EXPECT_EQ(post.headers.GetOr("authorization", ""),
            SuiteAuthorization("content-type;host;x-amz-date",
                               "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));

  // A non-default port is part of the signed host, as the client sends it.
  http::ClientRequest local;
  local.method = "POST";
  local.url = "http://127.0.0.1:8080/model/x:0/invoke";
  ASSERT_TRUE(
      aws::SignRequest(local, {kAkid, kSecret, ""}, "us-east-1", "bedrock", kDateMicros, true)
          .ok());
  EXPECT_EQ(local.headers.GetOr("host", ""), "127.0.0.1:8080");
  EXPECT_EQ(local.headers.GetOr("x-amz-content-sha256", ""), kEmptySha);
  EXPECT_NE(local.headers.GetOr("authorization", "").find("x-amz-content-sha256;x-amz-date"),
            std::string_view::npos);

  http::ClientRequest bad;
  bad.url = "ftp://example.com/";
  EXPECT_FALSE(aws::SignRequest(bad, {kAkid, kSecret, ""}, "r", "s", kDateMicros, false).ok());
  bad.url = "https://example.com/";
  EXPECT_FALSE(aws::SignRequest(bad, {"", kSecret, ""}, "r", "s", kDateMicros, false).ok());
}

TEST(SigV4, BedrockModelIdsAreSignedWithTheColonEncoded) {
  EXPECT_EQ(aws::CanonicalUri("/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke");
  // An ARN's '/' is sent as %2F and, like every '%', encoded again in the canonical URI.
  EXPECT_EQ(aws::CanonicalUri("/model/arn%2Fx/invoke"), "/model/arn%252Fx/invoke");
  EXPECT_EQ(aws::CanonicalUri(""), "/");
  EXPECT_EQ(aws::AmzDate(kDateMicros), kDate);
}

// ---------------------------------------------------------------------------------------------
// The event-stream decoder.

aws::EventStreamMessage Message(std::vector<aws::EventStreamHeader> headers, std::string payload) {
  aws::EventStreamMessage m;
  m.headers = std::move(headers);
  m.payload = std::move(payload);
  return m;
}

std::string ChunkFrame(const std::string& anthropic_event) {
  return aws::EncodeEventStreamMessage(
      Message({aws::StringHeader(":event-type", "chunk"),
               aws::StringHeader(":content-type", "application/json"),
               aws::StringHeader(":message-type", "event")},
              R"({"bytes":")" + Base64Encode(anthropic_event) + R"(","p":"abcdefghijkl"})"));
}

std::string ExceptionFrame(const std::string& type, const std::string& message) {
  return aws::EncodeEventStreamMessage(
      Message({aws::StringHeader(":exception-type", type),
               aws::StringHeader(":content-type", "application/json"),
               aws::StringHeader(":message-type", "exception")},
              R"({"message":")" + message + R"("})"));
}

uint32_t ReadU32(const std::string& s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

TEST(EventStream, Crc32IsTheIeeeCrc) {
  // The CRC-32 check value of "123456789" (the CRC catalogue's CRC-32/ISO-HDLC entry).
  EXPECT_EQ(aws::Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(aws::Crc32(""), 0u);
  EXPECT_EQ(aws::Crc32("6789", aws::Crc32("12345")), 0xCBF43926u);
}

std::string Bytes(std::initializer_list<int> b) {
  std::string out;
  for (int c : b) out.push_back(static_cast<char>(c));
  return out;
}

TEST(EventStream, DecodesAndEncodesAwsPublishedVectors) {
  // awslabs/aws-c-event-stream tests/message_deserializer_test.c: the no-op message, application
  // data without headers, and one string header ("content-type": "application/json").
  std::string noop = Bytes({0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb,
                            0x7d, 0x98, 0xc8, 0xff});
  std::string data =
      Bytes({0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a}) +
      "{'foo':'bar'}" + Bytes({0xc3, 0x65, 0x39, 0x36});
  std::string header =
      Bytes({0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C}) +
      "content-type" + Bytes({0x07, 0x00, 0x10}) + "application/json" + "{'foo':'bar'}" +
      Bytes({0x8D, 0x9C, 0x08, 0xB1});
  aws::EventStreamDecoder d;
  std::vector<aws::EventStreamMessage> out;
  ASSERT_TRUE(d.Feed(noop + data + header, out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].headers.empty());
  EXPECT_TRUE(out[0].payload.empty());
  EXPECT_EQ(out[1].payload, "{'foo':'bar'}");
  ASSERT_EQ(out[2].headers.size(), 1u);
  EXPECT_EQ(out[2].StringHeader("content-type"), "application/json");
  EXPECT_EQ(out[2].payload, "{'foo':'bar'}");
  EXPECT_EQ(aws::EncodeEventStreamMessage(out[0]), noop);
  EXPECT_EQ(aws::EncodeEventStreamMessage(out[1]), data);
  EXPECT_EQ(aws::EncodeEventStreamMessage(out[2]), header);
}

TEST(EventStream, DecodesTheFuzzSeedWrittenByAnotherEncoder) {
  // fuzz/seeds/aws_eventstream_fuzz was written with Python's struct and zlib.crc32.
  const char* src = std::getenv("ATRIUM_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "ATRIUM_SOURCE_DIR not set (run through ctest)";
  std::ifstream in(std::string(src) + "/fuzz/seeds/aws_eventstream_fuzz/chunk_then_exception",
                   std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(bytes.empty());
  aws::EventStreamDecoder d;
  std::vector<aws::EventStreamMessage> out;
  ASSERT_TRUE(d.Feed(bytes, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(d.idle());
  EXPECT_EQ(out[0].StringHeader(":event-type"), "chunk");
  EXPECT_EQ(out[1].StringHeader(":exception-type"), "throttlingException");
}

TEST(EventStream, EncodedFrameHasTheDocumentedLayout) {
  std::string frame =
      aws::EncodeEventStreamMessage(Message({aws::StringHeader(":message-type", "event")}, "{}"));
  // headers: 1 + 13 (":message-type") + 1 + 2 + 5 ("event") = 22; 12 + 22 + 2 + 4 = 40.
  ASSERT_EQ(frame.size(), 40u);
  EXPECT_EQ(ReadU32(frame, 0), 40u);
  EXPECT_EQ(ReadU32(frame, 4), 22u);
  EXPECT_EQ(ReadU32(frame, 8), aws::Crc32(frame.substr(0, 8)));
  EXPECT_EQ(ReadU32(frame, 36), aws::Crc32(frame.substr(0, 36)));
  EXPECT_EQ(frame[12], 13);
  EXPECT_EQ(frame.substr(13, 13), ":message-type");
  EXPECT_EQ(frame[26], 7);  // string
}

TEST(EventStream, DecodesEveryHeaderTypeAndThePayload) {
  aws::EventStreamMessage m;
  auto add = [&](const char* name, aws::EventStreamValueType t, int64_t n, std::string bytes) {
    aws::EventStreamHeader h;
    h.name = name;
    h.type = t;
    h.number = n;
    h.bytes = std::move(bytes);
    m.headers.push_back(std::move(h));
  };
  using T = aws::EventStreamValueType;
  add("t", T::kBoolTrue, 1, "");
  add("f", T::kBoolFalse, 0, "");
  add("b", T::kByte, -3, "");
  add("s", T::kShort, -300, "");
  add("i", T::kInteger, 70000, "");
  add("l", T::kLong, -5'000'000'000, "");
  add("bytes", T::kBytes, 0, std::string("\0\1\2", 3));
  add("str", T::kString, 0, "hello");
  add("ts", T::kTimestamp, 1'700'000'000'000, "");
  add("uuid", T::kUuid, 0, std::string(16, 'u'));
  m.payload = std::string("pay\0load", 8);
  std::string frame = aws::EncodeEventStreamMessage(m);
  aws::EventStreamDecoder d;
  std::vector<aws::EventStreamMessage> out;
  ASSERT_TRUE(d.Feed(frame, out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(d.idle());
  ASSERT_EQ(out[0].headers.size(), m.headers.size());
  for (size_t i = 0; i < m.headers.size(); ++i) {
    EXPECT_EQ(out[0].headers[i].name, m.headers[i].name);
    EXPECT_EQ(out[0].headers[i].type, m.headers[i].type) << m.headers[i].name;
    EXPECT_EQ(out[0].headers[i].number, m.headers[i].number) << m.headers[i].name;
    EXPECT_EQ(out[0].headers[i].bytes, m.headers[i].bytes) << m.headers[i].name;
  }
  EXPECT_EQ(out[0].payload, m.payload);
  EXPECT_EQ(out[0].StringHeader("str"), "hello");
  EXPECT_EQ(out[0].StringHeader("bytes"), "");  // not a string header
  EXPECT_EQ(aws::EncodeEventStreamMessage(out[0]), frame);
}

TEST(EventStream, FramesSplitAtEveryByteBoundaryDecodeTheSame) {
  std::string stream = ChunkFrame(R"({"type":"ping"})") + ExceptionFrame("x", "y") +
                       aws::EncodeEventStreamMessage(Message({}, "")) +
                       ChunkFrame(R"({"type":"message_stop"})");
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    aws::EventStreamDecoder d;
    std::vector<aws::EventStreamMessage> out;
    ASSERT_TRUE(d.Feed(std::string_view(stream).substr(0, cut), out).ok()) << cut;
    ASSERT_TRUE(d.Feed(std::string_view(stream).substr(cut), out).ok()) << cut;
    ASSERT_EQ(out.size(), 4u) << cut;
    EXPECT_TRUE(d.idle());
    EXPECT_EQ(out[1].StringHeader(":exception-type"), "x");
    EXPECT_TRUE(out[2].headers.empty());
    EXPECT_TRUE(out[2].payload.empty());
  }
  // One byte at a time.
  aws::EventStreamDecoder d;
  std::vector<aws::EventStreamMessage> out;
  for (char c : stream) ASSERT_TRUE(d.Feed(std::string_view(&c, 1), out).ok());
  EXPECT_EQ(out.size(), 4u);
  // A partial message is not idle.
  aws::EventStreamDecoder partial;
  ASSERT_TRUE(partial.Feed(std::string_view(stream).substr(0, 20), out).ok());
  EXPECT_FALSE(partial.idle());
}

TEST(EventStream, CorruptPreludeCrcIsRefusedAndTheDecoderStaysFailed) {
  std::string good = ChunkFrame(R"({"type":"ping"})");
  std::string bad = good;
  bad[10] = static_cast<char>(bad[10] ^ 0x01);  // the prelude CRC itself
  aws::EventStreamDecoder d;
  std::vector<aws::EventStreamMessage> out;
  Status s = d.Feed(good + bad, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("prelude CRC"), std::string::npos) << s.message();
  EXPECT_EQ(out.size(), 1u);  // the message before the fault
  EXPECT_FALSE(d.idle());
  EXPECT_FALSE(d.Feed(good, out).ok());  // stays failed
  EXPECT_EQ(out.size(), 1u);

  // A flipped length bit is caught by the prelude CRC before the length is believed.
  std::string longer = good;
  longer[1] = static_cast<char>(longer[1] ^ 0x40);
  aws::EventStreamDecoder d2;
  EXPECT_NE(d2.Feed(longer, out).message().find("prelude CRC"), std::string::npos);
}

TEST(EventStream, CorruptMessageCrcIsRefused) {
  std::string frame = ChunkFrame(R"({"type":"ping"})");
  for (size_t at : {size_t{12}, frame.size() - 10, frame.size() - 1}) {
    std::string bad = frame;
    bad[at] = static_cast<char>(bad[at] ^ 0x20);
    aws::EventStreamDecoder d;
    std::vector<aws::EventStreamMessage> out;
    Status s = d.Feed(bad, out);
    EXPECT_NE(s.message().find("message CRC"), std::string::npos) << at << " " << s.message();
    EXPECT_TRUE(out.empty());
  }
}

// A prelude with a valid CRC for the given lengths.
std::string Prelude(uint32_t total, uint32_t headers) {
  std::string p;
  for (uint32_t v : {total, headers}) {
    for (int i = 3; i >= 0; --i) p.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  uint32_t crc = aws::Crc32(p);
  for (int i = 3; i >= 0; --i) p.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return p;
}

TEST(EventStream, OutOfBoundsLengthsAreRefusedBeforeAnythingIsBuffered) {
  struct Case {
    uint32_t total, headers;
    const char* what;
  };
  for (const Case& c : {Case{0xFFFFFFFFu, 0, "message length"},
                        Case{aws::kEventStreamMaxMessageBytes + 1, 0, "message length"},
                        Case{15, 0, "message length"}, Case{100, 85, "headers length"},
                        Case{1 << 20, (128 << 10) + 1, "headers length"}}) {
    aws::EventStreamDecoder d;
    std::vector<aws::EventStreamMessage> out;
    Status s = d.Feed(Prelude(c.total, c.headers), out);
    EXPECT_NE(s.message().find(c.what), std::string::npos) << c.total << ": " << s.message();
  }
  // The decoder's own bound.
  aws::EventStreamDecoder small(64);
  std::vector<aws::EventStreamMessage> out;
  EXPECT_FALSE(small.Feed(ChunkFrame(std::string(100, 'x')), out).ok());
  // A total exactly at the bound is fine.
  std::string frame = aws::EncodeEventStreamMessage(Message({}, std::string(48, 'p')));
  aws::EventStreamDecoder exact(64);
  EXPECT_TRUE(exact.Feed(frame, out).ok());
}

TEST(EventStream, MalformedHeadersAreRefused) {
  // A header claiming a 200-byte string inside a 10-byte headers section (CRCs valid).
  std::string headers =
      std::string(1, '\x01') + "a" + std::string(1, '\x07') + std::string("\x00\xC8", 2);
  headers += "xxxxx";
  std::string frame =
      Prelude(static_cast<uint32_t>(16 + headers.size()), static_cast<uint32_t>(headers.size())) +
      headers;
  uint32_t crc = aws::Crc32(frame);
  for (int i = 3; i >= 0; --i) frame.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  aws::EventStreamDecoder d;
  std::vector<aws::EventStreamMessage> out;
  EXPECT_NE(d.Feed(frame, out).message().find("truncated header value"), std::string::npos);

  // An unknown value type.
  std::string h2 = std::string(1, '\x01') + "a" + std::string(1, '\x0B');
  std::string f2 = Prelude(static_cast<uint32_t>(16 + h2.size()), static_cast<uint32_t>(h2.size()));
  f2 += h2;
  crc = aws::Crc32(f2);
  for (int i = 3; i >= 0; --i) f2.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  aws::EventStreamDecoder d2;
  EXPECT_NE(d2.Feed(f2, out).message().find("unknown header value type"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Bedrock's stream decoding, model ids and request bodies.

TEST(BedrockStream, ChunksBecomeAnthropicSseEvents) {
  auto dec = MakeBedrockStreamDecoder();
  std::string start = R"({"type":"message_start","message":{"usage":{"input_tokens":3}}})";
  std::string stop =
      R"({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}})";
  std::string stream = ChunkFrame(start) + ChunkFrame(stop);
  std::string sse = dec->Feed(std::string_view(stream).substr(0, 7));
  EXPECT_EQ(sse, "");
  sse += dec->Feed(std::string_view(stream).substr(7));
  EXPECT_EQ(sse, "event: message_start\ndata: " + start + "\n\nevent: message_stop\ndata: " + stop +
                     "\n\n");
  EXPECT_TRUE(dec->delivered());
  EXPECT_FALSE(dec->error());
}

TEST(BedrockStream, ExceptionsBecomeAnErrorEventWithTheirStatus) {
  for (auto [type, status] :
       std::vector<std::pair<std::string, int>>{{"throttlingException", 429},
                                                {"modelStreamErrorException", 502},
                                                {"internalServerException", 500},
                                                {"serviceUnavailableException", 503}}) {
    auto dec = MakeBedrockStreamDecoder();
    std::string sse = dec->Feed(ExceptionFrame(type, "Too many tokens") + ChunkFrame("{}"));
    ASSERT_TRUE(dec->error()) << type;
    EXPECT_EQ(dec->error()->status, status) << type;
    EXPECT_NE(dec->error()->message.find(type), std::string::npos);
    EXPECT_FALSE(dec->delivered());
    EXPECT_TRUE(sse.starts_with("event: error\ndata: {\"type\":\"error\"")) << sse;
    EXPECT_NE(sse.find("Too many tokens"), std::string::npos);
    EXPECT_EQ(dec->Feed(ChunkFrame(R"({"type":"ping"})")), "");  // nothing after the failure
  }
  // A corrupt frame, and a chunk that is not base64 of an event.
  auto corrupt = MakeBedrockStreamDecoder();
  std::string frame = ChunkFrame(R"({"type":"ping"})");
  frame[frame.size() - 1] = static_cast<char>(frame[frame.size() - 1] ^ 1);
  EXPECT_NE(corrupt->Feed(frame).find("message CRC"), std::string::npos);
  EXPECT_EQ(corrupt->error()->status, 502);
  auto junk = MakeBedrockStreamDecoder();
  (void)junk->Feed(aws::EncodeEventStreamMessage(Message(
      {aws::StringHeader(":message-type", "event"), aws::StringHeader(":event-type", "chunk")},
      R"({"bytes":"!!!"})")));
  ASSERT_TRUE(junk->error());
  EXPECT_EQ(junk->error()->status, 502);
}

TEST(Bedrock, ModelIdsAndRequestBodies) {
  EXPECT_EQ(BedrockModelId("claude-3-5-sonnet"), "anthropic.claude-3-5-sonnet-20240620-v1:0");
  EXPECT_EQ(BedrockModelId("claude-3-5-haiku-latest"), "anthropic.claude-3-5-haiku-20241022-v1:0");
  EXPECT_EQ(BedrockModelId("us.anthropic.claude-sonnet-4-20250514-v1:0"),
            "us.anthropic.claude-sonnet-4-20250514-v1:0");
  http::Headers h;
  h.Set("anthropic-beta", "a-1, b-2");
  auto body = BedrockRequestBody(
      R"({"model":"m","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"x"}]})",
      h);
  ASSERT_TRUE(body.ok());
  auto v = json::parse(*body);
  EXPECT_FALSE(v.as_object().contains("model"));
  EXPECT_FALSE(v.as_object().contains("stream"));
  EXPECT_EQ(v.at("anthropic_version"), "bedrock-2023-05-31");
  EXPECT_EQ(json::serialize(v.at("anthropic_beta")), R"(["a-1","b-2"])");
  EXPECT_EQ(v.at("max_tokens").as_int64(), 5);
  EXPECT_FALSE(BedrockRequestBody("[1]", h).ok());
}

TEST(Bedrock, PrepareAndSignAddressTheRegionalEndpoint) {
  const ProviderAdapter* a = FindProvider("bedrock");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->format(), ApiFormat::kAnthropic);
  EXPECT_FALSE(a->Supports(Operation::kEmbeddings));
  Account acc;
  acc.id = "acc_1";
  acc.credentials = {{"access_key_id", kAkid},
                     {"secret_access_key", kSecret},
                     {"region", "eu-west-3"},
                     {"session_token", "tok"}};
  http::ClientRequest req;
  req.method = "POST";
  req.body = R"({"model":"claude-3-5-sonnet","max_tokens":1,"messages":[]})";
  ASSERT_TRUE(a->Prepare(acc, Operation::kChat, "claude-3-5-sonnet", true, {}, req).ok());
  EXPECT_EQ(req.url,
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
            "anthropic.claude-3-5-sonnet-20240620-v1:0/invoke-with-response-stream");
  EXPECT_EQ(req.headers.GetOr("accept", ""), "application/vnd.amazon.eventstream");
  ASSERT_TRUE(a->Sign(acc, kDateMicros, req).ok());
  EXPECT_EQ(req.headers.GetOr("host", ""), "bedrock-runtime.eu-west-3.amazonaws.com");
  EXPECT_EQ(req.headers.GetOr("x-amz-security-token", ""), "tok");
  EXPECT_TRUE(req.headers.GetOr("authorization", "")
                  .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-3/"
                               "bedrock/aws4_request, SignedHeaders=accept;content-type;host;"
                               "x-amz-content-sha256;x-amz-date;x-amz-security-token, "))
      << req.headers.GetOr("authorization", "");
  // An ARN's '/' is percent-encoded in the path.
  http::ClientRequest arn;
  arn.body = "{}";
  ASSERT_TRUE(
      a->Prepare(acc, Operation::kChat, "arn:aws:bedrock:eu-west-3:1:x/y", false, {}, arn).ok());
  EXPECT_TRUE(arn.url.ends_with("/model/arn:aws:bedrock:eu-west-3:1:x%2Fy/invoke")) << arn.url;

  Account missing = acc;
  missing.credentials.erase("region");
  http::ClientRequest r2;
  r2.body = "{}";
  Status s = a->Prepare(missing, Operation::kChat, "m", false, {}, r2);
  EXPECT_NE(s.message().find("credentials.region"), std::string::npos);
  missing.credentials["region"] = "us-east-1/../x";
  EXPECT_FALSE(a->Prepare(missing, Operation::kChat, "m", false, {}, r2).ok());

  http::Headers eh;
  eh.Set("x-amzn-ErrorType",
         "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/");
  auto err = json::parse(a->NormalizeErrorBody(429, eh, R"({"message":"Too many requests"})"));
  EXPECT_EQ(err.at("error").at("type"), "rate_limit_error");
  EXPECT_EQ(err.at("error").at("message"), "bedrock ThrottlingException: Too many requests");
  http::Headers uh;
  uh.Set("x-amzn-bedrock-input-token-count", "12");
  uh.Set("x-amzn-bedrock-output-token-count", "34");
  auto u = a->UsageFromHeaders(uh);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->input_tokens, 12);
  EXPECT_EQ(u->output_tokens, 34);
  EXPECT_FALSE(a->UsageFromHeaders(http::Headers()));
}

// ---------------------------------------------------------------------------------------------
// End to end: the relay in front of a local Bedrock that verifies SigV4 independently.

std::string SslSha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string SslHmac(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string ToHex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

// The verifier's own canonical URI: every byte of the received path outside A-Z a-z 0-9 -._~
// and '/' percent-encoded (upper-case hex), as AWS recomputes it for services other than S3.
std::string VerifierCanonicalUri(std::string_view path) {
  std::string out;
  char buf[4];
  for (unsigned char c : path) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string Collapse(std::string v) {
  std::string out;
  for (char c : v) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Checks one request the way Bedrock would; empty when it is correctly signed.
std::string VerifySigV4(const UpstreamRequest& req,
                        const std::map<std::string, std::string>& secrets,
                        const std::map<std::string, std::string>& tokens,
                        std::string* canonical_out = nullptr) {
  auto header = [&](const std::string& name) {
    auto it = req.headers.find(name);
    return it == req.headers.end() ? std::string() : it->second;
  };
  std::string auth = header("authorization");
  const std::string prefix = "AWS4-HMAC-SHA256 Credential=";
  if (!auth.starts_with(prefix)) return "no AWS4-HMAC-SHA256 authorization: " + auth;
  size_t c1 = auth.find(", SignedHeaders=");
  size_t c2 = auth.find(", Signature=");
  if (c1 == std::string::npos || c2 == std::string::npos || c2 < c1) return "malformed: " + auth;
  std::string credential = auth.substr(prefix.size(), c1 - prefix.size());
  std::string signed_headers = auth.substr(c1 + 16, c2 - c1 - 16);
  std::string signature = auth.substr(c2 + 12);
  // AKID/date/region/service/aws4_request
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = credential.find('/', start);
    parts.push_back(credential.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 5 || parts[4] != "aws4_request") return "bad credential " + credential;
  auto secret = secrets.find(parts[0]);
  if (secret == secrets.end()) return "unknown access key " + parts[0];
  if (parts[2] != "us-west-2" || parts[3] != "bedrock") return "bad scope " + credential;
  std::string amz_date = header("x-amz-date");
  if (amz_date.size() != 16 || amz_date.substr(0, 8) != parts[1]) return "bad x-amz-date";
  struct tm tm {};
  if (strptime(amz_date.c_str(), "%Y%m%dT%H%M%SZ", &tm) == nullptr) return "bad x-amz-date";
  auto skew =
      std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(timegm(&tm));
  if (skew > 5min || skew < -5min) return "x-amz-date too far from now";
  if (auto t = tokens.find(parts[0]); t != tokens.end()) {
    if (header("x-amz-security-token") != t->second) return "missing session token";
  }
  std::string payload_hash = SslSha256Hex(req.body);
  if (auto c = header("x-amz-content-sha256"); !c.empty() && c != payload_hash) {
    return "x-amz-content-sha256 does not match the body";
  }
  std::string canonical_headers;
  std::vector<std::string> names;
  for (size_t start = 0;;) {
    size_t semi = signed_headers.find(';', start);
    names.push_back(signed_headers.substr(start, semi - start));
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  for (const char* required : {"host", "x-amz-date", "content-type"}) {
    if (std::find(names.begin(), names.end(), required) == names.end()) {
      return std::string(required) + " is not signed";
    }
  }
  if (tokens.contains(parts[0]) &&
      std::find(names.begin(), names.end(), "x-amz-security-token") == names.end()) {
    return "the session token is not signed";
  }
  for (const auto& n : names) {
    if (!req.headers.contains(n)) return "signed header " + n + " was not sent";
    canonical_headers += n + ":" + Collapse(header(n)) + "\n";
  }
  size_t q = req.path.find('?');
  if (q != std::string::npos) return "unexpected query";
  std::string canonical = req.method + "\n" + VerifierCanonicalUri(req.path) + "\n\n" +
                          canonical_headers + "\n" + signed_headers + "\n" + payload_hash;
  if (canonical_out != nullptr) *canonical_out = canonical;
  std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + parts[1] + "/" + parts[2] + "/" +
                        parts[3] + "/aws4_request\n" + SslSha256Hex(canonical);
  std::string k = SslHmac("AWS4" + secret->second, parts[1]);
  k = SslHmac(k, parts[2]);
  k = SslHmac(k, parts[3]);
  k = SslHmac(k, "aws4_request");
  if (ToHex(SslHmac(k, to_sign)) != signature) return "signature mismatch";
  return "";
}

// Bedrock's answers.
Script EventStreamReply(const std::string& bytes, size_t piece) {
  Script s;
  s.steps.push_back(
      Step{"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\n"
           "x-amzn-requestid: 6b0a1c5e-0000-4000-8000-000000000000\r\n"
           "transfer-encoding: chunked\r\nconnection: close\r\n\r\n"});
  for (size_t at = 0; at < bytes.size(); at += piece) {
    s.steps.push_back(Step{testing::Chunk(bytes.substr(at, piece)), 1});
  }
  s.steps.push_back(Step{"0\r\n\r\n"});
  return s;
}

std::vector<std::pair<std::string, std::string>> AnthropicEvents(int input, int output,
                                                                 bool finish = true) {
  std::vector<std::pair<std::string, std::string>> e = {
      {"message_start",
       R"({"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-3-5-sonnet-20240620","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":)" +
           std::to_string(input) + R"(,"output_tokens":1}}})"},
      {"content_block_start",
       R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"},
      {"content_block_delta",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})"},
      {"content_block_delta",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}})"},
  };
  if (finish) {
    e.push_back({"content_block_stop", R"({"type":"content_block_stop","index":0})"});
    e.push_back(
        {"message_delta",
         R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":)" +
             std::to_string(output) + "}}"});
    e.push_back(
        {"message_stop",
         R"({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":)" +
             std::to_string(input) + R"(,"outputTokenCount":)" + std::to_string(output) +
             R"(,"invocationLatency":511,"firstByteLatency":201}})"});
  }
  return e;
}

std::string InvokeModelJson(bool with_usage = true) {
  return R"({"id":"msg_bdrk_02","type":"message","role":"assistant","model":"claude-3-5-sonnet-20240620","content":[{"type":"text","text":"Hello from Bedrock"}],"stop_reason":"end_turn","stop_sequence":null)" +
         std::string(with_usage ? R"(,"usage":{"input_tokens":14,"output_tokens":5})" : "") + "}";
}

// The relay fixture (relay_fixture.h, SQLite and PostgreSQL) with background probes off, so only
// the tests' own requests reach the mock.
class BedrockRelayTest : public RelayHttpTest {
 protected:
  RelayOptions Options() override {
    RelayOptions o = RelayHttpTest::Options();
    o.maintenance_interval = 0ms;
    return o;
  }

  // A bedrock account at the mock; `extra` is appended to the body object.
  std::string BedrockAccount(const std::string& name, const std::string& akid,
                             const std::string& secret, const std::string& url,
                             const std::string& extra = "") {
    std::string body = R"({"name":")" + name + R"(","provider":"bedrock","base_url":")" + url +
                       R"(","credentials":{"access_key_id":")" + akid +
                       R"(","secret_access_key":")" + secret + R"(","session_token":"session-)" +
                       akid + R"(","region":"us-west-2"})" + extra + "}";
    Reply r = Admin("POST", "/api/v1/relay/accounts", body);
    EXPECT_EQ(r.status, 201) << r.raw;
    EXPECT_EQ(r.raw.find(secret), std::string::npos);
    return r.Str("id");
  }
};

// A local Bedrock: verifies every request's signature (403 InvalidSignatureException like
// Bedrock when it does not verify) and hands the verified ones to `handler`.
class MockBedrock {
 public:
  using Handler = std::function<Script(const UpstreamRequest&)>;
  explicit MockBedrock(Handler handler)
      : handler_(std::move(handler)), server_([this](const UpstreamRequest& r) { return On(r); }) {}
  void AddKey(const std::string& akid, const std::string& secret) {
    std::lock_guard lock(mu_);
    secrets_[akid] = secret;
    tokens_[akid] = "session-" + akid;
  }
  std::string url() const { return server_.url(); }
  std::vector<UpstreamRequest> requests() { return server_.requests(); }
  std::vector<std::string> failures() {
    std::lock_guard lock(mu_);
    return failures_;
  }
  std::vector<std::string> canonical_requests() {
    std::lock_guard lock(mu_);
    return canonical_;
  }

 private:
  Script On(const UpstreamRequest& r) {
    std::string canonical;
    std::string why;
    {
      std::lock_guard lock(mu_);
      why = VerifySigV4(r, secrets_, tokens_, &canonical);
      if (why.empty()) {
        canonical_.push_back(canonical);
      } else {
        failures_.push_back(why);
      }
    }
    if (!why.empty()) {
      return JsonReply(
          403,
          R"({"message":"The request signature we calculated does not match the signature you provided."})",
          {{"x-amzn-ErrorType",
            "InvalidSignatureException:http://internal.amazon.com/coral/"
            "com.amazon.coral.service/"}});
    }
    return handler_(r);
  }

  Handler handler_;
  std::mutex mu_;
  std::map<std::string, std::string> secrets_, tokens_;  // guarded by mu_
  std::vector<std::string> failures_, canonical_;        // guarded by mu_
  FakeUpstream server_;  // last: stopped first, before what its handler uses
};

std::string Frames(const std::vector<std::pair<std::string, std::string>>& events) {
  std::string out;
  for (const auto& [name, data] : events) out += ChunkFrame(data);
  return out;
}

std::string ExpectedSse(const std::vector<std::pair<std::string, std::string>>& events) {
  std::string out;
  for (const auto& [name, data] : events) out += "event: " + name + "\ndata: " + data + "\n\n";
  return out;
}

constexpr const char* kStreamBody =
    R"({"model":"claude-3-5-sonnet","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]})";
constexpr const char* kPlainBody =
    R"({"model":"claude-3-5-sonnet","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]})";

TEST_P(BedrockRelayTest, MessagesReachBedrockSignedAndComeBackWithUsage) {
  const std::string model_path = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/";
  MockBedrock mock([&](const UpstreamRequest& r) {
    if (r.path == model_path + "invoke-with-response-stream") {
      return EventStreamReply(Frames(AnthropicEvents(21, 6)), 37);  // frames split across chunks
    }
    if (r.path == model_path + "invoke") {
      bool headers_only = r.body.find("\"headers-only\"") != std::string::npos;
      return JsonReply(200, InvokeModelJson(!headers_only),
                       {{"x-amzn-bedrock-input-token-count", "14"},
                        {"x-amzn-bedrock-output-token-count", "5"},
                        {"x-amzn-bedrock-invocation-latency", "420"}});
    }
    return JsonReply(404, R"({"message":"unknown operation"})");
  });
  mock.AddKey("AKIDBEDROCK1", "bedrock-secret-1");
  std::string id = BedrockAccount("br", "AKIDBEDROCK1", "bedrock-secret-1", mock.url());
  Reply acc = Admin("GET", "/api/v1/relay/accounts/" + id);
  EXPECT_EQ(json::serialize(acc.body.at("credentials_set")),
            R"(["access_key_id","region","secret_access_key","session_token"])");

  // Non-streaming: the InvokeModel body comes back byte for byte.
  Reply plain = Messages(kPlainBody);
  ASSERT_EQ(plain.status, 200) << plain.raw;
  EXPECT_EQ(plain.raw, InvokeModelJson());
  // Streaming: the event stream becomes Anthropic's SSE.
  Reply stream = Messages(kStreamBody);
  ASSERT_EQ(stream.status, 200) << stream.raw;
  EXPECT_EQ(stream.headers.GetOr("content-type", ""), "text/event-stream");
  EXPECT_EQ(stream.raw, ExpectedSse(AnthropicEvents(21, 6)));
  // Usage from the headers when the body has none.
  Reply headers_only = Messages(
      R"({"model":"claude-3-5-sonnet","max_tokens":64,"metadata":{"user_id":"headers-only"},"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(headers_only.status, 200) << headers_only.raw;

  EXPECT_TRUE(mock.failures().empty()) << mock.failures()[0];
  auto reqs = mock.requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& r : reqs) {
    auto sent = json::parse(r.body);
    EXPECT_FALSE(sent.as_object().contains("model")) << r.body;
    EXPECT_FALSE(sent.as_object().contains("stream")) << r.body;
    EXPECT_EQ(sent.at("anthropic_version"), "bedrock-2023-05-31");
    EXPECT_EQ(sent.at("max_tokens").as_int64(), 64);
    EXPECT_EQ(r.headers.at("x-amz-security-token"), "session-AKIDBEDROCK1");
    EXPECT_EQ(r.headers.count("x-api-key"), 0u);  // the client's key never reaches Bedrock
  }
  EXPECT_EQ(reqs[1].headers.at("accept"), "application/vnd.amazon.eventstream");
  // The model id's ':' is literal on the wire and %3A in what was signed.
  auto canonical = mock.canonical_requests();
  ASSERT_EQ(canonical.size(), 3u);
  EXPECT_NE(canonical[0].find("\n/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke\n"),
            std::string::npos)
      << canonical[0];

  auto usage = WaitUsage(3);
  ASSERT_EQ(usage.size(), 3u);
  EXPECT_EQ(usage[0].provider, "bedrock");
  EXPECT_EQ(usage[0].account_id, id);
  EXPECT_EQ(usage[0].usage.input_tokens, 14);
  EXPECT_EQ(usage[0].usage.output_tokens, 5);
  EXPECT_EQ(usage[0].upstream_model, "claude-3-5-sonnet");
  EXPECT_GT(usage[0].cost, 0);
  EXPECT_TRUE(usage[1].streamed);
  EXPECT_EQ(usage[1].usage.input_tokens, 21);
  EXPECT_EQ(usage[1].usage.output_tokens, 6);
  EXPECT_EQ(usage[1].stop_reason, "end_turn");
  EXPECT_TRUE(usage[1].error.empty()) << usage[1].error;
  EXPECT_TRUE(usage[2].usage.reported);
  EXPECT_EQ(usage[2].usage.input_tokens, 14);
  EXPECT_EQ(usage[2].usage.output_tokens, 5);
}

TEST_P(BedrockRelayTest, OpenAIClientsAreTranslatedBothWays) {
  MockBedrock mock([&](const UpstreamRequest& r) {
    if (r.path.ends_with("/invoke-with-response-stream")) {
      return EventStreamReply(Frames(AnthropicEvents(9, 2)), 1000);
    }
    return JsonReply(200, InvokeModelJson());
  });
  mock.AddKey("AKIDBEDROCK2", "secret-bedrock-2");
  // The account's alias wins over the built-in model table.
  BedrockAccount("br", "AKIDBEDROCK2", "secret-bedrock-2", mock.url(),
                 R"(,"model_aliases":{"gpt-4o":"us.anthropic.claude-sonnet-4-20250514-v1:0"})");
  Reply r = Chat(R"({"model":"gpt-4o","messages":[{"role":"system","content":"Be brief"},)"
                 R"({"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("object"), "chat.completion");
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), "Hello from Bedrock");
  EXPECT_EQ(r.body.at("usage").at("prompt_tokens").as_int64(), 14);
  Reply s = Chat(R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},)"
                 R"("messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(s.status, 200) << s.raw;
  EXPECT_NE(s.raw.find(R"("content":"Hel")"), std::string::npos) << s.raw;
  EXPECT_NE(s.raw.find(R"("content":"lo")"), std::string::npos) << s.raw;
  EXPECT_NE(s.raw.find(R"("prompt_tokens":9)"), std::string::npos) << s.raw;
  EXPECT_TRUE(s.raw.ends_with("data: [DONE]\n\n")) << s.raw;

  EXPECT_TRUE(mock.failures().empty()) << mock.failures()[0];
  auto reqs = mock.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].path, "/model/us.anthropic.claude-sonnet-4-20250514-v1:0/invoke");
  EXPECT_EQ(reqs[1].path,
            "/model/us.anthropic.claude-sonnet-4-20250514-v1:0/invoke-with-response-stream");
  // Priced as the Bedrock model the alias names (Claude Sonnet 4: $3 / $15 per million).
  auto usage = WaitUsage(2);
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[0].upstream_model, "us.anthropic.claude-sonnet-4-20250514-v1:0");
  EXPECT_NEAR(usage[0].cost, (14 * 3.0 + 5 * 15.0) / 1e6, 1e-12);
  auto sent = json::parse(reqs[0].body);
  EXPECT_EQ(sent.at("system"), "Be brief");
  EXPECT_EQ(sent.at("anthropic_version"), "bedrock-2023-05-31");
  EXPECT_FALSE(sent.as_object().contains("model"));
}

TEST_P(BedrockRelayTest, GeminiClientsAreTranslatedToo) {
  MockBedrock mock([&](const UpstreamRequest& r) {
    if (r.path.ends_with("/invoke-with-response-stream")) {
      return EventStreamReply(Frames(AnthropicEvents(7, 3)), 25);
    }
    return JsonReply(200, InvokeModelJson());
  });
  mock.AddKey("AKIDGEMINI", "secret-gemini-1");
  BedrockAccount("br", "AKIDGEMINI", "secret-gemini-1", mock.url());
  std::string body = R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})";
  Reply g = Send("POST", "/v1beta/models/claude-3-5-haiku:generateContent", body,
                 {{"x-goog-api-key", key_}});
  ASSERT_EQ(g.status, 200) << g.raw;
  EXPECT_EQ(g.body.at("candidates").at(0).at("content").at("parts").at(0).at("text"),
            "Hello from Bedrock");
  Reply gs = Send("POST", "/v1beta/models/claude-3-5-haiku:streamGenerateContent?alt=sse", body,
                  {{"x-goog-api-key", key_}});
  ASSERT_EQ(gs.status, 200) << gs.raw;
  EXPECT_TRUE(gs.raw.starts_with("data: {\"candidates\"")) << gs.raw;
  EXPECT_NE(gs.raw.find(R"("finishReason":"STOP")"), std::string::npos) << gs.raw;
  EXPECT_TRUE(mock.failures().empty()) << mock.failures()[0];
  auto reqs = mock.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].path, "/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke");
  EXPECT_EQ(reqs[1].path,
            "/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke-with-response-stream");
  auto usage = WaitUsage(2);
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[1].usage.input_tokens, 7);
  EXPECT_EQ(usage[1].usage.output_tokens, 3);
}

TEST_P(BedrockRelayTest, ThrottlingExceptionFailsOverAndRateLimitsTheAccount) {
  MockBedrock mock([&](const UpstreamRequest& r) {
    bool throttled = r.headers.at("authorization").find("AKIDTHROTTLED/") != std::string::npos;
    if (r.path.ends_with("/invoke-with-response-stream")) {
      if (throttled) {
        return EventStreamReply(
            ExceptionFrame("throttlingException",
                           "Too many requests, please wait before trying again."),
            1000);
      }
      return EventStreamReply(Frames(AnthropicEvents(4, 2)), 50);
    }
    if (throttled) {
      return JsonReply(
          429, R"({"message":"Too many requests, please wait before trying again."})",
          {{"x-amzn-ErrorType",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}});
    }
    return JsonReply(200, InvokeModelJson());
  });
  mock.AddKey("AKIDTHROTTLED", "secret-throttled-1");
  mock.AddKey("AKIDGOOD", "secret-good-1");
  std::string throttled = BedrockAccount("throttled", "AKIDTHROTTLED", "secret-throttled-1",
                                         mock.url(), R"(,"priority":1)");
  std::string good =
      BedrockAccount("good", "AKIDGOOD", "secret-good-1", mock.url(), R"(,"priority":2)");

  // A throttlingException before any event: the client never sees it, the next account answers.
  Reply r = Messages(kStreamBody);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.raw, ExpectedSse(AnthropicEvents(4, 2)));
  EXPECT_EQ(AccountStatus(throttled), "rate_limited");
  EXPECT_EQ(AccountStatus(good), "active");
  auto usage = WaitUsage(1);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].account_id, good);
  EXPECT_EQ(usage[0].attempts, 2);

  // With only the throttled account usable, an HTTP 429 ThrottlingException reaches the client
  // in Anthropic's shape.
  EXPECT_EQ(Admin("PATCH", "/api/v1/relay/accounts/" + good, R"({"status":"disabled"})").status,
            200);
  EXPECT_EQ(Admin("PATCH", "/api/v1/relay/accounts/" + throttled, R"({"status":"active"})").status,
            200);
  Reply limited = Messages(kPlainBody);
  EXPECT_EQ(limited.status, 429) << limited.raw;
  EXPECT_EQ(limited.body.at("type"), "error");
  EXPECT_EQ(limited.body.at("error").at("type"), "rate_limit_error");
  EXPECT_NE(limited.raw.find("bedrock ThrottlingException: Too many requests"), std::string::npos)
      << limited.raw;
  EXPECT_EQ(AccountStatus(throttled), "rate_limited");
  EXPECT_TRUE(mock.failures().empty()) << mock.failures()[0];
}

TEST_P(BedrockRelayTest, ExceptionMidStreamEndsWithAnErrorEventAndBillsWhatWasSent) {
  MockBedrock mock([&](const UpstreamRequest&) {
    return EventStreamReply(
        Frames(AnthropicEvents(30, 0, /*finish=*/false)) +
            ExceptionFrame("modelStreamErrorException", "The model stopped unexpectedly."),
        64);
  });
  mock.AddKey("AKIDMID", "secret-mid-1");
  BedrockAccount("br", "AKIDMID", "secret-mid-1", mock.url());
  Reply r = Messages(kStreamBody);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.raw.starts_with(ExpectedSse(AnthropicEvents(30, 0, false)))) << r.raw;
  EXPECT_NE(r.raw.find("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""),
            std::string::npos)
      << r.raw;
  EXPECT_NE(r.raw.find("modelStreamErrorException: The model stopped unexpectedly."),
            std::string::npos);
  auto usage = WaitUsage(1);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].usage.input_tokens, 30);
  EXPECT_GT(usage[0].usage.output_tokens, 0);  // estimated from the delivered "Hello"
  EXPECT_NE(usage[0].error.find("modelStreamErrorException"), std::string::npos) << usage[0].error;
}

TEST_P(BedrockRelayTest, BadCredentialsAreRefusedAndMarkTheAccountUnauthorized) {
  MockBedrock mock([&](const UpstreamRequest&) { return JsonReply(200, InvokeModelJson()); });
  mock.AddKey("AKIDREAL", "the-right-secret");
  std::string id = BedrockAccount("br", "AKIDREAL", "a-wrong-secret", mock.url());
  Reply r = Messages(kPlainBody);
  EXPECT_EQ(r.status, 403) << r.raw;
  EXPECT_EQ(r.body.at("error").at("type"), "permission_error");
  EXPECT_NE(r.raw.find("InvalidSignatureException"), std::string::npos) << r.raw;
  EXPECT_EQ(AccountStatus(id), "unauthorized");
  ASSERT_EQ(mock.failures().size(), 1u);
  EXPECT_EQ(mock.failures()[0], "signature mismatch");

  // Creating an account without the fields SigV4 needs names them.
  Reply bad = Admin("POST", "/api/v1/relay/accounts",
                    R"({"name":"x","provider":"bedrock","credentials":{"access_key_id":"A",)"
                    R"("secret_access_key":"S"}})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("credentials.region"), std::string::npos) << bad.raw;
}

INSTANTIATE_TEST_SUITE_P(Backends, BedrockRelayTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace atrium::relay
