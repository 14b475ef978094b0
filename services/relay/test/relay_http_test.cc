// End-to-end tests of the relay over HTTP: an in-process Atrium server (auth + relay, SQLite,
// embedded bus) in front of scripted upstreams that speak the providers' wire formats
// (fake_upstream.h). Covers the admin API, pass-through byte for byte (streaming too),
// translation, failover and account health, stalls and disconnects, sticky sessions, budgets
// under concurrency, usage records and aggregates, and local embeddings.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <set>
#include <thread>

#include <unistd.h>

#include <boost/json.hpp>

#include <fmt/format.h>

#include "atrium/auth/auth_service.h"
#include "atrium/auth/crypto.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/core/base64.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/infer/embedding_provider.h"
#include "atrium/relay/relay_service.h"
#include "atrium/relay/usage.h"
#include "fake_upstream.h"
#include "relay_fixture.h"

namespace atrium::relay {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::AnthropicMessage;
using testing::AnthropicStream;
using testing::FakeUpstream;
using testing::JsonReply;
using testing::Script;
using testing::SseReply;
using testing::UpstreamRequest;

using testing::Backend;
using testing::RelayHttpTest;
using testing::Reply;

// The x-atrium-signature value a webhook receiver expects.
std::string WebhookSignature(const std::string& secret, const UpstreamRequest& got) {
  std::string mac = auth::HmacSha256(secret, got.headers.at("x-atrium-timestamp") + "." + got.body);
  std::string hex;
  for (unsigned char c : mac) hex += fmt::format("{:02x}", c);
  return "sha256=" + hex;
}

constexpr const char* kMessagesBody =
    R"({"model":"sonnet","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]})";

TEST_P(RelayHttpTest, AccountsCrudKeepsCredentialsWriteOnlyAndSealed) {
  Reply created =
      Admin("POST", "/api/v1/relay/accounts",
            R"({"name":"main","provider":"anthropic","credentials":{"api_key":"sk-ant-secret-1"},)"
            R"("priority":5,"weight":2,"max_concurrency":4,"models":["claude-*"],)"
            R"("model_aliases":{"sonnet":"claude-sonnet-4-5"},"groups":["team-a"],)"
            R"("proxy":"socks5://127.0.0.1:1080"})");
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.raw.find("sk-ant-secret-1"), std::string::npos);
  EXPECT_EQ(created.Str("status"), "active");
  EXPECT_EQ(json::serialize(created.body.at("credentials_set")), R"(["api_key"])");
  std::string id = created.Str("id");
  auto rows = db_->Query("SELECT credentials FROM relay_accounts WHERE id = ?", {id});
  ASSERT_TRUE(rows.ok());
  std::string sealed = (*rows)[0].Text(0);
  EXPECT_TRUE(sealed.starts_with("aes1.k1.")) << sealed;
  EXPECT_EQ(sealed.find("sk-ant"), std::string::npos);

  Reply patched = Admin("PATCH", "/api/v1/relay/accounts/" + id,
                        R"({"priority":1,"status":"disabled","credentials":{"api_key":"sk-2"}})");
  ASSERT_EQ(patched.status, 200) << patched.raw;
  EXPECT_EQ(patched.body.at("priority").as_int64(), 1);
  EXPECT_EQ(patched.Str("status"), "disabled");
  Reply list = Admin("GET", "/api/v1/relay/accounts");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.at("accounts").as_array().size(), 1u);
  EXPECT_EQ(list.raw.find("sk-2"), std::string::npos);
  Reply groups = Admin("GET", "/api/v1/relay/groups");
  EXPECT_NE(groups.raw.find("team-a"), std::string::npos);

  // Validation names the field; keys without admin rights are refused.
  Reply bad =
      Admin("POST", "/api/v1/relay/accounts", R"({"name":"x","provider":"nope","credentials":{}})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("provider"), std::string::npos);
  bad = Admin("POST", "/api/v1/relay/accounts", R"({"name":"y","provider":"openai"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("credentials.api_key"), std::string::npos);
  bad =
      Admin("POST", "/api/v1/relay/accounts",
            R"({"name":"z","provider":"openai","credentials":{"api_key":"k"},"priority":"high"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("priority"), std::string::npos);
  Reply dup = Admin("POST", "/api/v1/relay/accounts",
                    R"({"name":"main","provider":"anthropic","credentials":{"api_key":"k"}})");
  EXPECT_EQ(dup.status, 409);
  Reply as_key = Send("GET", "/api/v1/relay/accounts", "", {{"x-api-key", key_}});
  EXPECT_EQ(as_key.status, 403);
  EXPECT_EQ(Admin("DELETE", "/api/v1/relay/accounts/" + id).status, 204);
  EXPECT_EQ(Admin("GET", "/api/v1/relay/accounts/" + id).status, 404);
}

TEST_P(RelayHttpTest, AnthropicPassThroughIsByteForByteExceptTheModelAlias) {
  std::string upstream_body =
      R"({"id":"msg_1",  "type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi \u00e9"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":3}})";
  FakeUpstream up([&](const UpstreamRequest&) { return JsonReply(200, upstream_body); });
  Account("a", "anthropic", up.url(), R"(,"model_aliases":{"sonnet":"claude-sonnet-4-5"})");
  std::string body =
      R"({"model" : "sonnet", "max_tokens":64, "messages":[{"role":"user","content":"Hello"}], "x_extra": {"model":"keep"}})";
  // Every credential header the spec lists.
  std::vector<std::vector<std::pair<std::string, std::string>>> creds = {
      {{"x-api-key", key_}},
      {{"authorization", "Bearer " + key_}},
      {{"x-goog-api-key", key_}},
      {{"api-key", key_}}};
  for (auto& h : creds) {
    h.emplace_back("anthropic-version", "2023-06-01");
    h.emplace_back("anthropic-beta", "prompt-caching-2024-07-31");
    Reply r = Send("POST", "/v1/messages", body, h);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.raw, upstream_body);
  }
  Reply q = Send("POST", "/claude/v1/messages?key=" + key_, body);
  EXPECT_EQ(q.status, 200) << q.raw;
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[0].path, "/v1/messages");
  EXPECT_EQ(
      reqs[0].body,
      R"({"model" : "claude-sonnet-4-5", "max_tokens":64, "messages":[{"role":"user","content":"Hello"}], "x_extra": {"model":"keep"}})");
  EXPECT_EQ(reqs[0].headers["x-api-key"], "sk-upstream-a");
  EXPECT_EQ(reqs[0].headers["anthropic-version"], "2023-06-01");
  EXPECT_EQ(reqs[0].headers["anthropic-beta"], "prompt-caching-2024-07-31");
  // The client's key never reaches the upstream.
  EXPECT_EQ(reqs[0].headers.count("authorization"), 0u);

  auto usage = WaitUsage(5);
  ASSERT_EQ(usage.size(), 5u);
  EXPECT_EQ(usage[0].usage.input_tokens, 11);
  EXPECT_EQ(usage[0].usage.output_tokens, 3);
  EXPECT_EQ(usage[0].client_model, "sonnet");
  EXPECT_EQ(usage[0].upstream_model, "claude-sonnet-4-5");
  EXPECT_EQ(usage[0].status, 200);
  EXPECT_GT(usage[0].cost, 0);

  // Missing or wrong keys: Anthropic's error shape.
  Reply unauth = Send("POST", "/v1/messages", body, {{"x-api-key", "atr_wrong"}});
  EXPECT_EQ(unauth.status, 401);
  EXPECT_EQ(unauth.Str("type"), "error");
  EXPECT_EQ(unauth.body.at("error").at("type"), "authentication_error");
}

