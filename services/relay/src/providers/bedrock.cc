// Amazon Bedrock (bedrock-runtime.{region}.amazonaws.com) serving Anthropic's Claude models:
// the Anthropic Messages body without `model` and `stream`, plus
// "anthropic_version":"bedrock-2023-05-31", POSTed to /model/{modelId}/invoke (or
// /invoke-with-response-stream, whose answer is an AWS event stream of base64 Anthropic stream
// events), signed with AWS SigV4 (service "bedrock"). docs/relay.md, "Bedrock accounts".
#include <boost/json.hpp>

#include <cctype>
#include <charconv>

#include "atrium/core/base64.h"
#include "atrium/relay/sse_parser.h"
#include "atrium/relay/translate.h"
#include "aws_eventstream.h"
#include "providers.h"
#include "sigv4.h"

namespace atrium::relay {
namespace json = boost::json;
namespace {

constexpr std::string_view kBedrockAnthropicVersion = "bedrock-2023-05-31";

// Anthropic model names (as clients send them) → Bedrock model ids. Accounts override or extend
// it with model_aliases (applied first), e.g. to a cross-region inference profile
// ("us.anthropic.claude-sonnet-4-20250514-v1:0"), which newer models require.
constexpr std::pair<std::string_view, std::string_view> kModelIds[] = {
    {"claude-3-haiku", "anthropic.claude-3-haiku-20240307-v1:0"},
    {"claude-3-haiku-20240307", "anthropic.claude-3-haiku-20240307-v1:0"},
    {"claude-3-sonnet", "anthropic.claude-3-sonnet-20240229-v1:0"},
    {"claude-3-sonnet-20240229", "anthropic.claude-3-sonnet-20240229-v1:0"},
    {"claude-3-opus", "anthropic.claude-3-opus-20240229-v1:0"},
    {"claude-3-opus-20240229", "anthropic.claude-3-opus-20240229-v1:0"},
    {"claude-3-opus-latest", "anthropic.claude-3-opus-20240229-v1:0"},
    {"claude-3-5-sonnet", "anthropic.claude-3-5-sonnet-20240620-v1:0"},
    {"claude-3-5-sonnet-20240620", "anthropic.claude-3-5-sonnet-20240620-v1:0"},
    {"claude-3-5-sonnet-20241022", "anthropic.claude-3-5-sonnet-20241022-v2:0"},
    {"claude-3-5-sonnet-latest", "anthropic.claude-3-5-sonnet-20241022-v2:0"},
    {"claude-3-5-haiku", "anthropic.claude-3-5-haiku-20241022-v1:0"},
    {"claude-3-5-haiku-20241022", "anthropic.claude-3-5-haiku-20241022-v1:0"},
    {"claude-3-5-haiku-latest", "anthropic.claude-3-5-haiku-20241022-v1:0"},
    {"claude-3-7-sonnet", "anthropic.claude-3-7-sonnet-20250219-v1:0"},
    {"claude-3-7-sonnet-20250219", "anthropic.claude-3-7-sonnet-20250219-v1:0"},
    {"claude-3-7-sonnet-latest", "anthropic.claude-3-7-sonnet-20250219-v1:0"},
    {"claude-sonnet-4", "anthropic.claude-sonnet-4-20250514-v1:0"},
    {"claude-sonnet-4-0", "anthropic.claude-sonnet-4-20250514-v1:0"},
    {"claude-sonnet-4-20250514", "anthropic.claude-sonnet-4-20250514-v1:0"},
    {"claude-opus-4", "anthropic.claude-opus-4-20250514-v1:0"},
    {"claude-opus-4-0", "anthropic.claude-opus-4-20250514-v1:0"},
    {"claude-opus-4-20250514", "anthropic.claude-opus-4-20250514-v1:0"},
    {"claude-opus-4-1", "anthropic.claude-opus-4-1-20250805-v1:0"},
    {"claude-opus-4-1-20250805", "anthropic.claude-opus-4-1-20250805-v1:0"},
    {"claude-sonnet-4-5", "anthropic.claude-sonnet-4-5-20250929-v1:0"},
    {"claude-sonnet-4-5-20250929", "anthropic.claude-sonnet-4-5-20250929-v1:0"},
    {"claude-haiku-4-5", "anthropic.claude-haiku-4-5-20251001-v1:0"},
    {"claude-haiku-4-5-20251001", "anthropic.claude-haiku-4-5-20251001-v1:0"},
    {"claude-instant-1", "anthropic.claude-instant-v1"},
};

std::string Credential(const Account& a, const char* field) {
  auto it = a.credentials.find(field);
  return it == a.credentials.end() ? std::string() : it->second;
}

bool ValidRegion(std::string_view r) {
  if (r.empty() || r.size() > 32) return false;
  for (char c : r) {
    if (!(std::islower(static_cast<unsigned char>(c)) != 0 ||
          std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '-')) {
      return false;
    }
  }
  return true;
}

// The model id as it goes into the path: ':' stays literal (signed as %3A), '/' of ARNs and
// anything else outside the unreserved set is percent-encoded (signed encoded again).
std::string ModelPathSegment(std::string_view id) {
  std::string out;
  size_t start = 0;
  for (size_t i = 0; i <= id.size(); ++i) {
    if (i == id.size() || id[i] == ':') {
      out += aws::UriEncode(id.substr(start, i - start), /*keep_slash=*/false);
      if (i < id.size()) out.push_back(':');
      start = i + 1;
    }
  }
  return out;
}

std::string JsonMessage(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::string(body.substr(0, 500));
  for (const char* k : {"message", "Message"}) {
    if (const auto* m = v.as_object().if_contains(k); m != nullptr && m->is_string()) {
      return std::string(m->as_string());
    }
  }
  return std::string(body.substr(0, 500));
}

// The HTTP status an event-stream exception stands for (Bedrock's own statuses for the same
// errors, except a mid-stream model failure, which is the upstream's fault: 502).
int ExceptionStatus(std::string_view type) {
  if (type == "throttlingException") return 429;
  if (type == "serviceUnavailableException") return 503;
  if (type == "internalServerException") return 500;
  if (type == "modelTimeoutException") return 504;
  if (type == "validationException") return 400;
  if (type == "accessDeniedException") return 403;
  return 502;  // modelStreamErrorException and anything unknown
}

std::optional<int64_t> IntHeader(const http::Headers& h, std::string_view name) {
  auto v = h.Get(name);
  if (!v) return std::nullopt;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size() || n < 0) return std::nullopt;
  return n;
}

class BedrockStreamDecoder : public UpstreamStreamDecoder {
 public:
  std::string Feed(std::string_view bytes) override {
    std::string out;
    if (error_) return out;
    messages_.clear();
    Status st = decoder_.Feed(bytes, messages_);
    for (const auto& m : messages_) {
      if (error_) break;
      Handle(m, out);
    }
    if (!st.ok() && !error_) Fail(502, "bedrock " + st.message(), out);
    return out;
  }
  const std::optional<UpstreamStreamError>& error() const override { return error_; }
  bool delivered() const override { return delivered_; }

