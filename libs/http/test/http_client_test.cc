// HttpClient against local servers on loopback: plain and TLS servers, HTTP and SOCKS5 proxies.
#include "atrium/http/client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "atrium/core/testing.h"
#include "atrium/http/handler.h"
#include "atrium/http/router.h"
#include "atrium/http/server.h"
#include "client_test_certs.h"
#include "client_test_servers.h"

namespace atrium::http {
namespace {

using namespace std::chrono_literals;
using testing::TestConnection;
using testing::TestHttpProxy;
using testing::TestHttpServer;
using testing::TestRequest;
using testing::TestSocks5Proxy;

// Answers "<method> <target> <body>" and echoes the request's X-Test header.
void Echo(TestConnection& c, const TestRequest& r) {
  std::string extra = "X-Echo-Test: " + std::string(r.headers.GetOr("X-Test", "")) + "\r\n";
  c.Respond(200, r.method + " " + r.target + " " + r.body, extra);
}

// Sends the response head of a chunked body, then a chunk every `period` until stopped.
void Drip(TestConnection& c, std::chrono::milliseconds period) {
  c.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  while (c.Write("4\r\ndrip\r\n") && c.Sleep(period)) {
  }
  c.Close();
}

// Reads the request and never answers.
void Silent(TestConnection& c, const TestRequest&) {
  while (c.Sleep(1000ms)) {
  }
  c.Close();
}

// Sends `request` with a 200 ms read timeout to a server that stops answering: it must fail with
// DeadlineExceeded, `what` in the message, well before 5 s.
void ExpectReadTimeout(HttpClient& client, ClientRequest request, std::string_view what) {
  request.read_timeout = std::chrono::milliseconds(200);
  auto start = std::chrono::steady_clock::now();
  auto response = client.SendSync(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded)
      << response.status().ToString();
  EXPECT_NE(response.status().message().find(what), std::string::npos)
      << response.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

class HttpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new atrium::testing::TempDir();
    pki_ = new testing::TestPki(testing::GenerateTestPki(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete dir_;
  }

  static ClientRequest Get(std::string url) {
    ClientRequest request;
    request.url = std::move(url);
    request.connect_timeout = 5s;
    request.read_timeout = 5s;
    return request;
  }

  ClientOptions TlsOptions() {
    ClientOptions options;
    options.ca_file = pki_->ca_cert_file;
    return options;
  }

  static inline atrium::testing::TempDir* dir_ = nullptr;
  static inline testing::TestPki* pki_ = nullptr;
};

TEST_F(HttpClientTest, GetAndPostRoundTrip) {
  TestHttpServer server(Echo);
  HttpClient client;
  ClientRequest get = Get(server.Url("/hello?x=1"));
  get.headers.Set("X-Test", "abc");
  auto response = client.SendSync(get);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /hello?x=1 ");
  EXPECT_EQ(response->headers.GetOr("x-echo-test", ""), "abc");

  ClientRequest post = Get(server.Url("/items"));
  post.method = "POST";
  post.body = "payload";
  post.headers.Set("Content-Type", "text/plain");
  response = client.SendSync(post);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "POST /items payload");
}

// The client writes the request head itself: the framing (Content-Length, Host) is its own,
// and a header that would split the request is refused before anything is sent.
TEST_F(HttpClientTest, RequestFramingIsTheClientsAndSplittingHeadersAreRefused) {
  std::mutex mu;
  std::vector<TestRequest> seen;
  TestHttpServer server([&](TestConnection& c, const TestRequest& r) {
    {
      std::lock_guard lock(mu);
      seen.push_back(r);
    }
    c.Respond(200, "ok");
  });
  HttpClient client;
  ClientRequest patch = Get(server.Url("/p"));
  patch.method = "PATCH";
  patch.headers.Set("Content-Length", "999");
  patch.headers.Set("Transfer-Encoding", "chunked");
  auto response = client.SendSync(patch);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ClientRequest post = Get(server.Url("/q"));
  post.method = "POST";
  post.body = std::string(300000, 'x');  // more than one socket write
  response = client.SendSync(post);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  response = client.SendSync(Get(server.Url("/g")));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0].method, "PATCH");
    EXPECT_EQ(seen[0].headers.GetOr("content-length", "none"), "0");
    EXPECT_FALSE(seen[0].headers.Has("transfer-encoding"));
    EXPECT_EQ(seen[0].headers.GetOr("host", ""),
              server.Url("").substr(std::string_view("http://").size()));
    EXPECT_EQ(seen[1].headers.GetOr("content-length", "none"), "300000");
    EXPECT_EQ(seen[1].body, std::string(300000, 'x'));
    EXPECT_EQ(seen[2].method, "GET");
    EXPECT_FALSE(seen[2].headers.Has("content-length"));
  }

  ClientRequest bad = Get(server.Url("/bad"));
  bad.headers.Set("X-Note", "a\r\nInjected: 1");
  response = client.SendSync(bad);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(response.status().message().find("'X-Note'"), std::string::npos)
      << response.status().message();
  ClientRequest bad_method = Get(server.Url("/bad"));
  bad_method.method = "GET /x HTTP/1.1\r\nX:";
  response = client.SendSync(bad_method);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(response.status().message().find("method"), std::string::npos);
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.size(), 3u);  // nothing reached the server
}