TEST_P(RelayHttpTest, AnthropicStreamPassesThroughChunkByChunk) {
  auto events = AnthropicStream({"Hel", "lo", " there"}, 25, 7);
  std::string expected;
  for (auto& e : events) expected += e;
  FakeUpstream up([&](const UpstreamRequest&) { return SseReply(events, 5); });
  Account("a", "anthropic", up.url());
  Reply r = Messages(
      R"({"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.headers.GetOr("content-type", ""), "text/event-stream");
  EXPECT_EQ(r.raw, expected);
  auto usage = WaitUsage(1);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_TRUE(usage[0].streamed);
  EXPECT_EQ(usage[0].usage.input_tokens, 25);
  EXPECT_EQ(usage[0].usage.output_tokens, 7);
  EXPECT_EQ(usage[0].stop_reason, "end_turn");
  EXPECT_TRUE(usage[0].error.empty()) << usage[0].error;

  // Aggregated per key/account/model and hour, reported as JSON and CSV.
  WaitAggregated();
  Reply rep = Admin("GET", "/api/v1/relay/usage?group_by=model&bucket=hour");
  ASSERT_EQ(rep.status, 200) << rep.raw;
  ASSERT_EQ(rep.body.at("rows").as_array().size(), 1u);
  const auto& row = rep.body.at("rows").as_array()[0];
  EXPECT_EQ(row.at("model"), "claude-sonnet-4-5");
  EXPECT_EQ(row.at("requests").as_int64(), 1);
  EXPECT_EQ(row.at("output_tokens").as_int64(), 7);
  Reply csv = Admin("GET", "/api/v1/relay/usage?group_by=key&bucket=day&format=csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_TRUE(csv.raw.starts_with("bucket,key_id,requests,errors,input_tokens")) << csv.raw;
  EXPECT_NE(csv.raw.find(",1,0,25,7,"), std::string::npos) << csv.raw;
  // A relay key sees only its own usage.
  Reply own = Send("GET", "/api/v1/relay/usage", "", {{"x-api-key", key_}});
  EXPECT_EQ(own.status, 200) << own.raw;
}

TEST_P(RelayHttpTest, OpenAIClientOnAnthropicUpstreamIsTranslatedEventByEvent) {
  FakeUpstream up([&](const UpstreamRequest& req) {
    if (req.body.find("\"stream\":true") != std::string::npos) {
      return SseReply(AnthropicStream({"Hi", "!"}, 9, 2), 2);
    }
    return JsonReply(200, AnthropicMessage("Hello!", 9, 2));
  });
  Account("a", "anthropic", up.url());
  Reply r = Chat(
      R"({"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("object"), "chat.completion");
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), "Hello!");
  EXPECT_EQ(r.body.at("usage").at("prompt_tokens").as_int64(), 9);
  auto sent = json::parse(up.requests()[0].body);
  EXPECT_EQ(sent.at("system"), "Be brief");
  EXPECT_EQ(sent.at("max_tokens").as_int64(), 4096);

  Reply s = Chat(
      R"({"model":"claude-sonnet-4-5","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(s.status, 200) << s.raw;
  EXPECT_NE(s.raw.find(R"("delta":{"content":"Hi"})"), std::string::npos) << s.raw;
  EXPECT_NE(s.raw.find(R"("finish_reason":"stop")"), std::string::npos);
  EXPECT_NE(s.raw.find(R"("usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11})"),
            std::string::npos);
  EXPECT_TRUE(s.raw.ends_with("data: [DONE]\n\n"));
}

TEST_P(RelayHttpTest, AnthropicClientOnOpenAIUpstreamIsTranslated) {
  FakeUpstream up([&](const UpstreamRequest& req) {
    if (req.body.find("\"stream\":true") != std::string::npos) {
      return SseReply(testing::OpenAIStream({"Hel", "lo"}, 8, 2), 2);
    }
    return JsonReply(
        200,
        R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10}})");
  });
  Account("o", "openai-compatible", up.url() + "/v1");
  Reply r =
      Messages(R"({"model":"gpt-4o","max_tokens":32,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("type"), "message");
  EXPECT_EQ(r.body.at("content").at(0).at("text"), "Hello");
  EXPECT_EQ(up.requests()[0].path, "/v1/chat/completions");
  EXPECT_EQ(up.requests()[0].headers["authorization"], "Bearer sk-upstream-o");
  Reply s = Messages(
      R"({"model":"gpt-4o","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(s.status, 200) << s.raw;
  EXPECT_TRUE(s.raw.starts_with("event: message_start\n")) << s.raw;
  EXPECT_NE(s.raw.find(R"("text_delta","text":"Hel")"), std::string::npos);
  EXPECT_TRUE(s.raw.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
  auto sent = json::parse(up.requests()[1].body);
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
  auto usage = WaitUsage(2);
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[1].usage.input_tokens, 8);
  EXPECT_EQ(usage[1].usage.output_tokens, 2);
}

TEST_P(RelayHttpTest, RateLimitedAccountFailsOverAndCarriesItsResetTime) {
  std::atomic<int> a_calls{0};
  FakeUpstream a([&](const UpstreamRequest&) {
    ++a_calls;
    return JsonReply(
        429,
        R"({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}})",
        {{"retry-after", "30"},
         {"anthropic-ratelimit-tokens-remaining", "0"},
         {"anthropic-ratelimit-tokens-reset",
          auth::FormatRfc3339(Env::Default().NowMicros() + 30'000'000)}});
  });
  FakeUpstream b(
      [&](const UpstreamRequest&) { return JsonReply(200, AnthropicMessage("ok", 1, 1)); });
  std::string ida = Account("a", "anthropic", a.url(), R"(,"priority":1)");
  Account("b", "anthropic", b.url(), R"(,"priority":2)");
  Reply r = Messages(kMessagesBody);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(a_calls.load(), 1);
  Reply acc = Admin("GET", "/api/v1/relay/accounts/" + ida);
  EXPECT_EQ(acc.Str("status"), "rate_limited");
  EXPECT_EQ(acc.Str("status_reason"), "throttled");
  EXPECT_FALSE(acc.body.at("status_until").is_null());
  // Rate-limited accounts are skipped until their reset time.
  ASSERT_EQ(Messages(kMessagesBody).status, 200);
  EXPECT_EQ(a_calls.load(), 1);
  auto usage = WaitUsage(2);
  EXPECT_EQ(usage[0].attempts, 2);
}

TEST_P(RelayHttpTest, OverloadedEverywhereAnswersInEachApisShape) {
  FakeUpstream up([&](const UpstreamRequest&) {
    return JsonReply(
        529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  });
  std::string id = Account("a", "anthropic", up.url());
  Reply r = Messages(kMessagesBody);
  EXPECT_EQ(r.status, 529);
  EXPECT_EQ(r.raw,
            R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  EXPECT_EQ(AccountStatus(id), "overloaded");
  // Now no account is usable: the relay answers by itself, still in the API's shape.
  Reply again = Messages(kMessagesBody);
  EXPECT_EQ(again.status, 529);
  EXPECT_EQ(again.body.at("error").at("type"), "overloaded_error");
  Reply chat = Chat(R"({"model":"claude-x","messages":[{"role":"user","content":"Hi"}]})");
  EXPECT_EQ(chat.status, 503);
  EXPECT_TRUE(chat.body.at("error").is_object()) << chat.raw;
  EXPECT_TRUE(chat.body.at("error").at("param").is_null());
}

TEST_P(RelayHttpTest, ServerErrorsConnectRefusedAndUnauthorizedFailOver) {
  FakeUpstream bad([&](const UpstreamRequest&) {
    return JsonReply(500, R"({"type":"error","error":{"type":"api_error","message":"Internal"}})");
  });
  FakeUpstream denied([&](const UpstreamRequest&) {
    return JsonReply(
        401,
        R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})");
  });
  FakeUpstream good(
      [&](const UpstreamRequest&) { return JsonReply(200, AnthropicMessage("ok", 1, 1)); });
  // A port nobody listens on: connect refused.
  std::string refused_url;
  {
    FakeUpstream gone([](const UpstreamRequest&) { return JsonReply(200, "{}"); });
    refused_url = gone.url();
  }
  std::string id_bad = Account("bad", "anthropic", bad.url(), R"(,"priority":1)");
  std::string id_refused = Account("refused", "anthropic", refused_url, R"(,"priority":2)");
  std::string id_good = Account("good", "anthropic", good.url(), R"(,"priority":3)");
  // Distinct conversations (no sticky session), so each one starts at the top priority.
  auto body = [](int i) {
    return R"({"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"q)" +
           std::to_string(i) + R"("}]})";
  };
  for (int i = 0; i < 3; ++i) {
    Reply r = Messages(body(i));
    ASSERT_EQ(r.status, 200) << r.raw;
  }
  // Three 5xx/transport errors within the window: error_cooldown.
  EXPECT_EQ(bad.request_count(), 3u);
  EXPECT_EQ(AccountStatus(id_bad), "error_cooldown");
  EXPECT_EQ(AccountStatus(id_refused), "error_cooldown");
  EXPECT_EQ(AccountStatus(id_good), "active");
  // 401 is not retried blindly into the same account, and marks it unauthorized.
  std::string id_denied = Account("denied", "anthropic", denied.url(), R"(,"priority":0)");
  Reply r = Messages(body(10));
  EXPECT_EQ(r.status, 401);
  ASSERT_TRUE(r.body.is_object()) << r.raw;
  EXPECT_EQ(r.body.at("error").at("type"), "authentication_error");
  EXPECT_EQ(AccountStatus(id_denied), "unauthorized");
  EXPECT_EQ(Messages(body(11)).status, 200);  // skipped from now on
  // An account test through a healthy upstream recovers an account.
  Reply t = Admin("POST", "/api/v1/relay/accounts/" + id_good + "/test", "{}");
  EXPECT_EQ(t.status, 200);
  EXPECT_EQ(t.body.at("ok"), true) << t.raw;
}

