#include "client_test_servers.h"

#include "atrium/core/base64.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>

namespace atrium::http::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

// Copies bytes from `from` to `to` until either side fails, then shuts both down.
void Pipe(tcp::socket& from, tcp::socket& to) {
  std::array<char, 16384> buf;
  for (;;) {
    beast::error_code ec;
    size_t n = from.read_some(asio::buffer(buf), ec);
    if (ec) break;
    asio::write(to, asio::buffer(buf.data(), n), ec);
    if (ec) break;
  }
  beast::error_code ignored;
  from.shutdown(tcp::socket::shutdown_both, ignored);
  to.shutdown(tcp::socket::shutdown_both, ignored);
}

void Relay(TestListener* owner, tcp::socket& client, tcp::socket& upstream) {
  owner->Track(upstream.native_handle());
  std::thread back([&] { Pipe(upstream, client); });
  Pipe(client, upstream);
  back.join();
  owner->Untrack(upstream.native_handle());
}

bool ConnectUpstream(tcp::socket& upstream, const std::string& host, const std::string& port) {
  beast::error_code ec;
  tcp::resolver resolver(upstream.get_executor());
  auto results = resolver.resolve(host, port, ec);
  if (ec) return false;
  asio::connect(upstream, results, ec);
  return !ec;
}

}  // namespace

// ---- TestListener ----

TestListener::TestListener(std::function<void(Socket&)> on_connection)
    : on_connection_(std::move(on_connection)),
      acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
  port_ = acceptor_.local_endpoint().port();
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestListener::~TestListener() { Stop(); }

void TestListener::AcceptLoop() {
  for (;;) {
    auto socket = std::make_unique<Socket>(io_);
    beast::error_code ec;
    acceptor_.accept(*socket, ec);
    if (ec || stopping_) return;
    accepted_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    fds_.insert(socket->native_handle());
    threads_.emplace_back([this, s = std::move(socket)] {
      on_connection_(*s);
      {
        std::lock_guard<std::mutex> lock(mu_);
        fds_.erase(s->native_handle());
      }
      beast::error_code ignored;
      s->close(ignored);
    });
  }
}

void TestListener::Stop() {
  if (stopping_.exchange(true)) return;
  // shutdown() wakes a thread blocked in accept() or read() on Linux; close() would not.
  ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads = std::move(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

bool TestListener::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void TestListener::Track(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  fds_.insert(fd);
  if (stopping_) ::shutdown(fd, SHUT_RDWR);
}

void TestListener::Untrack(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(fd);
}

// ---- TestConnection ----

TestConnection::TestConnection(TestListener::Socket& socket, asio::ssl::context* tls,
                               TestListener* owner, int index)
    : socket_(socket), owner_(owner), index_(index) {
  if (tls != nullptr) {
    tls_ = std::make_unique<asio::ssl::stream<TestListener::Socket&>>(socket_, *tls);
  }
}

TestConnection::~TestConnection() = default;

bool TestConnection::Handshake() {
  if (!tls_) return true;
  beast::error_code ec;
  tls_->handshake(asio::ssl::stream_base::server, ec);
  return !ec;
}

bool TestConnection::Read(TestRequest* request) {
  http::request<http::string_body> message;
  beast::error_code ec;
  if (tls_) {
    http::read(*tls_, buffer_, message, ec);
  } else {
    http::read(socket_, buffer_, message, ec);
  }
  if (ec) return false;
  ++requests_;
  request->method = std::string(message.method_string());
  request->target = std::string(message.target());
  request->headers = Headers();
  for (const auto& field : message) request->headers.Add(field.name_string(), field.value());
  request->body = std::move(message.body());
  return true;
}

bool TestConnection::Write(std::string_view bytes) {
  beast::error_code ec;
  if (tls_) {
    asio::write(*tls_, asio::buffer(bytes.data(), bytes.size()), ec);
  } else {
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), ec);
  }
  return !ec;
}

bool TestConnection::Respond(int status, std::string_view body, std::string_view extra_headers) {
  std::string head = "HTTP/1.1 " + std::to_string(status) +
                     " Status\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                     std::string(extra_headers) + "\r\n";
  return Write(head + std::string(body));
}

void TestConnection::Close() {
  closed_ = true;
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
}

// ---- TestHttpServer ----

TestHttpServer::TestHttpServer(Handler handler, std::string cert_file, std::string key_file)
    : TestListener([this](Socket& socket) { Serve(socket); }), handler_(std::move(handler)) {
  if (!cert_file.empty()) {
    tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    tls_->use_certificate_chain_file(cert_file);
    tls_->use_private_key_file(key_file, asio::ssl::context::pem);
  }
}

TestHttpServer::~TestHttpServer() { Stop(); }

std::string TestHttpServer::Url(std::string_view path) const {
  return (tls_ ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port()) +
         std::string(path);
}

void TestHttpServer::Serve(Socket& socket) {
  TestConnection connection(socket, tls_.get(), this, ++next_index_);
  if (!connection.Handshake()) return;
  TestRequest request;
  while (!connection.closed() && connection.Read(&request)) handler_(connection, request);
}

// ---- TestHttpProxy ----

TestHttpProxy::TestHttpProxy(std::string credentials)
    : TestListener([this](Socket& socket) { Serve(socket); }),
      credentials_(std::move(credentials)) {}

TestHttpProxy::~TestHttpProxy() { Stop(); }

std::string TestHttpProxy::Url() const {
  return "http://" + (credentials_.empty() ? "" : credentials_ + "@") +
         "127.0.0.1:" + std::to_string(port());
}

