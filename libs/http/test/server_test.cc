// Integration tests: a real Server on a loopback port 0, spoken to over real sockets.
#include "atrium/http/server.h"

#include <gtest/gtest.h>

#include <any>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include "atrium/core/metrics.h"
#include "atrium/core/testing.h"
#include "atrium/http/cors.h"
#include "atrium/http/sse.h"
#include "atrium/http/static_files.h"

namespace atrium::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// A blocking test client on one keep-alive connection.
class TestClient {
 public:
  explicit TestClient(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  bhttp::response<bhttp::string_body> Do(
      bhttp::verb verb, std::string target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> hdrs = {}) {
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, "localhost");
    for (auto& [k, v] : hdrs) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    bhttp::write(socket_, req);
    return Read();
  }
  bhttp::response<bhttp::string_body> Read() {
    bhttp::response<bhttp::string_body> res;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    bhttp::read(socket_, buffer_, parser);
    return parser.release();
  }
  void SendRaw(std::string_view bytes) { net::write(socket_, net::buffer(bytes)); }
  // Reads until the server closes; returns everything read.
  std::string ReadToEof() {
    std::string out;
    boost::system::error_code ec;
    out.append(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    char buf[4096];
    while (true) {
      size_t n = socket_.read_some(net::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }
  tcp::socket& socket() { return socket_; }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string ErrorCode(const std::string& body) {
  auto v = boost::json::parse(body);
  return std::string(v.at("error").at("code").as_string());
}

class ServerTest : public ::testing::Test {
 protected:
  void Start(Router router, ServerOptions opts = {}) {
    opts.port = 0;
    opts.io_threads = 2;
    server_ = std::make_unique<Server>(std::move(opts), std::move(router), nullptr, &metrics_);
    for (auto& m : middleware_) server_->Use(m);
    ASSERT_TRUE(server_->Start().ok());
  }
  uint16_t port() const { return server_->port(); }

  MetricsRegistry metrics_;
  std::vector<std::shared_ptr<Middleware>> middleware_;
  std::unique_ptr<Server> server_;
};

Router EchoRouter() {
  Router r;
  EXPECT_TRUE(
      r.Add("GET", "/hello", SyncHandler([](Request&) { return Response::Text(200, "hello"); }))
          .ok());
  EXPECT_TRUE(r.Add("POST", "/echo",
                    SyncHandler([](Request& req) { return Response::Json(200, req.body); }))
                  .ok());
  EXPECT_TRUE(r.Add("POST", "/small", SyncHandler([](Request& req) {
                      return Response::Text(200, std::to_string(req.body.size()));
                    }),
                    RouteOptions{.max_body_bytes = 16})
                  .ok());
  EXPECT_TRUE(r.Add("GET", "/users/{id}", SyncHandler([](Request& req) {
                      return Response::Text(200, std::string(req.Param("id")));
                    }))
                  .ok());
  EXPECT_TRUE(r.Add("GET", "/boom",
                    SyncHandler([](Request&) -> Response { throw std::runtime_error("kaboom"); }))
                  .ok());
  EXPECT_TRUE(r.Add("GET", "/missing", SyncHandler([](Request&) {
                      return Response::FromStatus(NotFound("widget 7 does not exist"));
                    }))
                  .ok());
  return r;
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start(EchoRouter());
  TestClient c(port());
  for (int i = 0; i < 5; ++i) {
    auto res = c.Do(bhttp::verb::post, "/echo", "{\"i\":" + std::to_string(i) + "}");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "{\"i\":" + std::to_string(i) + "}");
    EXPECT_TRUE(res.keep_alive());
  }
  EXPECT_EQ(server_->stats().connections_accepted, 1u);
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start(EchoRouter());
  TestClient c(port());
  c.SendRaw(
      "GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /users/2 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /users/3 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.Read().body(), "1");
  EXPECT_EQ(c.Read().body(), "2");
  EXPECT_EQ(c.Read().body(), "3");
}

TEST_F(ServerTest, PathParametersArePercentDecoded) {
  Start(EchoRouter());
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::get, "/users/a%20b").body(), "a b");
}

TEST_F(ServerTest, UnknownPathIs404JsonWithRequestId) {
  Start(EchoRouter());
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/nope", "", {{"x-request-id", "abc-123"}});
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_EQ(res["x-request-id"], "abc-123");
  auto v = boost::json::parse(res.body());
  EXPECT_EQ(v.at("error").at("code").as_string(), "not_found");
  EXPECT_EQ(v.at("error").at("request_id").as_string(), "abc-123");
}

TEST_F(ServerTest, UntrustworthyRequestIdIsReplaced) {
  Start(EchoRouter());
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/hello", "", {{"x-request-id", "bad id with spaces"}});
  EXPECT_NE(res["x-request-id"], "bad id with spaces");
  EXPECT_EQ(res["x-request-id"].size(), 16u);
}

TEST_F(ServerTest, WrongMethodIs405WithAllow) {
  Start(EchoRouter());
  TestClient c(port());
  auto res = c.Do(bhttp::verb::delete_, "/hello");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res["allow"], "GET, HEAD");
  EXPECT_EQ(ErrorCode(res.body()), "method_not_allowed");
}

TEST_F(ServerTest, HeadAnswersWithoutBody) {
  Start(EchoRouter());
  TestClient c(port());
  c.SendRaw("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  // A HEAD response has Content-Length but no body: read the head by hand.
  bhttp::response_parser<bhttp::empty_body> p;
  p.skip(true);
  beast::flat_buffer buf;
  bhttp::read(c.socket(), buf, p);
  EXPECT_EQ(p.get().result_int(), 200);
  EXPECT_EQ(p.get()[bhttp::field::content_length], "5");
  bhttp::response<bhttp::string_body> next;
  bhttp::read(c.socket(), buf, next);
  EXPECT_EQ(next.body(), "hello");
}

// The response head is written by the server itself (not Beast's serializer): its framing is
// the server's, whatever the handler put in its headers.
TEST_F(ServerTest, ResponseFramingIsTheServers) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/nothing", SyncHandler([](Request&) {
                      Response res = Response::Text(204, "dropped");
                      res.headers.Set("Content-Length", "7");
                      res.headers.Set("x-kept", "yes");
                      return res;
                    }))
                  .ok());
  ASSERT_TRUE(r.Add("GET", "/framing", SyncHandler([](Request&) {
                      Response res = Response::Text(200, "body");
                      res.headers.Set("Content-Length", "999");
                      res.headers.Set("Transfer-Encoding", "chunked");
                      res.headers.Set("Connection", "upgrade");
                      res.headers.Set("x-split", "a\r\nInjected: 1");
                      res.headers.Set("x-kept", "yes");
                      return res;
                    }))
                  .ok());
  Start(std::move(r));
  {
    TestClient c(port());
    c.SendRaw(
        "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /framing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::string all = c.ReadToEof();
    size_t second = all.find("HTTP/1.1 200 OK\r\n");
    ASSERT_NE(second, std::string::npos) << all;
    std::string first = all.substr(0, second);
    EXPECT_TRUE(first.starts_with("HTTP/1.1 204 No Content\r\n")) << first;
    EXPECT_NE(first.find("x-kept: yes\r\n"), std::string::npos) << first;
    EXPECT_EQ(first.find("Content-Length"), std::string::npos) << first;
    EXPECT_TRUE(first.ends_with("\r\n\r\n")) << first;  // no body after the head
    std::string rest = all.substr(second);
    EXPECT_NE(rest.find("\r\nContent-Length: 4\r\n"), std::string::npos) << rest;
    EXPECT_NE(rest.find("\r\nConnection: close\r\n"), std::string::npos) << rest;
    EXPECT_NE(rest.find("\r\nx-kept: yes\r\n"), std::string::npos) << rest;
    EXPECT_EQ(rest.find("999"), std::string::npos) << rest;
    EXPECT_EQ(rest.find("chunked"), std::string::npos) << rest;
    EXPECT_EQ(rest.find("upgrade"), std::string::npos) << rest;
    EXPECT_EQ(rest.find("Injected"), std::string::npos) << rest;
    EXPECT_TRUE(rest.ends_with("\r\n\r\nbody")) << rest;
  }
  {
    // HTTP/1.0 asking for keep-alive is told so, and the connection serves a second request.
    TestClient c(port());
    c.SendRaw("GET /framing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto res = c.Read();
    EXPECT_EQ(res.version(), 10);
    EXPECT_EQ(res[bhttp::field::connection], "keep-alive");
    EXPECT_EQ(res.body(), "body");
    c.SendRaw("GET /framing HTTP/1.0\r\n\r\n");
    std::string all = c.ReadToEof();
    EXPECT_TRUE(all.starts_with("HTTP/1.0 200 OK\r\n")) << all;
    EXPECT_EQ(all.find("Connection:"), std::string::npos) << all;
    EXPECT_TRUE(all.ends_with("body")) << all;
  }
}

TEST_F(ServerTest, HandlerErrorsUseTheUniformShape) {
  Start(EchoRouter());
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/missing");
  EXPECT_EQ(res.result_int(), 404);
  auto v = boost::json::parse(res.body());
  EXPECT_EQ(v.at("error").at("message").as_string(), "widget 7 does not exist");
}

TEST_F(ServerTest, ExceptionInHandlerBecomes500AndServerSurvives) {
  Start(EchoRouter());
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/boom");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(ErrorCode(res.body()), "internal");
  EXPECT_EQ(res.body().find("kaboom"), std::string::npos);  // internals are not leaked
  EXPECT_EQ(c.Do(bhttp::verb::get, "/hello").result_int(), 200);
}

TEST_F(ServerTest, BodyOverRouteLimitIs413) {
  Start(EchoRouter());
  TestClient c(port());
  auto res = c.Do(bhttp::verb::post, "/small", std::string(17, 'x'));
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_EQ(ErrorCode(res.body()), "payload_too_large");
  TestClient c2(port());
  EXPECT_EQ(c2.Do(bhttp::verb::post, "/small", std::string(16, 'x')).body(), "16");
}

TEST_F(ServerTest, ChunkedBodyOverLimitIs413) {
  Start(EchoRouter());
  TestClient c(port());
  c.SendRaw(
      "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n");
  EXPECT_EQ(c.Read().result_int(), 413);
}

TEST_F(ServerTest, DefaultBodyLimitApplies) {
  ServerOptions o;
  o.max_body_bytes = 1000;
  Start(EchoRouter(), o);
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::post, "/echo", std::string(1001, 'x')).result_int(), 413);
}