TEST_P(RelayHttpTest, StalledUpstreamBeforeTheFirstByteFailsOver) {
  FakeUpstream stalled([&](const UpstreamRequest&) {
    Script s;
    s.end = Script::End::kHang;  // accepts, reads, never answers
    return s;
  });
  FakeUpstream good(
      [&](const UpstreamRequest&) { return SseReply(AnthropicStream({"ok"}, 3, 1)); });
  Account("stalled", "anthropic", stalled.url(), R"(,"priority":1)");
  Account("good", "anthropic", good.url(), R"(,"priority":2)");
  auto start = std::chrono::steady_clock::now();
  Reply r = Messages(
      R"({"model":"claude-sonnet-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_NE(r.raw.find("message_stop"), std::string::npos);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1400ms);  // the read timeout
  stalled.Stop();
}

TEST_P(RelayHttpTest, UpstreamDisconnectMidStreamEndsWithAnErrorEventAndBillsWhatWasSent) {
  FakeUpstream up([&](const UpstreamRequest&) {
    return SseReply(AnthropicStream({"0123456789", "abcdefghij"}, 12, 0, /*finish=*/false), 5,
                    /*complete=*/false, Script::End::kAbort);
  });
  Account("a", "anthropic", up.url());
  Reply r = Messages(
      R"({"model":"claude-sonnet-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.raw.find("0123456789"), std::string::npos);
  EXPECT_TRUE(r.raw.ends_with("\n\n"));
  EXPECT_NE(r.raw.rfind("event: error\ndata: "), std::string::npos) << r.raw;
  auto usage = WaitUsage(1);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].usage.input_tokens, 12);
  EXPECT_EQ(usage[0].usage.output_tokens, 5);  // 20 delivered characters
  EXPECT_FALSE(usage[0].error.empty());
  EXPECT_GT(usage[0].cost, 0);
}

TEST_P(RelayHttpTest, AnErrorEventAfterA200IsRelayedAsIs) {
  auto events = AnthropicStream({"Par"}, 4, 0, false);
  events.push_back(testing::AnthropicEvent(
      "error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  FakeUpstream up([&](const UpstreamRequest&) { return SseReply(events); });
  Account("a", "anthropic", up.url());
  Reply r = Messages(
      R"({"model":"claude-sonnet-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200);
  std::string expected;
  for (auto& e : events) expected += e;
  EXPECT_EQ(r.raw, expected);
  auto usage = WaitUsage(1);
  EXPECT_NE(usage[0].error.find("overloaded_error"), std::string::npos);
}

TEST_P(RelayHttpTest, ClientDisconnectCancelsTheUpstreamAndBillsThePartialStream) {
  std::vector<std::string> parts(200, "word ");
  FakeUpstream up(
      [&](const UpstreamRequest&) { return SseReply(AnthropicStream(parts, 30, 500), 20); });
  Account("a", "anthropic", up.url());
  http::ClientRequest req;
  req.method = "POST";
  req.url = base_ + "/v1/messages";
  req.headers.Set("x-api-key", key_);
  req.headers.Set("content-type", "application/json");
  req.body =
      R"({"model":"claude-sonnet-4-5","max_tokens":800,"stream":true,"messages":[{"role":"user","content":"Hi"}]})";
  std::atomic<size_t> received{0};
  req.on_data = [&](std::string_view chunk) {
    received += chunk.size();
    return received < 1500;  // hang up after a few events
  };
  auto r = client_.SendSync(std::move(req));
  EXPECT_FALSE(r.ok());  // cancelled by us
  EXPECT_TRUE(up.WaitClientAborts(1, 10s)) << "the upstream request was not cancelled";
  auto usage = WaitUsage(1);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].error, "client disconnected");
  EXPECT_EQ(usage[0].usage.input_tokens, 30);
  EXPECT_GT(usage[0].usage.output_tokens, 0);
  EXPECT_LT(usage[0].usage.output_tokens, 500);
  EXPECT_GT(usage[0].cost, 0);
}

TEST_P(RelayHttpTest, StickySessionMovesWhenItsAccountDies) {
  std::atomic<bool> a_dead{false}, b_dead{false};
  auto upstream = [](std::atomic<bool>& dead, std::string name) {
    return [&dead, name](const UpstreamRequest&) {
      if (dead) {
        return JsonReply(
            529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
      }
      return JsonReply(200, AnthropicMessage("from " + name, 1, 1));
    };
  };
  FakeUpstream a(upstream(a_dead, "a"));
  FakeUpstream b(upstream(b_dead, "b"));
  Account("a", "anthropic", a.url(), R"(,"priority":1)");
  Account("b", "anthropic", b.url(), R"(,"priority":1)");
  std::string session =
      R"({"model":"claude-sonnet-4-5","max_tokens":8,"metadata":{"user_id":"user_x_account__session_8f2c"},"messages":[{"role":"user","content":"turn"}]})";
  std::string first = Messages(session).raw;
  // Other conversations rotate over both accounts (least recently used)...
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    seen.insert(Messages(R"({"model":"c","max_tokens":8,"messages":[{"role":"user","content":"c)" +
                         std::to_string(i) + R"("}]})")
                    .raw);
  }
  EXPECT_EQ(seen.size(), 2u);
  // ...while the session sticks to its account.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Messages(session).raw, first);
  bool on_a = first.find("from a") != std::string::npos;
  std::string survivor = on_a ? "from b" : "from a";
  // The sticky account dies mid-session: the session moves, and stays moved.
  (on_a ? a_dead : b_dead) = true;
  Reply moved = Messages(session);
  ASSERT_EQ(moved.status, 200) << moved.raw;
  EXPECT_NE(moved.raw.find(survivor), std::string::npos);
  (on_a ? a_dead : b_dead) = false;  // healthy again, but overloaded for minutes
  for (int i = 0; i < 3; ++i) EXPECT_NE(Messages(session).raw.find(survivor), std::string::npos);
}

TEST_P(RelayHttpTest, ConcurrentRequestsCannotOverspendTheBudgetByMoreThanOneRequest) {
  // Each request costs 10 input * $3/M + 1000 output * $15/M = $0.01503.
  FakeUpstream up([&](const UpstreamRequest&) {
    Script s = JsonReply(200, AnthropicMessage("x", 10, 1000));
    s.steps[0].delay_ms = 20;
    return s;
  });
  Account("a", "anthropic", up.url());
  const double cost = 10 * 3e-6 + 1000 * 15e-6;
  std::string key = CreateKey(R"({"name":"budget","scopes":["relay"],"budget":{"total":)" +
                              std::to_string(cost * 10) + "}}");
  std::string body =
      R"({"model":"claude-sonnet-4-5","max_tokens":1000,"messages":[{"role":"user","content":"Hi"}]})";
  std::atomic<int> ok{0}, limited{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&] {
      Reply r = Messages(body, key);
      if (r.status == 200) ++ok;
      if (r.status == 429) {
        ++limited;
        EXPECT_EQ(r.body.at("error").at("type"), "rate_limit_error") << r.raw;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok + limited, 50);
  EXPECT_GE(ok.load(), 1);
  double spent = 0;
  for (const auto& u : WaitUsage(50)) {
    if (u.status == 200) spent += u.cost;
  }
  EXPECT_LE(spent, cost * 10 + cost + 1e-9) << ok.load() << " admitted";
  // Sequential requests until the budget is gone, then a clean refusal.
  Reply r;
  for (int i = 0; i < 12; ++i) r = Messages(body, key);
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.raw.find("total budget"), std::string::npos) << r.raw;
}