 private:
  void Handle(const aws::EventStreamMessage& m, std::string& out) {
    std::string_view kind = m.StringHeader(":message-type");
    if (kind == "exception") {
      std::string type(m.StringHeader(":exception-type"));
      return Fail(ExceptionStatus(type), "bedrock " + type + ": " + JsonMessage(m.payload), out);
    }
    if (kind == "error") {
      std::string code(m.StringHeader(":error-code"));
      return Fail(502, "bedrock " + code + ": " + std::string(m.StringHeader(":error-message")),
                  out);
    }
    if (kind != "event" || m.StringHeader(":event-type") != "chunk") return;  // others: skipped
    boost::system::error_code ec;
    json::value v = json::parse(m.payload, ec);
    const json::value* b = !ec && v.is_object() ? v.as_object().if_contains("bytes") : nullptr;
    std::optional<std::string> event;
    if (b != nullptr && b->is_string()) event = Base64Decode(b->as_string());
    boost::system::error_code inner_ec;
    json::value inner;
    if (event) inner = json::parse(*event, inner_ec);
    if (!event || inner_ec || !inner.is_object() || !inner.as_object().contains("type") ||
        !inner.at("type").is_string()) {
      return Fail(502, "bedrock event stream: a chunk without an Anthropic event", out);
    }
    std::string name(inner.at("type").as_string());
    // SSE data must be one line; Anthropic events are, but re-serialise if one is not.
    if (event->find_first_of("\r\n") != std::string::npos) event = json::serialize(inner);
    out += SseFrame(name, *event);
    delivered_ = true;
  }

  void Fail(int status, std::string message, std::string& out) {
    out += StreamErrorEvent(ApiFormat::kAnthropic, status, message);
    error_ = UpstreamStreamError{status, std::move(message)};
  }

  aws::EventStreamDecoder decoder_;
  std::vector<aws::EventStreamMessage> messages_;
  std::optional<UpstreamStreamError> error_;
  bool delivered_ = false;
};

class BedrockAdapter : public ProviderAdapter {
 public:
  std::string_view name() const override { return "bedrock"; }
  ApiFormat format() const override { return ApiFormat::kAnthropic; }
  bool Supports(Operation op) const override { return op == Operation::kChat; }
  std::vector<std::string> required_credentials() const override {
    return {"access_key_id", "secret_access_key", "region"};
  }