TEST_F(ServerTest, OversizedHeaderIs431) {
  ServerOptions o;
  o.max_header_bytes = 1024;
  Start(EchoRouter(), o);
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/hello", "", {{"x-big", std::string(2000, 'a')}});
  EXPECT_EQ(res.result_int(), 431);
  EXPECT_EQ(ErrorCode(res.body()), "request_header_fields_too_large");
}

TEST_F(ServerTest, MalformedRequestIs400) {
  Start(EchoRouter());
  TestClient c(port());
  c.SendRaw("THIS IS NOT HTTP\r\n\r\n");
  std::string raw = c.ReadToEof();
  EXPECT_NE(raw.find("400"), std::string::npos);
}

TEST_F(ServerTest, SlowlorisClientIsCutOff) {
  ServerOptions o;
  o.header_timeout = 1500ms;
  Start(EchoRouter(), o);
  TestClient c(port());
  std::string request = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  auto start = std::chrono::steady_clock::now();
  bool cut = false;
  // One byte per 250 ms: the whole header would take ~15 s; the server must cut it at ~1.5 s.
  for (char ch : request) {
    boost::system::error_code ec;
    net::write(c.socket(), net::buffer(&ch, 1), ec);
    if (ec) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(250ms);
    // A closed connection shows up as readable EOF.
    c.socket().non_blocking(true);
    char b;
    c.socket().read_some(net::buffer(&b, 1), ec);
    c.socket().non_blocking(false);
    if (ec && ec != net::error::would_block) {
      cut = true;
      break;
    }
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(cut);
  EXPECT_LT(elapsed, 5s);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions o;
  o.idle_timeout = 300ms;
  Start(EchoRouter(), o);
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::get, "/hello").result_int(), 200);
  auto start = std::chrono::steady_clock::now();
  c.ReadToEof();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(ServerTest, AKeepAliveConnectionInUseOutlivesItsFirstIdleDeadline) {
  // The idle deadline moves with each request: four requests 200 ms apart on one connection with
  // a 300 ms idle timeout all succeed, and the connection then closes once idle for 300 ms.
  ServerOptions o;
  o.idle_timeout = 300ms;
  Start(EchoRouter(), o);
  TestClient c(port());
  for (int i = 0; i < 4; ++i) {
    if (i > 0) std::this_thread::sleep_for(200ms);
    EXPECT_EQ(c.Do(bhttp::verb::get, "/hello").result_int(), 200) << "request " << i;
  }
  auto idle_from = std::chrono::steady_clock::now();
  c.ReadToEof();
  auto idle = std::chrono::steady_clock::now() - idle_from;
  EXPECT_GE(idle, 250ms);
  EXPECT_LT(idle, 3s);
}

