// Small blocking servers for the HTTP client tests: an HTTP/1.1 server (plain or TLS) whose
// behaviour is a handler writing raw bytes, an HTTP proxy (CONNECT tunnels and absolute-form
// requests) and a SOCKS5 proxy. All listen on 127.0.0.1 port 0, use one thread per connection,
// and stop (closing every socket, joining every thread) on destruction.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "atrium/http/headers.h"

namespace atrium::http::testing {

// Accepts connections on 127.0.0.1:0 and runs `on_connection` for each on its own thread.
class TestListener {
 public:
  using Socket = boost::asio::ip::tcp::socket;

  explicit TestListener(std::function<void(Socket&)> on_connection);
  virtual ~TestListener();
  TestListener(const TestListener&) = delete;
  TestListener& operator=(const TestListener&) = delete;

  uint16_t port() const { return port_; }
  int connections_accepted() const { return accepted_.load(); }
  // Sleeps up to `d`; returns false early when the listener is stopping.
  bool Sleep(std::chrono::milliseconds d);
  bool stopping() const { return stopping_.load(); }
  // Registers a socket (e.g. a proxy's upstream) to be shut down by Stop().
  void Track(int fd);
  void Untrack(int fd);

 protected:
  // Stops accepting, wakes every connection thread and joins them. Derived classes call it
  // first in their destructor.
  void Stop();

 private:
  void AcceptLoop();

  std::function<void(Socket&)> on_connection_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int> fds_;                 // guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread accept_thread_;
};

struct TestRequest {
  std::string method;
  std::string target;
  Headers headers;
  std::string body;
};

// One server-side connection of TestHttpServer.
class TestConnection {
 public:
  TestConnection(TestListener::Socket& socket, boost::asio::ssl::context* tls, TestListener* owner,
                 int index);
  ~TestConnection();
  // TLS handshake (no-op for plain connections). False on failure.
  bool Handshake();
  // Reads the next request; false when the peer closed or on error.
  bool Read(TestRequest* request);
  bool Write(std::string_view bytes);
  // Writes a complete response with Content-Length.
  bool Respond(int status, std::string_view body, std::string_view extra_headers = "");
  // Closes the connection after the handler returns (and shuts the socket down now).
  void Close();
  bool closed() const { return closed_; }
  bool Sleep(std::chrono::milliseconds d) { return owner_->Sleep(d); }
  int index() const { return index_; }        // 1 for the first accepted connection
  int requests() const { return requests_; }  // requests read so far on this connection

 private:
  TestListener::Socket& socket_;
  std::unique_ptr<boost::asio::ssl::stream<TestListener::Socket&>> tls_;
  TestListener* owner_;
  boost::beast::flat_buffer buffer_;
  int index_;
  int requests_ = 0;
  bool closed_ = false;
};

class TestHttpServer : public TestListener {
 public:
  using Handler = std::function<void(TestConnection&, const TestRequest&)>;

  // TLS when cert_file is not empty.
  explicit TestHttpServer(Handler handler, std::string cert_file = "", std::string key_file = "");
  ~TestHttpServer() override;

  // "http://127.0.0.1:PORT" + path (or https://localhost:PORT for TLS servers).
  std::string Url(std::string_view path) const;

 private:
  void Serve(Socket& socket);

  Handler handler_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  std::atomic<int> next_index_{0};
};

// HTTP proxy: CONNECT host:port opens a tunnel; any other request is answered by the proxy
// itself with 200 and the body "proxied <method> <target>". Requires
// "Proxy-Authorization: Basic base64(user:pass)" when `credentials` ("user:pass") is set.
class TestHttpProxy : public TestListener {
 public:
  explicit TestHttpProxy(std::string credentials = "");
  ~TestHttpProxy() override;
  std::string Url() const;                   // http://[user:pass@]127.0.0.1:PORT
  std::vector<std::string> targets() const;  // request targets seen, in order

 private:
  void Serve(Socket& socket);
  std::string credentials_;
  mutable std::mutex mu_;
  std::vector<std::string> targets_;  // guarded by mu_
};

// SOCKS5 proxy (CONNECT only). Requires user/password authentication when `user` is not empty.
class TestSocks5Proxy : public TestListener {
 public:
  explicit TestSocks5Proxy(std::string user = "", std::string password = "");
  ~TestSocks5Proxy() override;
  // "socks5://..." or "socks5h://..." with the configured credentials.
  std::string Url(bool remote_dns) const;
  // Destinations asked for, as "name:port" or "ip:port" with the address type ("v4 ", "name ").
  std::vector<std::string> destinations() const;

 private:
  void Serve(Socket& socket);
  std::string user_;
  std::string password_;
  mutable std::mutex mu_;
  std::vector<std::string> destinations_;  // guarded by mu_
};

}  // namespace atrium::http::testing