TEST_P(RelayHttpTest, KeyLimitsModelsAndRequestRate) {
  FakeUpstream up(
      [&](const UpstreamRequest&) { return JsonReply(200, AnthropicMessage("ok", 1, 1)); });
  Account("a", "anthropic", up.url());
  std::string key = CreateKey(
      R"({"name":"narrow","scopes":["relay"],"models":["claude-haiku-*"],"rate_limit":{"rpm":2}})");
  Reply denied = Messages(kMessagesBody, key);  // model "sonnet" is not allowed
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.body.at("error").at("type"), "permission_error");
  std::string haiku =
      R"({"model":"claude-haiku-4","max_tokens":8,"messages":[{"role":"user","content":"Hi"}]})";
  EXPECT_EQ(Messages(haiku, key).status, 200);
  EXPECT_EQ(Messages(haiku, key).status, 200);
  Reply limited = Messages(haiku, key);
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.body.at("error").at("type"), "rate_limit_error");
  std::string embed_key = CreateKey(R"({"name":"e","scopes":["embed"]})");
  Reply scope = Messages(haiku, embed_key);
  EXPECT_EQ(scope.status, 403);
}

TEST_P(RelayHttpTest, LocalAccountsServeEmbeddingsAndModelsAreListed) {
  Reply acc = Admin("POST", "/api/v1/relay/accounts",
                    R"({"name":"engine","provider":"local","models":["mini-embed"]})");
  ASSERT_EQ(acc.status, 201) << acc.raw;
  Reply r = Send("POST", "/v1/embeddings", R"({"model":"mini-embed","input":["ab","cdef"]})",
                 {{"authorization", "Bearer " + key_}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("object"), "list");
  EXPECT_EQ(r.body.at("data").as_array().size(), 2u);
  EXPECT_EQ(r.body.at("data").at(1).at("embedding").at(2).as_double(), 1.0);
  EXPECT_EQ(r.body.at("usage").at("prompt_tokens").as_int64(), 6);
  Reply b64 = Send("POST", "/v1/embeddings",
                   R"({"model":"mini-embed","input":"ab","encoding_format":"base64"})",
                   {{"authorization", "Bearer " + key_}});
  ASSERT_EQ(b64.status, 200) << b64.raw;
  auto bytes = Base64Decode(b64.body.at("data").at(0).at("embedding").as_string());
  ASSERT_TRUE(bytes.has_value());
  ASSERT_EQ(bytes->size(), 12u);
  float f[3];
  std::memcpy(f, bytes->data(), 12);
  EXPECT_EQ(f[0], 0.5f);
  Reply models = Send("GET", "/v1/models", "", {{"authorization", "Bearer " + key_}});
  ASSERT_EQ(models.status, 200);
  EXPECT_NE(models.raw.find("\"mini-embed\""), std::string::npos);
  auto usage = WaitUsage(2);
  EXPECT_EQ(usage[0].provider, "local");
  EXPECT_EQ(usage[0].usage.input_tokens, 6);
  // The engine's models are served even without an account, to `embed` keys too.
  Admin("DELETE", "/api/v1/relay/accounts/" + acc.Str("id"));
  std::string embed_key = CreateKey(R"({"name":"emb","scopes":["embed"]})");
  Reply implicit = Send("POST", "/v1/embeddings", R"({"input":"xyz"})",
                        {{"authorization", "Bearer " + embed_key}});
  EXPECT_EQ(implicit.status, 200) << implicit.raw;
  std::string chat_key = CreateKey(R"({"name":"chat","scopes":["chat"]})");
  EXPECT_EQ(Send("POST", "/v1/embeddings", R"({"input":"xyz"})",
                 {{"authorization", "Bearer " + chat_key}})
                .status,
            403);
  // count_tokens without an Anthropic account falls back to an estimate.
  Reply ct = Send("POST", "/v1/messages/count_tokens", kMessagesBody, {{"x-api-key", key_}});
  EXPECT_EQ(ct.status, 200) << ct.raw;
  EXPECT_GT(ct.body.at("input_tokens").as_int64(), 0);
}

TEST_P(RelayHttpTest, AccountEventsReachSignedAndSlackWebhooksWithRetries) {
  std::atomic<int> calls{0};
  FakeUpstream receiver([&](const UpstreamRequest&) {
    return ++calls <= 2 ? JsonReply(500, "{}") : JsonReply(200, "{}");
  });
  FakeUpstream slack([&](const UpstreamRequest&) { return JsonReply(200, "ok"); });
  Reply hook = Admin("POST", "/api/v1/relay/webhooks",
                     R"({"url":")" + receiver.url() +
                         R"(/hook","secret":"topsecret","events":["account.overloaded"]})");
  ASSERT_EQ(hook.status, 201) << hook.raw;
  EXPECT_EQ(hook.raw.find("topsecret"), std::string::npos);
  Reply slack_hook = Admin("POST", "/api/v1/relay/webhooks",
                           R"({"url":")" + slack.url() + R"(/slack","format":"slack"})");
  ASSERT_EQ(slack_hook.status, 201) << slack_hook.raw;
  EXPECT_TRUE(slack_hook.Str("secret").starts_with("whsec_"));  // generated, shown once
  FakeUpstream up([&](const UpstreamRequest&) {
    return JsonReply(
        529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  });
  std::string id = Account("a", "anthropic", up.url());
  EXPECT_EQ(Messages(kMessagesBody).status, 529);
  for (int i = 0; i < 200 && (receiver.request_count() < 3 || slack.request_count() < 1); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  auto got = receiver.requests();
  ASSERT_EQ(got.size(), 3u);  // two failures, then delivered
  const auto& last = got.back();
  auto event = json::parse(last.body);
  EXPECT_EQ(event.at("type"), "account.overloaded");
  EXPECT_EQ(event.at("account_id").as_string(), id);
  EXPECT_EQ(last.headers.at("x-atrium-event"), "account.overloaded");
  std::string ts = last.headers.at("x-atrium-timestamp");
  std::string mac = auth::HmacSha256("topsecret", ts + "." + last.body);
  std::string hex;
  for (unsigned char c : mac) hex += fmt::format("{:02x}", c);
  EXPECT_EQ(last.headers.at("x-atrium-signature"), "sha256=" + hex);
  auto slack_got = slack.requests();
  ASSERT_GE(slack_got.size(), 1u);
  EXPECT_NE(json::parse(slack_got[0].body).at("text").as_string().find("overloaded"),
            std::string::npos);
  Reply log = Admin("GET", "/api/v1/relay/webhooks/" + hook.Str("id") + "/deliveries");
  ASSERT_EQ(log.status, 200) << log.raw;
  const auto& deliveries = log.body.at("deliveries").as_array();
  ASSERT_EQ(deliveries.size(), 3u);
  EXPECT_EQ(deliveries[0].at("ok"), true);
  EXPECT_EQ(deliveries[0].at("attempt").as_int64(), 3);
  EXPECT_EQ(deliveries[2].at("status_code").as_int64(), 500);
}

TEST_P(RelayHttpTest, WebhookPatchEditsInPlaceValidatesAndStaysInItsWorkspace) {
  FakeUpstream receiver([&](const UpstreamRequest&) { return JsonReply(200, "{}"); });
  Reply hook = Admin(
      "POST", "/api/v1/relay/webhooks",
      R"({"url":")" + receiver.url() + R"(/a","secret":"s1","events":["account.overloaded"]})");
  ASSERT_EQ(hook.status, 201) << hook.raw;
  EXPECT_EQ(hook.body.at("enabled"), true);
  std::string id = hook.Str("id");
  std::string path = "/api/v1/relay/webhooks/" + id;

  Reply patched = Admin("PATCH", path, R"({"url":")" + receiver.url() + R"(/b","format":"slack"})");
  ASSERT_EQ(patched.status, 200) << patched.raw;
  EXPECT_EQ(patched.Str("id"), id);
  EXPECT_EQ(patched.Str("url"), receiver.url() + "/b");
  EXPECT_EQ(patched.Str("format"), "slack");
  EXPECT_EQ(json::serialize(patched.body.at("events")), R"(["account.overloaded"])");  // kept
  EXPECT_FALSE(patched.body.at("updated_at").is_null());
  EXPECT_FALSE(patched.body.as_object().contains("secret"));
  patched = Admin("PATCH", path, R"({"events":[],"enabled":false,"secret":"s2"})");
  ASSERT_EQ(patched.status, 200) << patched.raw;
  EXPECT_EQ(patched.body.at("enabled"), false);
  EXPECT_TRUE(patched.body.at("events").as_array().empty());
  EXPECT_EQ(patched.raw.find("s2"), std::string::npos);
  Reply list = Admin("GET", "/api/v1/relay/webhooks");
  ASSERT_EQ(list.body.at("webhooks").as_array().size(), 1u);
  EXPECT_EQ(list.body.at("webhooks").at(0).at("enabled"), false);
  EXPECT_EQ(list.body.at("webhooks").at(0).at("format"), "slack");
  auto sealed = db_->Query("SELECT secret FROM relay_webhooks WHERE id = ?", {id});
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE((*sealed)[0].Text(0).starts_with("aes1.")) << (*sealed)[0].Text(0);

  // Validation errors are 400 and name the field; nothing changes.
  for (auto [body, field] : {std::pair{R"({"url":"ftp://x"})", "url"},
                             {R"({"url":7})", "url"},
                             {R"({"format":"xml"})", "format"},
                             {R"({"events":"all"})", "events"},
                             {R"({"events":["account.nope"]})", "account.nope"},
                             {R"({"enabled":"yes"})", "enabled"},
                             {R"({"secret":""})", "secret"},
                             {R"({"secret":5})", "secret"},
                             {R"([1])", "JSON object"}}) {
    Reply bad = Admin("PATCH", path, body);
    EXPECT_EQ(bad.status, 400) << body << " " << bad.raw;
    EXPECT_NE(bad.raw.find(field), std::string::npos) << body << " " << bad.raw;
  }
  Reply bad_create =
      Admin("POST", "/api/v1/relay/webhooks", R"({"url":"https://x.example","events":["nope"]})");
  EXPECT_EQ(bad_create.status, 400);
  EXPECT_NE(bad_create.raw.find("events"), std::string::npos) << bad_create.raw;
  EXPECT_EQ(Admin("GET", "/api/v1/relay/webhooks").body.at("webhooks").at(0).at("url"),
            (receiver.url() + "/b").c_str());
  EXPECT_EQ(Admin("PATCH", "/api/v1/relay/webhooks/whk_missing", "{}").status, 404);
  EXPECT_EQ(Admin("POST", "/api/v1/relay/webhooks/whk_missing/test").status, 404);

  // Another workspace's owner cannot see, edit, test or delete it.
  std::string other = OtherWorkspaceToken();
  std::vector<std::pair<std::string, std::string>> as_other = {
      {"authorization", "Bearer " + other}};
  EXPECT_EQ(
      Send("GET", "/api/v1/relay/webhooks", "", as_other).body.at("webhooks").as_array().size(),
      0u);
  EXPECT_EQ(Send("PATCH", path, R"({"enabled":true})", as_other).status, 404);
  EXPECT_EQ(Send("POST", path + "/test", "", as_other).status, 404);
  EXPECT_EQ(Send("GET", path + "/deliveries", "", as_other).status, 404);
  EXPECT_EQ(Send("DELETE", path, "", as_other).status, 404);
  EXPECT_EQ(receiver.request_count(), 0u);
  // Relay keys are not admins.
  EXPECT_EQ(Send("PATCH", path, R"({"enabled":true})", {{"x-api-key", key_}}).status, 403);
  EXPECT_EQ(Admin("GET", "/api/v1/relay/webhooks").body.at("webhooks").at(0).at("enabled"), false);
}

TEST_P(RelayHttpTest, WebhookTestSendsASignedEventNowAndLogsTheResult) {
  std::atomic<int> status{200};
  FakeUpstream receiver([&](const UpstreamRequest&) { return JsonReply(status, "{}"); });
  // The event filter does not apply to test events.
  Reply hook = Admin(
      "POST", "/api/v1/relay/webhooks",
      R"({"url":")" + receiver.url() + R"(/hook","secret":"topsecret","events":["key.expired"]})");
  ASSERT_EQ(hook.status, 201) << hook.raw;
  std::string path = "/api/v1/relay/webhooks/" + hook.Str("id");

  Reply t = Admin("POST", path + "/test");
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body.at("ok"), true);
  EXPECT_EQ(t.body.at("status_code").as_int64(), 200);
  EXPECT_GE(t.body.at("latency_ms").as_int64(), 0);
  EXPECT_FALSE(t.body.as_object().contains("error"));
  ASSERT_EQ(receiver.request_count(), 1u);  // sent before the answer
  auto got = receiver.requests()[0];
  EXPECT_EQ(got.path, "/hook");
  EXPECT_EQ(got.headers.at("x-atrium-event"), "webhook.test");
  EXPECT_EQ(got.headers.at("x-atrium-delivery"), t.Str("event_id"));
  EXPECT_EQ(got.headers.at("x-atrium-signature"), WebhookSignature("topsecret", got));
  auto event = json::parse(got.body);
  EXPECT_EQ(event.at("type"), "webhook.test");
  EXPECT_EQ(event.at("id").as_string(), t.Str("event_id"));
  EXPECT_EQ(event.at("webhook_id").as_string(), hook.Str("id"));

  // A rotated secret signs the next test; a failing receiver is reported, not retried.
  ASSERT_EQ(Admin("PATCH", path, R"({"secret":"rotated"})").status, 200);
  status = 503;
  t = Admin("POST", path + "/test");
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body.at("ok"), false);
  EXPECT_EQ(t.body.at("status_code").as_int64(), 503);
  EXPECT_EQ(t.Str("error"), "HTTP 503");
  ASSERT_EQ(receiver.request_count(), 2u);
  got = receiver.requests()[1];
  EXPECT_EQ(got.headers.at("x-atrium-signature"), WebhookSignature("rotated", got));
  // Nobody listening: no status, a transport error.
  FakeUpstream gone([&](const UpstreamRequest&) { return JsonReply(200, "{}"); });
  std::string gone_url = gone.url();
  gone.Stop();
  ASSERT_EQ(Admin("PATCH", path, R"({"url":")" + gone_url + R"(/x"})").status, 200);
  t = Admin("POST", path + "/test");
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body.at("ok"), false);
  EXPECT_EQ(t.body.at("status_code").as_int64(), 0);
  EXPECT_FALSE(t.Str("error").empty());

  // Every test is in the delivery log, newest first, with its latency.
  Reply log = Admin("GET", path + "/deliveries");
  ASSERT_EQ(log.status, 200) << log.raw;
  const auto& rows = log.body.at("deliveries").as_array();
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("event_type"), "webhook.test");
    EXPECT_EQ(r.at("attempt").as_int64(), 1);
    EXPECT_GE(r.at("latency_ms").as_int64(), 0);
  }
  EXPECT_EQ(rows[2].at("ok"), true);
  EXPECT_EQ(rows[1].at("status_code").as_int64(), 503);
  EXPECT_EQ(rows[0].at("status_code").as_int64(), 0);
}