TEST_F(ServerTest, OverMaxConnectionsIs503) {
  ServerOptions o;
  o.max_connections = 2;
  Start(EchoRouter(), o);
  TestClient a(port()), b(port());
  EXPECT_EQ(a.Do(bhttp::verb::get, "/hello").result_int(), 200);
  EXPECT_EQ(b.Do(bhttp::verb::get, "/hello").result_int(), 200);
  TestClient c(port());
  auto res = c.Read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(ErrorCode(res.body()), "unavailable");
}

TEST_F(ServerTest, AsyncHandlerAnswersFromAnotherThread) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/later", Handler([](Request&, Responder responder) {
                      std::thread([responder] {
                        std::this_thread::sleep_for(50ms);
                        responder.Send(Response::Text(200, "done"));
                      }).detach();
                    }))
                  .ok());
  Start(std::move(r));
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::get, "/later").body(), "done");
}

TEST_F(ServerTest, RouteTimeoutIs504) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/slow", SyncHandler([](Request&) {
                      std::this_thread::sleep_for(500ms);
                      return Response::Text(200, "late");
                    }),
                    RouteOptions{.blocking = true, .timeout = 100ms})
                  .ok());
  Start(std::move(r));
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/slow");
  EXPECT_EQ(res.result_int(), 504);
  EXPECT_EQ(ErrorCode(res.body()), "deadline_exceeded");
}