TEST_F(HttpClientTest, AsyncSendRunsDoneOnceOnClientThread) {
  TestHttpServer server(Echo);
  HttpClient client;
  std::promise<std::pair<int, std::thread::id>> promise;
  client.Send(Get(server.Url("/a")), [&](Result<ClientResponse> r) {
    promise.set_value({r.ok() ? r->status : -1, std::this_thread::get_id()});
  });
  auto [status, thread] = promise.get_future().get();
  EXPECT_EQ(status, 200);
  EXPECT_NE(thread, std::this_thread::get_id());
}

TEST_F(HttpClientTest, HttpErrorStatusIsAResponseNotAnError) {
  TestHttpServer server([](TestConnection& c, const TestRequest&) { c.Respond(404, "nope"); });
  HttpClient client;
  auto response = client.SendSync(Get(server.Url("/missing")));
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->body, "nope");
}

TEST_F(HttpClientTest, KeepAliveReusesConnection) {
  TestHttpServer server(Echo);
  HttpClient client;
  ASSERT_TRUE(client.SendSync(Get(server.Url("/1"))).ok());
  ASSERT_TRUE(client.SendSync(Get(server.Url("/2"))).ok());
  EXPECT_EQ(server.connections_accepted(), 1);
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().connections_reused, 1u);
}

TEST_F(HttpClientTest, ConnectionCloseResponseIsNotPooled) {
  TestHttpServer server(
      [](TestConnection& c, const TestRequest&) { c.Respond(200, "x", "Connection: close\r\n"); });
  HttpClient client;
  ASSERT_TRUE(client.SendSync(Get(server.Url("/1"))).ok());
  ASSERT_TRUE(client.SendSync(Get(server.Url("/2"))).ok());
  EXPECT_EQ(client.stats().connections_opened, 2u);
  EXPECT_EQ(client.stats().connections_reused, 0u);
}

TEST_F(HttpClientTest, ServerClosingIdlePooledConnectionIsDetected) {
  // Answers with keep-alive, then closes the idle connection.
  TestHttpServer server([](TestConnection& c, const TestRequest& r) {
    c.Respond(200, r.target);
    c.Close();
  });
  HttpClient client;
  ASSERT_TRUE(client.SendSync(Get(server.Url("/1"))).ok());
  std::this_thread::sleep_for(100ms);  // let the FIN arrive
  auto response = client.SendSync(Get(server.Url("/2")));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "/2");
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST_F(HttpClientTest, StalePooledConnectionIsRetriedForIdempotentRequest) {
  // The second request on each connection is dropped unanswered (a server closing an idle
  // connection at the same moment the client reuses it).
  TestHttpServer server([](TestConnection& c, const TestRequest& r) {
    if (c.requests() >= 2) {
      c.Close();
      return;
    }
    c.Respond(200, r.target);
  });
  HttpClient client;
  ASSERT_TRUE(client.SendSync(Get(server.Url("/1"))).ok());
  auto response = client.SendSync(Get(server.Url("/2")));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "/2");
  EXPECT_EQ(client.stats().retries, 1u);
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST_F(HttpClientTest, StalePooledConnectionIsNotRetriedForPost) {
  TestHttpServer server([](TestConnection& c, const TestRequest& r) {
    if (c.requests() >= 2) {
      c.Close();
      return;
    }
    c.Respond(200, r.target);
  });
  HttpClient client;
  ASSERT_TRUE(client.SendSync(Get(server.Url("/1"))).ok());
  ClientRequest post = Get(server.Url("/2"));
  post.method = "POST";
  post.body = "once";
  auto response = client.SendSync(post);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(client.stats().retries, 0u);
}