  Status Prepare(const Account& account, Operation, std::string_view upstream_model, bool stream,
                 const http::Headers& client_headers, http::ClientRequest& out) const override {
    for (const char* field : {"access_key_id", "secret_access_key", "region"}) {
      if (Credential(account, field).empty()) {
        return InvalidArgument("account " + account.id + ": credentials." + field + " is required");
      }
    }
    std::string region = Credential(account, "region");
    if (!ValidRegion(region)) {
      return InvalidArgument("account " + account.id + ": credentials.region '" + region +
                             "' is not an AWS region name");
    }
    std::string base = account.base_url.empty()
                           ? "https://bedrock-runtime." + region + ".amazonaws.com"
                           : account.base_url;
    out.url = JoinUrl(base, "/model/" + ModelPathSegment(BedrockModelId(upstream_model)) +
                                (stream ? "/invoke-with-response-stream" : "/invoke"));
    ASSIGN_OR_RETURN(out.body, BedrockRequestBody(out.body, client_headers));
    out.headers.Set("content-type", "application/json");
    out.headers.Set("accept", stream ? "application/vnd.amazon.eventstream" : "application/json");
    return Status::Ok();
  }

  Status Sign(const Account& account, int64_t now_micros, http::ClientRequest& out) const override {
    aws::Credentials c{Credential(account, "access_key_id"),
                       Credential(account, "secret_access_key"),
                       Credential(account, "session_token")};
    Status st = aws::SignRequest(out, c, Credential(account, "region"), "bedrock", now_micros,
                                 /*content_sha256=*/true);
    return st.ok() ? st : InvalidArgument("account " + account.id + ": " + st.message());
  }

  std::unique_ptr<UpstreamStreamDecoder> MakeStreamDecoder() const override {
    return MakeBedrockStreamDecoder();
  }

  std::string NormalizeErrorBody(int status, const http::Headers& headers,
                                 std::string body) const override {
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (!ec && v.is_object() && v.as_object().contains("error")) return body;  // Anthropic's
    // x-amzn-ErrorType: "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    std::string type(headers.GetOr("x-amzn-errortype", ""));
    type = type.substr(0, type.find(':'));
    std::string message = JsonMessage(body);
    if (message.empty()) message = "HTTP " + std::to_string(status);
    return ErrorBody(ApiFormat::kAnthropic, status,
                     "bedrock" + (type.empty() ? "" : " " + type) + ": " + message);
  }

  std::optional<Usage> UsageFromHeaders(const http::Headers& headers) const override {
    auto in = IntHeader(headers, "x-amzn-bedrock-input-token-count");
    auto out = IntHeader(headers, "x-amzn-bedrock-output-token-count");
    if (!in && !out) return std::nullopt;
    Usage u;
    u.input_tokens = in.value_or(0);
    u.output_tokens = out.value_or(0);
    u.cache_read_tokens =
        IntHeader(headers, "x-amzn-bedrock-cache-read-input-token-count").value_or(0);
    u.cache_write_tokens =
        IntHeader(headers, "x-amzn-bedrock-cache-write-input-token-count").value_or(0);
    u.reported = true;
    return u;
  }
};

}  // namespace

std::string BedrockModelId(std::string_view model) {
  for (const auto& [name, id] : kModelIds) {
    if (name == model) return std::string(id);
  }
  return std::string(model);  // a Bedrock id, inference profile or ARN already
}

Result<std::string> BedrockRequestBody(std::string_view anthropic_body,
                                       const http::Headers& client_headers) {
  boost::system::error_code ec;
  json::value v = json::parse(anthropic_body, ec);
  if (ec || !v.is_object()) return InvalidArgument("bedrock: the request body is not an object");
  json::object& o = v.as_object();
  o.erase("model");
  o.erase("stream");
  if (!o.contains("anthropic_version")) o["anthropic_version"] = kBedrockAnthropicVersion;
  // Bedrock takes the beta flags in the body.
  if (auto beta = client_headers.Get("anthropic-beta"); beta && !o.contains("anthropic_beta")) {
    json::array flags;
    std::string_view rest = *beta;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view flag = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!flag.empty() && flag.front() == ' ') flag.remove_prefix(1);
      while (!flag.empty() && flag.back() == ' ') flag.remove_suffix(1);
      if (!flag.empty()) flags.emplace_back(flag);
    }
    if (!flags.empty()) o["anthropic_beta"] = std::move(flags);
  }
  return json::serialize(v);
}

std::unique_ptr<UpstreamStreamDecoder> MakeBedrockStreamDecoder() {
  return std::make_unique<BedrockStreamDecoder>();
}

const ProviderAdapter& BedrockProvider() {
  static const BedrockAdapter kAdapter;
  return kAdapter;
}

}  // namespace atrium::relay