TEST_P(RelayHttpTest, DisabledWebhooksGetNoEvents) {
  FakeUpstream paused([&](const UpstreamRequest&) { return JsonReply(200, "{}"); });
  FakeUpstream live([&](const UpstreamRequest&) { return JsonReply(200, "{}"); });
  Reply off = Admin("POST", "/api/v1/relay/webhooks",
                    R"({"url":")" + paused.url() + R"(/p","enabled":false})");
  ASSERT_EQ(off.status, 201) << off.raw;
  EXPECT_EQ(off.body.at("enabled"), false);
  ASSERT_EQ(Admin("POST", "/api/v1/relay/webhooks", R"({"url":")" + live.url() + R"(/l"})").status,
            201);
  FakeUpstream up([&](const UpstreamRequest&) {
    return JsonReply(
        529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  });
  Account("a", "anthropic", up.url());
  EXPECT_EQ(Messages(kMessagesBody).status, 529);
  for (int i = 0; i < 200 && live.request_count() < 1; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(live.request_count(), 1u);
  EXPECT_EQ(paused.request_count(), 0u);  // the event went to the hooks in order: it was skipped
  // A test event reaches it all the same; PATCH turns it back on.
  EXPECT_EQ(Admin("POST", "/api/v1/relay/webhooks/" + off.Str("id") + "/test").body.at("ok"), true);
  EXPECT_EQ(paused.request_count(), 1u);
  Reply on = Admin("PATCH", "/api/v1/relay/webhooks/" + off.Str("id"), R"({"enabled":true})");
  ASSERT_EQ(on.status, 200) << on.raw;
  EXPECT_EQ(on.body.at("enabled"), true);
}

TEST_P(RelayHttpTest, AccountAndKeyDashboardsReportTrafficPerBucket) {
  FakeUpstream claude(
      [&](const UpstreamRequest&) { return JsonReply(200, AnthropicMessage("Hi", 11, 3)); });
  FakeUpstream gpt([&](const UpstreamRequest&) {
    return JsonReply(400, R"({"error":{"message":"bad","type":"invalid_request_error"}})");
  });
  std::string a = Account("a", "anthropic", claude.url(), R"(,"models":["claude-*"])");
  std::string b = Account("b", "openai", gpt.url() + "/v1", R"(,"models":["gpt-*"])");
  Reply k2 =
      Admin("POST", "/api/v1/keys", R"({"name":"k2","scopes":["relay"],"budget":{"daily":5}})");
  ASSERT_EQ(k2.status, 201) << k2.raw;
  std::string key2 = k2.Str("key"), key2_id = k2.Str("id");
  const std::string claude_body =
      R"({"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"x"}]})";
  ASSERT_EQ(Messages(claude_body).status, 200);
  ASSERT_EQ(Messages(claude_body).status, 200);
  ASSERT_EQ(Messages(claude_body, key2).status, 200);
  EXPECT_EQ(Send("POST", "/v1/chat/completions",
                 R"({"model":"gpt-4o","messages":[{"role":"user","content":"x"}]})",
                 {{"authorization", "Bearer " + key2}})
                .status,
            400);
  ASSERT_EQ(WaitUsage(4).size(), 4u);
  WaitAggregated();

  Reply acc = Admin("GET", "/api/v1/relay/accounts/" + a + "/dashboard?bucket=hour");
  ASSERT_EQ(acc.status, 200) << acc.raw;
  EXPECT_EQ(acc.Str("account_id"), a);
  EXPECT_EQ(acc.Str("name"), "a");
  EXPECT_EQ(acc.Str("bucket"), "hour");
  const auto& totals = acc.body.at("totals");
  EXPECT_EQ(totals.at("requests").as_int64(), 3);
  EXPECT_EQ(totals.at("errors").as_int64(), 0);
  EXPECT_EQ(totals.at("input_tokens").as_int64(), 33);
  EXPECT_EQ(totals.at("output_tokens").as_int64(), 9);
  EXPECT_GT(totals.at("cost").as_double(), 0);
  EXPECT_GE(totals.at("avg_latency_ms").to_number<double>(), 0);
  // One point per hour of the last 7 days, zeros where nothing ran.
  const auto& series = acc.body.at("series").as_array();
  EXPECT_GE(series.size(), 168u);
  EXPECT_LE(series.size(), 169u);
  int64_t requests = 0;
  for (const auto& p : series) requests += p.at("requests").as_int64();
  EXPECT_EQ(requests, 3);
  EXPECT_TRUE(series[0].at("avg_latency_ms").is_null());
  EXPECT_EQ(std::string(acc.body.at("series").at(0).at("bucket").as_string()), acc.Str("from"));
  ASSERT_EQ(acc.body.at("models").as_array().size(), 1u);
  EXPECT_EQ(acc.body.at("models").at(0).at("model"), "claude-sonnet-4-5");

  Reply day = Admin("GET", "/api/v1/relay/accounts/" + b + "/dashboard");
  ASSERT_EQ(day.status, 200) << day.raw;
  EXPECT_EQ(day.Str("bucket"), "day");
  EXPECT_EQ(day.body.at("totals").at("requests").as_int64(), 1);
  EXPECT_EQ(day.body.at("totals").at("errors").as_int64(), 1);
  EXPECT_EQ(day.body.at("series").as_array().size(), 8u);  // 7 days back, rounded to a day

  Reply key = Admin("GET", "/api/v1/relay/keys/" + key2_id + "/dashboard?bucket=hour");
  ASSERT_EQ(key.status, 200) << key.raw;
  EXPECT_EQ(key.Str("key_id"), key2_id);
  EXPECT_EQ(key.Str("name"), "k2");
  EXPECT_EQ(key.body.at("totals").at("requests").as_int64(), 2);
  EXPECT_EQ(key.body.at("totals").at("errors").as_int64(), 1);
  EXPECT_GE(key.body.at("totals").at("input_tokens").as_int64(), 11);
  EXPECT_EQ(key.body.at("models").as_array().size(), 2u);
  EXPECT_EQ(key.body.at("budget").at("daily").to_number<double>(), 5);
  EXPECT_GT(key.body.at("spent").at("daily").to_number<double>(), 0);
  // An explicit window: only the current hour.
  int64_t now = Env::Default().NowMicros();
  std::string from = auth::FormatRfc3339(now - now % 3'600'000'000);
  std::string to = auth::FormatRfc3339(now + 1'000'000);
  Reply hour = Admin(
      "GET", "/api/v1/relay/keys/" + key2_id + "/dashboard?bucket=hour&from=" + from + "&to=" + to);
  ASSERT_EQ(hour.status, 200) << hour.raw;
  ASSERT_EQ(hour.body.at("series").as_array().size(), 1u);
  // (the requests may straddle an hour boundary: then the earlier ones are outside the window)
  EXPECT_LE(hour.body.at("series").at(0).at("requests").as_int64(), 2);

  // The key sees its own dashboard; another key does not.
  EXPECT_EQ(
      Send("GET", "/api/v1/relay/keys/" + key2_id + "/dashboard", "", {{"x-api-key", key2}}).status,
      200);
  EXPECT_EQ(
      Send("GET", "/api/v1/relay/keys/" + key2_id + "/dashboard", "", {{"x-api-key", key_}}).status,
      403);
  // Bad windows are 400 naming the parameter; unknown ids 404, also from another workspace.
  for (auto [query, field] : {std::pair{"?bucket=week", "bucket"},
                              {"?from=yesterday", "from"},
                              {"?to=2020-01-01T00:00:00Z", "to"},
                              {"?bucket=hour&from=2000-01-01T00:00:00Z", "buckets"}}) {
    Reply bad = Admin("GET", "/api/v1/relay/accounts/" + a + "/dashboard" + query);
    EXPECT_EQ(bad.status, 400) << query << " " << bad.raw;
    EXPECT_NE(bad.raw.find(field), std::string::npos) << query << " " << bad.raw;
  }
  EXPECT_EQ(Admin("GET", "/api/v1/relay/accounts/acc_missing/dashboard").status, 404);
  EXPECT_EQ(Admin("GET", "/api/v1/relay/keys/key_missing/dashboard").status, 404);
  std::vector<std::pair<std::string, std::string>> as_other = {
      {"authorization", "Bearer " + OtherWorkspaceToken()}};
  EXPECT_EQ(Send("GET", "/api/v1/relay/accounts/" + a + "/dashboard", "", as_other).status, 404);
  EXPECT_EQ(Send("GET", "/api/v1/relay/keys/" + key2_id + "/dashboard", "", as_other).status, 404);
}