TEST_F(ServerTest, ResponderDroppedWithoutSendIs500) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/forgot", Handler([](Request&, Responder) {})).ok());
  Start(std::move(r));
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::get, "/forgot").result_int(), 500);
}

TEST_F(ServerTest, RunInlineKeepsABlockingRouteOnItsIoThread) {
  Router r;
  std::mutex mu;
  std::thread::id predicate_thread, handler_thread;
  RouteOptions opts{.blocking = true};
  opts.run_inline = [&](Request& req) {
    std::lock_guard lock(mu);
    predicate_thread = std::this_thread::get_id();
    if (!req.headers.Has("x-cached")) return false;
    req.principal = std::string("prepared");  // what the predicate found travels along
    return true;
  };
  ASSERT_TRUE(r.Add("GET", "/work", SyncHandler([&](Request& req) {
                      std::lock_guard lock(mu);
                      handler_thread = std::this_thread::get_id();
                      const auto* p = std::any_cast<std::string>(&req.principal);
                      return Response::Text(200, p != nullptr ? *p : "none");
                    }),
                    opts)
                  .ok());
  Start(std::move(r));
  TestClient c(port());
  auto inline_res = c.Do(bhttp::verb::get, "/work", "", {{"x-cached", "1"}});
  EXPECT_EQ(inline_res.body(), "prepared");
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(handler_thread, predicate_thread);  // the I/O thread
  }
  auto pooled = c.Do(bhttp::verb::get, "/work");
  EXPECT_EQ(pooled.body(), "none");
  std::lock_guard lock(mu);
  EXPECT_NE(handler_thread, predicate_thread);  // a worker of the blocking pool
}