TEST_F(HttpClientTest, ChunkedBodyIsStreamedAsItArrives) {
  std::promise<void> first_chunk_seen;
  std::atomic<bool> seen_before_last{false};
  TestHttpServer server([&](TestConnection& c, const TestRequest&) {
    c.Write(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n");
    c.Write("5\r\nfirst\r\n");
    // The last chunk goes out only once the client has seen the first one (or after 5 s).
    seen_before_last = first_chunk_seen.get_future().wait_for(5s) == std::future_status::ready;
    c.Write("6\r\nsecond\r\n0\r\n\r\n");
  });
  HttpClient client;
  ClientRequest request = Get(server.Url("/events"));
  int headers_status = 0;
  std::vector<std::string> chunks;
  request.on_headers = [&](int status, const Headers& headers) {
    headers_status = status;
    EXPECT_EQ(headers.GetOr("content-type", ""), "text/event-stream");
  };
  request.on_data = [&](std::string_view chunk) {
    if (chunks.empty()) first_chunk_seen.set_value();
    chunks.emplace_back(chunk);
    return true;
  };
  auto response = client.SendSync(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_TRUE(seen_before_last);
  EXPECT_EQ(headers_status, 200);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks.front(), "first");
  std::string all;
  for (const auto& chunk : chunks) all += chunk;
  EXPECT_EQ(all, "firstsecond");
  EXPECT_TRUE(response->body.empty());
}

TEST_F(HttpClientTest, TlsWithTestCaSucceeds) {
  TestHttpServer server(Echo, pki_->server_cert_file, pki_->server_key_file);
  HttpClient client(TlsOptions());
  auto response = client.SendSync(Get(server.Url("/secure")));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "GET /secure ");
  ASSERT_TRUE(client.SendSync(Get(server.Url("/again"))).ok());
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(HttpClientTest, TlsReadTimeoutWhenServerNeverAnswers) {
  TestHttpServer server(Silent, pki_->server_cert_file, pki_->server_key_file);
  HttpClient client(TlsOptions());
  ExpectReadTimeout(client, Get(server.Url("/secure")), "timed out");
}

TEST_F(HttpClientTest, TlsWithoutTestCaFailsVerification) {
  TestHttpServer server(Echo, pki_->server_cert_file, pki_->server_key_file);
  HttpClient client;
  auto response = client.SendSync(Get(server.Url("/secure")));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find("verification failed"), std::string::npos)
      << response.status().message();
}