// Recovery probes and key.expired: a fast maintenance loop.
class RelayMaintenanceTest : public RelayHttpTest {
 protected:
  RelayOptions Options() override {
    RelayOptions o = RelayHttpTest::Options();
    o.maintenance_interval = 20ms;
    o.probe_interval = 100ms;
    o.probe_max_interval = 400ms;
    return o;
  }
  // The relay.events of the given type seen so far (from the start of the topic).
  std::vector<json::object> Events(const std::string& type, size_t want,
                                   std::chrono::milliseconds timeout = 5s) {
    if (!events_sub_) {
      events_sub_ =
          *bus_->Subscribe({.pattern = "relay.events", .start = bus::StartPosition::Earliest()});
    }
    auto end = std::chrono::steady_clock::now() + timeout;
    auto matching = [&] {
      std::vector<json::object> out;
      for (const auto& e : events_) {
        if (e.at("type") == type.c_str()) out.push_back(e);
      }
      return out;
    };
    while (matching().size() < want && std::chrono::steady_clock::now() < end) {
      auto d = events_sub_->Next(50ms);
      if (d.ok() && d->kind == bus::Delivery::Kind::kRecord) {
        events_.push_back(json::parse(d->record->payload).as_object());
      }
    }
    return matching();
  }
  std::unique_ptr<bus::Subscription> events_sub_;
  std::vector<json::object> events_;
};