TEST_F(ServerTest, GracefulShutdownFinishesInFlightRequest) {
  Router r;
  std::promise<void> entered;
  ASSERT_TRUE(r.Add("GET", "/work", SyncHandler([&entered](Request&) {
                      entered.set_value();
                      std::this_thread::sleep_for(400ms);
                      return Response::Text(200, "finished");
                    }),
                    RouteOptions{.blocking = true})
                  .ok());
  Start(std::move(r));
  uint16_t p = port();
  auto fut = std::async(std::launch::async, [p] {
    TestClient c(p);
    return c.Do(bhttp::verb::get, "/work");
  });
  entered.get_future().wait();
  server_->Shutdown();
  auto res = fut.get();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "finished");
  EXPECT_FALSE(res.keep_alive());
  // The listener is gone.
  net::io_context ioc;
  tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), p), ec);
  EXPECT_TRUE(ec);
}

TEST_F(ServerTest, StreamsKeepTheConnectionAndARequestSentDuringOneIsServedAfterIt) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/short", Handler([](Request&, Responder responder) {
                      auto stream = std::make_shared<BodyStream>();
                      Response res;
                      res.headers.Set("content-type", "text/event-stream");
                      res.stream = stream;
                      (void)stream->Write("data: one\n\n");
                      (void)stream->Write("data: two\n\n");
                      stream->Close();
                      responder.Send(std::move(res));
                    }))
                  .ok());
  // The long stream writes only once the client has seen its head: still running when written.
  std::promise<void> head_seen;
  std::shared_future<void> seen = head_seen.get_future().share();
  ASSERT_TRUE(r.Add("GET", "/long", Handler([seen](Request&, Responder responder) {
                      auto stream = std::make_shared<BodyStream>();
                      Response res;
                      res.stream = stream;
                      responder.Send(std::move(res));
                      std::thread([stream, seen] {
                        seen.wait();
                        (void)stream->Write("late");
                        stream->Close();
                      }).detach();
                    }))
                  .ok());
  Start(std::move(r));
  TestClient c(port());
  for (int i = 0; i < 2; ++i) {  // the same connection serves both
    auto res = c.Do(bhttp::verb::get, "/short");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.chunked());
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res.body(), "data: one\n\ndata: two\n\n");
  }
  c.SendRaw("GET /long HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string got;
  char buf[1024];
  while (got.find("\r\n\r\n") == std::string::npos) {
    size_t n = c.socket().read_some(net::buffer(buf));
    got.append(buf, n);
  }
  EXPECT_EQ(got.find("Connection: close"), std::string::npos) << got;
  // The next request, sent while the stream runs, waits for it and is answered after it.
  c.SendRaw("GET /short HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  std::this_thread::sleep_for(50ms);
  head_seen.set_value();
  got += c.ReadToEof();  // the second request asked for the close
  size_t late = got.find("4\r\nlate\r\n0\r\n\r\n");
  ASSERT_NE(late, std::string::npos) << got;
  std::string after = got.substr(late + std::string_view("4\r\nlate\r\n0\r\n\r\n").size());
  EXPECT_TRUE(after.starts_with("HTTP/1.1 200 OK\r\n")) << got;
  EXPECT_NE(after.find("Connection: close\r\n"), std::string::npos) << after;
  EXPECT_NE(after.find("data: two\n\n\r\n0\r\n\r\n"), std::string::npos) << after;
}

TEST_F(ServerTest, SseStreamIsReadByAClient) {
  Router r;
  std::shared_ptr<SseWriter> writer;
  std::promise<void> ready;
  ASSERT_TRUE(r.Add("GET", "/events", SyncHandler([&](Request&) {
                      auto [res, w] = SseResponse();
                      writer = w;
                      ready.set_value();
                      return std::move(res);
                    }))
                  .ok());
  Start(std::move(r));
  TestClient c(port());
  c.SendRaw("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  ready.get_future().wait();
  writer->Send({.id = "1", .event = "message.created", .data = "line one\nline two"});
  writer->Send({.id = "2", .data = "{\"x\":1}"});
  writer->Close(SseEvent{.event = "resync", .data = "{}"});
  bhttp::response<bhttp::string_body> res;
  beast::flat_buffer buf;
  bhttp::read(c.socket(), buf, res);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[bhttp::field::content_type], "text/event-stream; charset=utf-8");
  EXPECT_EQ(res["x-accel-buffering"], "no");
  EXPECT_EQ(res.body(),
            "id: 1\nevent: message.created\ndata: line one\ndata: line two\n\n"
            "id: 2\ndata: {\"x\":1}\n\n"
            "event: resync\ndata: {}\n\n");
}

TEST_F(ServerTest, SseHeartbeatsAndDisconnectDetection) {
  Router r;
  std::shared_ptr<SseWriter> writer;
  std::promise<void> ready, closed;
  ASSERT_TRUE(r.Add("GET", "/events", SyncHandler([&](Request&) {
                      auto [res, w] = SseResponse(SseOptions{.heartbeat = 100ms});
                      writer = w;
                      w->stream().OnClose([&closed] { closed.set_value(); });
                      ready.set_value();
                      return std::move(res);
                    }))
                  .ok());
  Start(std::move(r));
  {
    TestClient c(port());
    c.SendRaw("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    ready.get_future().wait();
    std::string got;
    char buf[1024];
    while (got.find(": ping") == std::string::npos) {
      size_t n = c.socket().read_some(net::buffer(buf));
      got.append(buf, n);
    }
  }  // client disconnects
  EXPECT_EQ(closed.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(writer->stream().close_reason(), BodyStream::CloseReason::kClientGone);
  EXPECT_EQ(writer->Send({.data = "x"}), BodyStream::WriteResult::kClosed);
}

TEST_F(ServerTest, ShutdownEndsSseStreamsWithAFinalEvent) {
  Router r;
  std::promise<void> ready;
  std::shared_ptr<SseWriter> writer;
  ASSERT_TRUE(r.Add("GET", "/events", SyncHandler([&](Request&) {
                      auto [res, w] = SseResponse();
                      writer = w;
                      ready.set_value();
                      return std::move(res);
                    }))
                  .ok());
  Start(std::move(r));
  TestClient c(port());
  c.SendRaw("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  ready.get_future().wait();
  writer->Send({.id = "7", .data = "before"});
  std::thread stopper([this] { server_->Shutdown(); });
  bhttp::response<bhttp::string_body> res;
  beast::flat_buffer buf;
  bhttp::read(c.socket(), buf, res);
  stopper.join();
  EXPECT_EQ(res.body(), "id: 7\ndata: before\n\nevent: shutdown\ndata: {}\n\n");
}

TEST_F(ServerTest, SlowSseClientGetsFullQueueNotSilentLoss) {
  auto stream = std::make_shared<BodyStream>(100);
  EXPECT_EQ(stream->Write(std::string(60, 'a')), BodyStream::WriteResult::kOk);
  EXPECT_EQ(stream->Write(std::string(60, 'b')), BodyStream::WriteResult::kFull);
  stream->Close("event: resync\n\n");
  auto d = stream->Drain();
  ASSERT_EQ(d.chunks.size(), 2u);
  EXPECT_EQ(d.chunks[1], "event: resync\n\n");
  EXPECT_TRUE(d.finished);
}

TEST_F(ServerTest, CorsPreflightAndSimpleRequests) {
  middleware_.push_back(
      std::make_shared<CorsMiddleware>(CorsOptions{.allowed_origins = {"https://app.example"}}));
  Start(EchoRouter());
  TestClient c(port());
  auto pre = c.Do(bhttp::verb::options, "/echo", "",
                  {{"origin", "https://app.example"}, {"access-control-request-method", "POST"}});
  EXPECT_EQ(pre.result_int(), 204);
  EXPECT_EQ(pre["access-control-allow-origin"], "https://app.example");
  EXPECT_NE(pre["access-control-allow-methods"].find("POST"), std::string::npos);
  auto evil = c.Do(bhttp::verb::get, "/hello", "", {{"origin", "https://evil.example"}});
  EXPECT_EQ(evil.result_int(), 200);
  EXPECT_EQ(evil.count("access-control-allow-origin"), 0u);
}

class CountingMiddleware : public Middleware {
 public:
  std::optional<Response> OnRequest(Request& req) override {
    ++before;
    if (req.headers.Has("x-deny")) return Response::FromStatus(PermissionDenied("denied"));
    return std::nullopt;
  }
  void OnResponse(const Request&, Response& res) override {
    ++after;
    res.headers.Set("x-seen", "1");
  }
  std::atomic<int> before{0}, after{0};
};

TEST_F(ServerTest, MiddlewareCanShortCircuitAndSeesEveryResponse) {
  auto m = std::make_shared<CountingMiddleware>();
  middleware_.push_back(m);
  Start(EchoRouter());
  TestClient c(port());
  auto ok = c.Do(bhttp::verb::get, "/hello");
  EXPECT_EQ(ok["x-seen"], "1");
  auto denied = c.Do(bhttp::verb::get, "/hello", "", {{"x-deny", "1"}});
  EXPECT_EQ(denied.result_int(), 403);
  EXPECT_EQ(denied["x-seen"], "1");
  auto missing = c.Do(bhttp::verb::get, "/nope");
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(m->before.load(), 3);
  EXPECT_EQ(m->after.load(), 3);
}

TEST_F(ServerTest, PerRouteMetricsAreRecorded) {
  Start(EchoRouter());
  TestClient c(port());
  c.Do(bhttp::verb::get, "/users/1");
  c.Do(bhttp::verb::get, "/users/2");
  std::string text = metrics_.ExpositionText();
  EXPECT_NE(text.find(R"(http_requests_total{method="GET",route="/users/{id}",status="200"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("http_request_duration_seconds_bucket"), std::string::npos);
}

class StaticFilesTest : public ServerTest {
 protected:
  void SetUp() override {
    std::ofstream(dir_.path() + "/index.html") << "<html>app</html>";
    std::filesystem::create_directories(dir_.path() + "/assets");
    std::ofstream(dir_.path() + "/assets/app.js") << std::string(4000, 'x') << "console.log(1)";
    Router r;
    auto files = std::make_shared<StaticFiles>(StaticOptions{.root = dir_.path()});
    ASSERT_TRUE(StaticFiles::Mount(r, files, "/").ok());
    Start(std::move(r));
  }
  testing::TempDir dir_;
};

TEST_F(StaticFilesTest, ServesFilesWithEtagAndRevalidates) {
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "<html>app</html>");
  EXPECT_EQ(res[bhttp::field::cache_control], "no-cache");
  std::string etag(res[bhttp::field::etag]);
  ASSERT_FALSE(etag.empty());
  auto again = c.Do(bhttp::verb::get, "/index.html", "", {{"if-none-match", etag}});
  EXPECT_EQ(again.result_int(), 304);
  EXPECT_TRUE(again.body().empty());
}

TEST_F(StaticFilesTest, HashedAssetsAreImmutableAndGzipped) {
  TestClient c(port());
  auto res = c.Do(bhttp::verb::get, "/assets/app.js", "", {{"accept-encoding", "gzip, br"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[bhttp::field::content_encoding], "gzip");
  EXPECT_LT(res.body().size(), 1000u);
  EXPECT_NE(res[bhttp::field::cache_control].find("immutable"), std::string::npos);
  EXPECT_EQ(res[bhttp::field::content_type], "text/javascript; charset=utf-8");
  auto plain = c.Do(bhttp::verb::get, "/assets/app.js");
  EXPECT_EQ(plain.count(bhttp::field::content_encoding), 0u);
  EXPECT_EQ(plain.body().size(), 4014u);
}

TEST_F(StaticFilesTest, SpaFallbackButNotForApiOrFiles) {
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::get, "/chats/42").body(), "<html>app</html>");
  EXPECT_EQ(c.Do(bhttp::verb::get, "/missing.png").result_int(), 404);
  EXPECT_EQ(c.Do(bhttp::verb::get, "/api/v1/nothing").result_int(), 404);
}

TEST_F(StaticFilesTest, TraversalIsRefused) {
  TestClient c(port());
  EXPECT_EQ(c.Do(bhttp::verb::get, "/../../etc/passwd").result_int(), 404);
  EXPECT_EQ(c.Do(bhttp::verb::get, "/assets/%2e%2e/%2e%2e/etc/passwd").result_int(), 404);
}

}  // namespace
}  // namespace atrium::http