TEST_F(HttpClientTest, TlsWithWrongHostNameFailsVerification) {
  TestHttpServer server(Echo, pki_->server_cert_file, pki_->server_key_file);
  HttpClient client(TlsOptions());
  // The certificate names only "localhost".
  auto response = client.SendSync(Get("https://127.0.0.1:" + std::to_string(server.port()) + "/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find("verification failed"), std::string::npos)
      << response.status().message();
  EXPECT_NE(response.status().message().find("does not match"), std::string::npos)
      << response.status().message();
}

TEST_F(HttpClientTest, InsecureSkipVerifyAcceptsUnknownCa) {
  TestHttpServer server(Echo, pki_->server_cert_file, pki_->server_key_file);
  ClientOptions options;
  options.insecure_skip_verify = true;
  HttpClient client(options);
  auto response = client.SendSync(Get("https://127.0.0.1:" + std::to_string(server.port()) + "/x"));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
}

TEST_F(HttpClientTest, UnreadableCaFileIsReported) {
  ClientOptions options;
  options.ca_file = dir_->path() + "/missing.pem";
  auto client = HttpClient::Create(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(HttpClientTest, ConnectProxyTunnelsToTlsServer) {
  TestHttpServer server(Echo, pki_->server_cert_file, pki_->server_key_file);
  TestHttpProxy proxy("user:secret");
  HttpClient client(TlsOptions());
  ClientRequest request = Get(server.Url("/through"));
  request.proxy = proxy.Url();
  auto response = client.SendSync(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "GET /through ");
  ASSERT_TRUE(client.SendSync(request).ok());  // same tunnel
  EXPECT_EQ(proxy.connections_accepted(), 1);
  ASSERT_EQ(proxy.targets().size(), 1u);
  EXPECT_EQ(proxy.targets()[0], "CONNECT localhost:" + std::to_string(server.port()));
}

TEST_F(HttpClientTest, ConnectProxyRejectingCredentialsIsUnavailable) {
  TestHttpServer server(Echo, pki_->server_cert_file, pki_->server_key_file);
  TestHttpProxy proxy("user:secret");
  HttpClient client(TlsOptions());
  ClientRequest request = Get(server.Url("/"));
  request.proxy = "http://user:wrong@127.0.0.1:" + std::to_string(proxy.port());
  auto response = client.SendSync(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find("407"), std::string::npos);
}

TEST_F(HttpClientTest, HttpProxyGetsAbsoluteFormForPlainHttp) {
  TestHttpProxy proxy("user:secret");
  HttpClient client;
  ClientRequest request = Get("http://example.invalid:8080/path?q=1");
  request.proxy = proxy.Url();
  auto response = client.SendSync(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "proxied GET http://example.invalid:8080/path?q=1");
}

TEST_F(HttpClientTest, Socks5ProxyWithoutAuthentication) {
  TestHttpServer server(Echo);
  TestSocks5Proxy proxy;
  HttpClient client;
  ClientRequest request = Get(server.Url("/socks"));
  request.proxy = proxy.Url(/*remote_dns=*/false);
  auto response = client.SendSync(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "GET /socks ");
  ASSERT_EQ(proxy.destinations().size(), 1u);
  EXPECT_EQ(proxy.destinations()[0], "v4 127.0.0.1:" + std::to_string(server.port()));
}

TEST_F(HttpClientTest, Socks5hProxyWithCredentialsResolvesRemotely) {
  TestHttpServer server(Echo);
  TestSocks5Proxy proxy("alice", "pw");
  HttpClient client;
  ClientRequest request = Get("http://localhost:" + std::to_string(server.port()) + "/named");
  request.proxy = proxy.Url(/*remote_dns=*/true);
  auto response = client.SendSync(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "GET /named ");
  ASSERT_EQ(proxy.destinations().size(), 1u);
  EXPECT_EQ(proxy.destinations()[0], "name localhost:" + std::to_string(server.port()));
}

TEST_F(HttpClientTest, Socks5ProxyRejectingCredentialsIsUnavailable) {
  TestHttpServer server(Echo);
  TestSocks5Proxy proxy("alice", "pw");
  HttpClient client;
  ClientRequest request = Get(server.Url("/"));
  request.proxy = "socks5://alice:nope@127.0.0.1:" + std::to_string(proxy.port());
  auto response = client.SendSync(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
}

TEST_F(HttpClientTest, ConnectTimeoutCoversTlsHandshake) {
  // Accepts and never says a word: the TLS handshake hangs.
  testing::TestListener mute([&mute](testing::TestListener::Socket&) {
    while (mute.Sleep(1000ms)) {
    }
  });
  HttpClient client(TlsOptions());
  ClientRequest request = Get("https://localhost:" + std::to_string(mute.port()) + "/");
  request.connect_timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto response = client.SendSync(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded)
      << response.status().ToString();
  EXPECT_NE(response.status().message().find("TLS handshake"), std::string::npos)
      << response.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(HttpClientTest, ReadTimeoutWhenServerNeverAnswers) {
  TestHttpServer server(Silent);
  HttpClient client;
  ExpectReadTimeout(client, Get(server.Url("/")), "timed out");
}

TEST_F(HttpClientTest, AShortReadTimeoutHoldsOnAConnectionALongerOneUsedBefore) {
  // One connection (pooled): the first request, with a long read timeout, is answered; the
  // second, with a short one, is not, and must time out after the short one.
  TestHttpServer server([](TestConnection& c, const TestRequest&) {
    if (c.requests() == 1) {
      c.Respond(200, "first");
    } else {
      Silent(c, {});
    }
  });
  HttpClient client;
  ClientRequest first = Get(server.Url("/first"));
  first.read_timeout = 60s;
  auto answered = client.SendSync(first);
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->body, "first");
  ExpectReadTimeout(client, Get(server.Url("/second")), "reading response headers");
  EXPECT_EQ(client.stats().connections_reused, 1u);
}

TEST_F(HttpClientTest, AStalledBodyTimesOutAfterTheReadTimeout) {
  // The head and part of the body arrive, then nothing: the body read times out.
  TestHttpServer server([](TestConnection& c, const TestRequest&) {
    c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    Silent(c, {});
  });
  HttpClient client;
  ExpectReadTimeout(client, Get(server.Url("/stall")), "reading response body");
}

TEST_F(HttpClientTest, TotalTimeoutStopsAStreamThatKeepsFlowing) {
  TestHttpServer server([](TestConnection& c, const TestRequest&) { Drip(c, 50ms); });
  HttpClient client;
  ClientRequest request = Get(server.Url("/drip"));
  request.read_timeout = 1s;
  request.total_timeout = 300ms;
  int chunks = 0;
  request.on_data = [&](std::string_view) { return ++chunks > 0; };
  auto response = client.SendSync(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(response.status().message().find("total timeout"), std::string::npos)
      << response.status().message();
  EXPECT_GT(chunks, 1);
}

TEST_F(HttpClientTest, CancelMidStream) {
  TestHttpServer server([](TestConnection& c, const TestRequest&) { Drip(c, 50ms); });
  HttpClient client;
  auto token = std::make_shared<CancelToken>();
  ClientRequest request = Get(server.Url("/drip"));
  request.cancel = token;
  std::promise<void> streaming;
  bool signalled = false;
  request.on_data = [&](std::string_view) {
    if (!signalled) streaming.set_value();
    signalled = true;
    return true;
  };
  std::promise<Result<ClientResponse>> done;
  client.Send(request, [&](Result<ClientResponse> r) { done.set_value(std::move(r)); });
  streaming.get_future().wait();
  token->Cancel();
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto response = future.get();
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kCancelled);
}

TEST_F(HttpClientTest, CancelWhileWaitingForResponse) {
  TestHttpServer server(Silent);
  HttpClient client;
  auto token = std::make_shared<CancelToken>();
  ClientRequest request = Get(server.Url("/"));
  request.cancel = token;
  std::promise<Result<ClientResponse>> done;
  client.Send(request, [&](Result<ClientResponse> r) { done.set_value(std::move(r)); });
  std::this_thread::sleep_for(100ms);
  token->Cancel();
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(future.get().status().code(), StatusCode::kCancelled);
}

TEST_F(HttpClientTest, AlreadyCancelledTokenFailsAtOnce) {
  TestHttpServer server(Echo);
  HttpClient client;
  ClientRequest request = Get(server.Url("/"));
  request.cancel = std::make_shared<CancelToken>();
  request.cancel->Cancel();
  EXPECT_EQ(client.SendSync(request).status().code(), StatusCode::kCancelled);
}

TEST_F(HttpClientTest, MaxResponseBytesExceeded) {
  TestHttpServer server([](TestConnection& c, const TestRequest& r) {
    if (r.target == "/chunked") {
      c.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      std::string chunk(1000, 'x');
      for (int i = 0; i < 5; ++i) c.Write("3e8\r\n" + chunk + "\r\n");
      c.Write("0\r\n\r\n");
    } else {
      c.Respond(200, std::string(5000, 'x'));
    }
  });
  HttpClient client;
  for (const char* path : {"/sized", "/chunked"}) {
    ClientRequest request = Get(server.Url(path));
    request.max_response_bytes = 2000;
    auto response = client.SendSync(request);
    ASSERT_FALSE(response.ok()) << path;
    EXPECT_EQ(response.status().code(), StatusCode::kResourceExhausted) << path;
  }
}

TEST_F(HttpClientTest, OnDataReturningFalseAborts) {
  TestHttpServer server([](TestConnection& c, const TestRequest&) { Drip(c, 50ms); });
  HttpClient client;
  ClientRequest request = Get(server.Url("/drip"));
  int calls = 0;
  request.on_data = [&](std::string_view) {
    ++calls;
    return false;
  };
  auto response = client.SendSync(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

TEST_F(HttpClientTest, InvalidUrlIsInvalidArgumentNamingTheUrl) {
  HttpClient client;
  for (const char* url : {"not a url", "ftp://example.com/file", "http:///nohost", ""}) {
    auto response = client.SendSync(Get(url));
    ASSERT_FALSE(response.ok()) << url;
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(response.status().message().find(std::string("'") + url + "'"), std::string::npos)
        << response.status().message();
  }
  ClientRequest bad_proxy = Get("http://127.0.0.1:1/");
  bad_proxy.proxy = "ftp://proxy:21";
  EXPECT_EQ(client.SendSync(bad_proxy).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(HttpClientTest, ConnectionRefusedIsUnavailable) {
  uint16_t port;
  {
    TestHttpServer server(Echo);
    port = server.port();
  }
  HttpClient client;
  auto response = client.SendSync(Get("http://127.0.0.1:" + std::to_string(port) + "/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable) << response.status().ToString();
}

TEST_F(HttpClientTest, RedirectsAreOffByDefaultAndFollowedWhenAsked) {
  TestHttpServer server([](TestConnection& c, const TestRequest& r) {
    if (r.target == "/old") {
      c.Respond(302, "moved", "Location: /new\r\n");
    } else if (r.target == "/loop") {
      c.Respond(307, "", "Location: /loop\r\n");
    } else {
      Echo(c, r);
    }
  });
  HttpClient client;
  ClientRequest request = Get(server.Url("/old"));
  auto response = client.SendSync(request);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 302);

  request.follow_redirects = true;
  response = client.SendSync(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /new ");

  ClientRequest loop = Get(server.Url("/loop"));
  loop.follow_redirects = true;
  EXPECT_EQ(client.SendSync(loop).status().code(), StatusCode::kResourceExhausted);
}

TEST_F(HttpClientTest, SendSyncOnClientThreadIsRefused) {
  TestHttpServer server(Echo);
  HttpClient client;
  std::promise<Status> inner;
  client.Send(Get(server.Url("/")), [&](Result<ClientResponse>) {
    inner.set_value(client.SendSync(Get(server.Url("/"))).status());
  });
  Status status = inner.get_future().get();
  EXPECT_EQ(status.code(), StatusCode::kInternal);
}

TEST_F(HttpClientTest, DestructionCancelsRequestsInFlight) {
  TestHttpServer server(Silent);
  std::promise<Result<ClientResponse>> done;
  {
    HttpClient client;
    client.Send(Get(server.Url("/")),
                [&](Result<ClientResponse> r) { done.set_value(std::move(r)); });
    std::this_thread::sleep_for(100ms);
  }
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(future.get().status().code(), StatusCode::kCancelled);
}

TEST_F(HttpClientTest, ManyConcurrentRequestsOnSeveralThreads) {
  TestHttpServer server(Echo);
  ClientOptions options;
  options.threads = 2;
  HttpClient client(options);
  constexpr int kRequests = 20;
  std::vector<std::future<Result<ClientResponse>>> futures;
  std::vector<std::shared_ptr<std::promise<Result<ClientResponse>>>> promises;
  for (int i = 0; i < kRequests; ++i) {
    auto promise = std::make_shared<std::promise<Result<ClientResponse>>>();
    futures.push_back(promise->get_future());
    client.Send(Get(server.Url("/n" + std::to_string(i))),
                [promise](Result<ClientResponse> r) { promise->set_value(std::move(r)); });
  }
  for (int i = 0; i < kRequests; ++i) {
    auto response = futures[i].get();
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->body, "GET /n" + std::to_string(i) + " ");
  }
}

// ---- run_on_server_threads: requests started by an http::Server handler ----

// A server whose GET /relay forwards to `upstream_url` with `client` and answers with what came
// back, plus the threads involved.
struct RelayingServer {
  RelayingServer(HttpClient& client, std::string upstream_url) {
    Router router;
    EXPECT_TRUE(router
                    .Add("GET", "/relay",
                         Handler([this, &client, upstream_url](Request&, Responder responder) {
                           auto handler_thread = std::this_thread::get_id();
                           ClientRequest up;
                           up.url = upstream_url;
                           up.read_timeout = 5s;
                           client.Send(std::move(up), [this, responder,
                                                       handler_thread](Result<ClientResponse> r) {
                             {
                               std::lock_guard lock(mu);
                               same_thread = std::this_thread::get_id() == handler_thread;
                               ++done_calls;
                               last_status = r.ok() ? Status() : r.status();
                             }
                             responder.Send(r.ok() ? Response::Text(200, r->body)
                                                   : Response::FromStatus(r.status()));
                           });
                         }))
                    .ok());
    server = std::make_unique<Server>(ServerOptions{.port = 0, .io_threads = 1}, std::move(router));
    EXPECT_TRUE(server->Start().ok());
    url = "http://127.0.0.1:" + std::to_string(server->port()) + "/relay";
  }

  std::mutex mu;
  bool same_thread = false;
  int done_calls = 0;
  Status last_status;
  std::string url;
  std::unique_ptr<Server> server;  // last: stops first
};

TEST_F(HttpClientTest, ServerThreadRequestsStayOnTheServersThreadAndPool) {
  TestHttpServer upstream(Echo);
  HttpClient client(ClientOptions{.run_on_server_threads = true});
  RelayingServer relay(client, upstream.Url("/up"));
  HttpClient outside;
  for (int i = 0; i < 3; ++i) {
    auto r = outside.SendSync(Get(relay.url));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "GET /up ");
  }
  std::lock_guard lock(relay.mu);
  EXPECT_TRUE(relay.same_thread);                 // `done` ran on the handler's I/O thread
  EXPECT_EQ(upstream.connections_accepted(), 1);  // that thread's pool kept the connection
  EXPECT_EQ(client.stats().connections_reused, 2u);
}

TEST_F(HttpClientTest, WithoutTheOptionServerThreadRequestsUseTheClientsThreads) {
  TestHttpServer upstream(Echo);
  HttpClient client;
  RelayingServer relay(client, upstream.Url("/up"));
  HttpClient outside;
  ASSERT_TRUE(outside.SendSync(Get(relay.url)).ok());
  std::lock_guard lock(relay.mu);
  EXPECT_FALSE(relay.same_thread);
}

TEST_F(HttpClientTest, DestroyingTheClientCancelsItsRequestsOnServerThreads) {
  TestHttpServer upstream(Silent);
  auto client = std::make_unique<HttpClient>(ClientOptions{.run_on_server_threads = true});
  RelayingServer relay(*client, upstream.Url("/stall"));
  HttpClient outside;
  std::promise<Result<ClientResponse>> answered;
  ClientRequest call = Get(relay.url);
  call.read_timeout = 10s;
  outside.Send(std::move(call),
               [&answered](Result<ClientResponse> r) { answered.set_value(std::move(r)); });
  for (int i = 0; i < 200 && upstream.connections_accepted() == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(upstream.connections_accepted(), 1);
  client.reset();  // waits for the request on the server's thread to end
  {
    std::lock_guard lock(relay.mu);
    EXPECT_EQ(relay.done_calls, 1);
    EXPECT_EQ(relay.last_status.code(), StatusCode::kCancelled);
  }
  auto r = answered.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 499);
}

TEST_F(HttpClientTest, ClientOutlivesTheServerWhoseThreadItUsed) {
  TestHttpServer upstream(Echo);
  auto client = std::make_unique<HttpClient>(ClientOptions{.run_on_server_threads = true});
  {
    RelayingServer relay(*client, upstream.Url("/up"));
    HttpClient outside;
    ASSERT_TRUE(outside.SendSync(Get(relay.url)).ok());
    relay.server->Shutdown();  // destroys its io_context with the client's idle connection on it
  }
  // The client still works from other threads, and is destroyed without waiting on anything.
  auto r = client->SendSync(Get(upstream.Url("/after")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "GET /after ");
  client.reset();
}

}  // namespace
}  // namespace atrium::http