TEST_P(RelayMaintenanceTest, UnauthorizedAccountIsProbedWithBackoffAndRecovers) {
  std::atomic<bool> healthy{false};
  FakeUpstream up([&](const UpstreamRequest&) {
    if (healthy) return JsonReply(200, AnthropicMessage("pong", 1, 1));
    return JsonReply(
        401,
        R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})");
  });
  std::string id = Account("a", "anthropic", up.url(), R"(,"models":["claude-probe"])");
  EXPECT_EQ(
      Messages(
          R"({"model":"claude-probe","max_tokens":8,"messages":[{"role":"user","content":"x"}]})")
          .status,
      401);
  EXPECT_EQ(AccountStatus(id), "unauthorized");
  // Probes while the upstream still refuses: 100, 200, 400, 400 ms apart (backoff), not every
  // 20 ms tick; the account stays out.
  std::this_thread::sleep_for(1200ms);
  size_t probes = up.request_count() - 1;
  EXPECT_GE(probes, 2u);
  EXPECT_LE(probes, 5u);
  EXPECT_EQ(AccountStatus(id), "unauthorized");
  auto reqs = up.requests();
  auto probe = json::parse(reqs.back().body);
  EXPECT_EQ(probe.at("max_tokens").as_int64(), 1);  // cheap
  EXPECT_EQ(probe.at("model"), "claude-probe");
  EXPECT_EQ(reqs.back().headers.at("x-api-key"), "sk-upstream-a");
  healthy = true;
  for (int i = 0; i < 100 && AccountStatus(id) != "active"; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(AccountStatus(id), "active");
  auto recovered = Events("account.recovered", 1);
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].at("account_id").as_string(), id);
  EXPECT_NE(recovered[0].at("message").as_string().find("recovery probe"), std::string::npos);
  EXPECT_EQ(
      Messages(
          R"({"model":"claude-probe","max_tokens":8,"messages":[{"role":"user","content":"y"}]})")
          .status,
      200);
  // Healthy accounts are not probed.
  size_t n = up.request_count();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(up.request_count(), n);
}

TEST_P(RelayMaintenanceTest, ErroredAccountRecoversBeforeItsCooldownEnds) {
  std::atomic<bool> healthy{false};
  FakeUpstream up([&](const UpstreamRequest&) {
    return healthy
               ? JsonReply(200, AnthropicMessage("pong", 1, 1))
               : JsonReply(500, R"({"type":"error","error":{"type":"api_error","message":"x"}})");
  });
  std::string id = Account("a", "anthropic", up.url());
  for (int i = 0; i < 3; ++i) {
    (void)Messages(R"({"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"q)" +
                   std::to_string(i) + R"("}]})");
  }
  ASSERT_EQ(AccountStatus(id), "error_cooldown");  // for 300 s
  healthy = true;
  for (int i = 0; i < 100 && AccountStatus(id) != "active"; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(AccountStatus(id), "active");
}

TEST_P(RelayMaintenanceTest, ExpiredRelayKeysFireKeyExpiredOnceAndReachWebhooks) {
  FakeUpstream receiver([&](const UpstreamRequest&) { return JsonReply(200, "{}"); });
  Reply hook = Admin("POST", "/api/v1/relay/webhooks",
                     R"({"url":")" + receiver.url() + R"(/hook","events":["key.expired"]})");
  ASSERT_EQ(hook.status, 201) << hook.raw;
  auto in = [](int seconds) {
    return auth::FormatRfc3339((Env::Default().NowMicros() / 1'000'000 + seconds) * 1'000'000);
  };
  Reply k = Admin("POST", "/api/v1/keys",
                  R"({"name":"short","scopes":["relay"],"expires_at":")" + in(2) + "\"}");
  ASSERT_EQ(k.status, 201) << k.raw;
  Reply other = Admin("POST", "/api/v1/keys",
                      R"({"name":"not-relay","scopes":["chat"],"expires_at":")" + in(2) + "\"}");
  ASSERT_EQ(other.status, 201) << other.raw;
  Reply later = Admin("POST", "/api/v1/keys",
                      R"({"name":"later","scopes":["relay"],"expires_at":")" + in(3600) + "\"}");
  ASSERT_EQ(later.status, 201) << later.raw;
  EXPECT_TRUE(Events("key.expired", 1, 500ms).empty());  // not yet
  auto fired = Events("key.expired", 1, 6s);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].at("key_id").as_string(), k.Str("id"));
  EXPECT_NE(fired[0].at("message").as_string().find("short"), std::string::npos);
  for (int i = 0; i < 200 && receiver.request_count() < 1; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(receiver.request_count(), 1u);
  auto delivered = json::parse(receiver.requests()[0].body);
  EXPECT_EQ(delivered.at("type"), "key.expired");
  EXPECT_EQ(receiver.requests()[0].headers.at("x-atrium-event"), "key.expired");
  // Once: later sweeps (and the not-relay key) publish nothing more.
  EXPECT_EQ(Events("key.expired", 2, 500ms).size(), 1u);
  // The expired key is refused in the API's shape.
  Reply refused = Messages(kMessagesBody, k.Str("key"));
  EXPECT_EQ(refused.status, 401);
}

TEST_P(RelayHttpTest, OAuthAccountsRefreshBeforeExpiryAndAfterA401OnceForConcurrentRequests) {
  std::atomic<int> generation{1};
  std::mutex mu;
  std::vector<std::string> token_bodies;
  FakeUpstream token_endpoint([&](const UpstreamRequest& r) {
    {
      std::lock_guard lock(mu);
      token_bodies.push_back(r.body);
    }
    std::this_thread::sleep_for(100ms);  // concurrent requests arrive meanwhile
    int g = ++generation;
    return JsonReply(200, R"({"token_type":"Bearer","access_token":"at-)" + std::to_string(g) +
                              R"(","refresh_token":"rt-)" + std::to_string(g) +
                              R"(","expires_in":28800,"scope":"user:inference"})");
  });
  FakeUpstream up([&](const UpstreamRequest& r) {
    std::string want = "Bearer at-" + std::to_string(generation.load());
    if (r.headers.at("authorization") != want) {
      return JsonReply(
          401,
          R"({"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired"}})");
    }
    return JsonReply(200, AnthropicMessage("ok", 1, 1));
  });
  int64_t soon_ms = Env::Default().NowMicros() / 1000 + 60'000;  // inside the 5 min margin
  Reply acc =
      Admin("POST", "/api/v1/relay/accounts",
            R"({"name":"oauth","provider":"anthropic","base_url":")" + up.url() +
                R"(","credentials":{"access_token":"at-1","refresh_token":"rt-1","expires_at":")" +
                std::to_string(soon_ms) + R"(","token_url":")" + token_endpoint.url() +
                R"(/v1/oauth/token"}})");
  ASSERT_EQ(acc.status, 201) << acc.raw;
  std::string id = acc.Str("id");
  // Eight concurrent requests on an expiring token: one refresh, all answered with the new one.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (Messages(kMessagesBody).status == 200) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  ASSERT_EQ(token_bodies.size(), 1u);
  auto body = json::parse(token_bodies[0]);
  EXPECT_EQ(body.at("grant_type"), "refresh_token");
  EXPECT_EQ(body.at("refresh_token"), "rt-1");
  EXPECT_EQ(body.at("client_id"), "9d1c250a-e61b-44d9-88ed-5944d1962f5e");
  EXPECT_EQ(token_endpoint.requests()[0].headers.at("content-type"), "application/json");
  // The rotated tokens are sealed at rest, never in clear.
  auto rows = db_->Query("SELECT credentials FROM relay_accounts WHERE id = ?", {id});
  ASSERT_TRUE(rows.ok());
  std::string sealed = (*rows)[0].Text(0);
  EXPECT_TRUE(sealed.starts_with("aes1.")) << sealed;
  EXPECT_EQ(sealed.find("at-2"), std::string::npos);
  // The token is revoked upstream (a new generation): the 401 leads to one refresh and a resend
  // to the same account, not to `unauthorized`.
  ++generation;  // at-3 now expected; the relay holds at-2
  Reply r = Messages(kMessagesBody);
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(token_bodies.size(), 2u);
  EXPECT_EQ(json::parse(token_bodies[1]).at("refresh_token"), "rt-2");  // the rotated one
  EXPECT_EQ(AccountStatus(id), "active");
}