std::vector<std::string> TestHttpProxy::targets() const {
  std::lock_guard<std::mutex> lock(mu_);
  return targets_;
}

void TestHttpProxy::Serve(Socket& socket) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    beast::error_code ec;
    http::read(socket, buffer, parser, ec);
    if (ec) return;
    auto& request = parser.get();
    std::string target(request.target());
    {
      std::lock_guard<std::mutex> lock(mu_);
      targets_.push_back(std::string(request.method_string()) + " " + target);
    }
    if (!credentials_.empty() && request[http::field::proxy_authorization] !=
                                     "Basic " + atrium::Base64Encode(credentials_)) {
      asio::write(socket,
                  asio::buffer(std::string_view("HTTP/1.1 407 Proxy Authentication Required\r\n"
                                                "Content-Length: 0\r\n\r\n")),
                  ec);
      continue;
    }
    if (request.method() == http::verb::connect) {
      size_t colon = target.rfind(':');
      Socket upstream(socket.get_executor());
      if (colon == std::string::npos ||
          !ConnectUpstream(upstream, target.substr(0, colon), target.substr(colon + 1))) {
        asio::write(socket, asio::buffer(std::string_view("HTTP/1.1 502 Bad Gateway\r\n\r\n")), ec);
        return;
      }
      asio::write(socket,
                  asio::buffer(std::string_view("HTTP/1.1 200 Connection established\r\n\r\n")),
                  ec);
      if (ec) return;
      Relay(this, socket, upstream);
      return;
    }
    std::string body = "proxied " + std::string(request.method_string()) + " " + target;
    std::string response =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::write(socket, asio::buffer(response), ec);
    if (ec) return;
  }
}

// ---- TestSocks5Proxy ----

TestSocks5Proxy::TestSocks5Proxy(std::string user, std::string password)
    : TestListener([this](Socket& socket) { Serve(socket); }),
      user_(std::move(user)),
      password_(std::move(password)) {}

TestSocks5Proxy::~TestSocks5Proxy() { Stop(); }

std::string TestSocks5Proxy::Url(bool remote_dns) const {
  return std::string(remote_dns ? "socks5h://" : "socks5://") +
         (user_.empty() ? "" : user_ + ":" + password_ + "@") +
         "127.0.0.1:" + std::to_string(port());
}

std::vector<std::string> TestSocks5Proxy::destinations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return destinations_;
}

void TestSocks5Proxy::Serve(Socket& socket) {
  beast::error_code ec;
  std::array<uint8_t, 2> greeting{};
  asio::read(socket, asio::buffer(greeting), ec);
  if (ec || greeting[0] != 5) return;
  std::vector<uint8_t> methods(greeting[1]);
  asio::read(socket, asio::buffer(methods), ec);
  if (ec) return;
  uint8_t wanted = user_.empty() ? 0x00 : 0x02;
  bool offered = std::find(methods.begin(), methods.end(), wanted) != methods.end();
  std::array<uint8_t, 2> choice{5, static_cast<uint8_t>(offered ? wanted : 0xff)};
  asio::write(socket, asio::buffer(choice), ec);
  if (ec || !offered) return;
  if (wanted == 0x02) {
    std::array<uint8_t, 2> head{};
    asio::read(socket, asio::buffer(head), ec);
    std::string user(head[1], '\0');
    asio::read(socket, asio::buffer(user), ec);
    uint8_t password_size = 0;
    asio::read(socket, asio::buffer(&password_size, 1), ec);
    std::string password(password_size, '\0');
    asio::read(socket, asio::buffer(password), ec);
    if (ec) return;
    bool ok = user == user_ && password == password_;
    std::array<uint8_t, 2> verdict{1, static_cast<uint8_t>(ok ? 0 : 1)};
    asio::write(socket, asio::buffer(verdict), ec);
    if (ec || !ok) return;
  }
  std::array<uint8_t, 4> request{};
  asio::read(socket, asio::buffer(request), ec);
  if (ec || request[1] != 0x01) return;
  std::string host;
  std::string kind;
  if (request[3] == 0x01) {
    asio::ip::address_v4::bytes_type bytes;
    asio::read(socket, asio::buffer(bytes), ec);
    host = asio::ip::address_v4(bytes).to_string();
    kind = "v4 ";
  } else if (request[3] == 0x04) {
    asio::ip::address_v6::bytes_type bytes;
    asio::read(socket, asio::buffer(bytes), ec);
    host = asio::ip::address_v6(bytes).to_string();
    kind = "v6 ";
  } else if (request[3] == 0x03) {
    uint8_t size = 0;
    asio::read(socket, asio::buffer(&size, 1), ec);
    host.resize(size);
    asio::read(socket, asio::buffer(host), ec);
    kind = "name ";
  } else {
    return;
  }
  std::array<uint8_t, 2> port_bytes{};
  asio::read(socket, asio::buffer(port_bytes), ec);
  if (ec) return;
  std::string port = std::to_string((port_bytes[0] << 8) | port_bytes[1]);
  {
    std::lock_guard<std::mutex> lock(mu_);
    destinations_.push_back(kind + host + ":" + port);
  }
  Socket upstream(socket.get_executor());
  bool connected = ConnectUpstream(upstream, host, port);
  std::array<uint8_t, 10> reply{5, static_cast<uint8_t>(connected ? 0 : 5), 0, 1, 0, 0, 0, 0, 0, 0};
  asio::write(socket, asio::buffer(reply), ec);
  if (ec || !connected) return;
  Relay(this, socket, upstream);
}

}  // namespace atrium::http::testing