INSTANTIATE_TEST_SUITE_P(Backends, RelayMaintenanceTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

TEST_P(RelayHttpTest, GeminiRoutesPassThroughSseAndJsonArrayStreams) {
  const std::string chunk1 =
      R"({"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 7,"candidatesTokenCount": 1,"totalTokenCount": 8},"modelVersion": "gemini-2.5-flash"})";
  const std::string chunk2 =
      R"({"candidates": [{"content": {"parts": [{"text": " world"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 7,"candidatesTokenCount": 3,"totalTokenCount": 10},"modelVersion": "gemini-2.5-flash"})";
  FakeUpstream up([&](const UpstreamRequest& req) {
    if (req.path.ends_with(":streamGenerateContent?alt=sse")) {
      return SseReply({"data: " + chunk1 + "\r\n\r\n", "data: " + chunk2 + "\r\n\r\n"}, 5);
    }
    if (req.path.ends_with(":streamGenerateContent")) {
      return SseReply({"[" + chunk1, "\r\n,\r\n" + chunk2, "]"}, 5);
    }
    if (req.path.ends_with(":countTokens")) return JsonReply(200, R"({"totalTokens": 7})");
    return JsonReply(200, chunk2);
  });
  Account("g", "gemini", up.url(),
          R"(,"models":["gemini-*"],"model_aliases":{"flash":"gemini-2.5-flash"})");
  std::string body = R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})";
  Reply r = Send("POST", "/v1beta/models/flash:generateContent", body, {{"x-goog-api-key", key_}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.raw, chunk2);
  auto reqs = up.requests();
  EXPECT_EQ(reqs[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
  EXPECT_EQ(reqs[0].headers["x-goog-api-key"], "sk-upstream-g");
  EXPECT_EQ(reqs[0].body, body);
  Reply sse =
      Send("POST", "/gemini/v1beta/models/flash:streamGenerateContent?alt=sse&key=" + key_, body);
  ASSERT_EQ(sse.status, 200) << sse.raw;
  EXPECT_EQ(sse.raw, "data: " + chunk1 + "\r\n\r\ndata: " + chunk2 + "\r\n\r\n");
  Reply arr =
      Send("POST", "/v1beta/models/flash:streamGenerateContent", body, {{"x-goog-api-key", key_}});
  ASSERT_EQ(arr.status, 200) << arr.raw;
  EXPECT_EQ(arr.raw, "[" + chunk1 + "\r\n,\r\n" + chunk2 + "]");
  EXPECT_EQ(arr.headers.GetOr("content-type", ""), "application/json");
  Reply ct = Send("POST", "/v1beta/models/flash:countTokens", body, {{"x-goog-api-key", key_}});
  EXPECT_EQ(ct.status, 200) << ct.raw;
  auto usage = WaitUsage(4);
  ASSERT_EQ(usage.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(usage[i].usage.input_tokens, 7) << i;
    EXPECT_EQ(usage[i].usage.output_tokens, 3) << i;
    EXPECT_EQ(usage[i].stop_reason, "STOP") << i;
    EXPECT_TRUE(usage[i].error.empty()) << i << usage[i].error;
  }
  EXPECT_TRUE(usage[1].streamed);
  // Errors in Gemini's shape.
  Reply unknown =
      Send("POST", "/v1beta/models/nothing:generateContent", body, {{"x-goog-api-key", key_}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body.at("error").at("code").as_int64(), 404) << unknown.raw;
  Reply denied =
      Send("POST", "/v1beta/models/flash:generateContent", body, {{"x-goog-api-key", "atr_nope"}});
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(denied.body.at("error").at("status"), "UNAUTHENTICATED") << denied.raw;
}

TEST_P(RelayHttpTest, GeminiTranslatesToAndFromTheOtherApis) {
  const std::string gemini_chunk =
      R"({"candidates": [{"content": {"parts": [{"text": "Bonjour"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 6,"candidatesTokenCount": 2,"totalTokenCount": 8}})";
  FakeUpstream gemini([&](const UpstreamRequest& req) {
    if (req.path.ends_with("?alt=sse")) return SseReply({"data: " + gemini_chunk + "\r\n\r\n"});
    return JsonReply(200, gemini_chunk);
  });
  FakeUpstream claude([&](const UpstreamRequest& req) {
    if (req.body.find("\"stream\":true") != std::string::npos) {
      return SseReply(AnthropicStream({"Hal", "lo"}, 5, 2), 2);
    }
    return JsonReply(200, AnthropicMessage("Hallo", 5, 2));
  });
  Account("g", "gemini", gemini.url(), R"(,"models":["gemini-*"])");
  Account("c", "anthropic", claude.url(), R"(,"models":["claude-*"])");
  // OpenAI client, Gemini account.
  Reply r = Chat(
      R"({"model":"gemini-2.5-flash","messages":[{"role":"system","content":"Be kind"},{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), "Bonjour");
  EXPECT_EQ(r.body.at("usage").at("prompt_tokens").as_int64(), 6);
  auto sent = gemini.requests();
  EXPECT_EQ(sent[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
  EXPECT_EQ(json::parse(sent[0].body).at("systemInstruction").at("parts").at(0).at("text"),
            "Be kind");
  Reply s = Chat(
      R"({"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(s.status, 200) << s.raw;
  EXPECT_NE(s.raw.find(R"("delta":{"content":"Bonjour"})"), std::string::npos) << s.raw;
  EXPECT_TRUE(s.raw.ends_with("data: [DONE]\n\n"));
  EXPECT_TRUE(gemini.requests()[1].path.ends_with(":streamGenerateContent?alt=sse"));
  // Gemini client, Anthropic account: SSE and the JSON-array stream.
  std::string body = R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})";
  Reply g = Send("POST", "/v1beta/models/claude-sonnet-4-5:generateContent", body,
                 {{"x-goog-api-key", key_}});
  ASSERT_EQ(g.status, 200) << g.raw;
  EXPECT_EQ(g.body.at("candidates").at(0).at("content").at("parts").at(0).at("text"), "Hallo");
  EXPECT_EQ(g.body.at("usageMetadata").at("candidatesTokenCount").as_int64(), 2);
  Reply gs = Send("POST", "/v1beta/models/claude-sonnet-4-5:streamGenerateContent?alt=sse", body,
                  {{"x-goog-api-key", key_}});
  ASSERT_EQ(gs.status, 200) << gs.raw;
  EXPECT_TRUE(gs.raw.starts_with("data: {\"candidates\"")) << gs.raw;
  EXPECT_NE(gs.raw.find(R"("finishReason":"STOP")"), std::string::npos) << gs.raw;
  Reply ga = Send("POST", "/v1beta/models/claude-sonnet-4-5:streamGenerateContent", body,
                  {{"x-goog-api-key", key_}});
  ASSERT_EQ(ga.status, 200) << ga.raw;
  boost::system::error_code ec;
  json::value arr = json::parse(ga.raw, ec);
  ASSERT_FALSE(ec) << ga.raw;
  ASSERT_TRUE(arr.is_array());
  EXPECT_GE(arr.as_array().size(), 2u);
  EXPECT_TRUE(json::parse(claude.requests().back().body).at("stream").as_bool());
  auto usage = WaitUsage(5);
  ASSERT_EQ(usage.size(), 5u);
  EXPECT_EQ(usage[4].usage.output_tokens, 2);
  EXPECT_EQ(usage[4].provider, "anthropic");
}

TEST_P(RelayHttpTest, UnknownModelsAreNotFoundInTheClientsShape) {
  Reply r = Chat(R"({"model":"nothing-serves-this","messages":[{"role":"user","content":"Hi"}]})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body.at("error").at("code"), "model_not_found") << r.raw;
  Reply bad = Chat(R"({"messages":[]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("model"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, RelayHttpTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace atrium::relay
