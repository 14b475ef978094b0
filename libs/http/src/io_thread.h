// Which Atrium HTTP server I/O thread, if any, the calling thread is. The server marks its I/O
// threads; the HTTP client (ClientOptions::run_on_server_threads) then runs a request started on
// one of them on that thread's own event loop instead of handing it to a client thread.
#pragma once

namespace boost::asio {
class io_context;
}

namespace atrium::http::internal {

// The io_context this thread runs for an http::Server, or null.
boost::asio::io_context* CurrentServerIoContext();

// Marks the current thread as running `io` for a server while in scope.
class ServerIoThreadScope {
 public:
  explicit ServerIoThreadScope(boost::asio::io_context& io);
  ~ServerIoThreadScope();
  ServerIoThreadScope(const ServerIoThreadScope&) = delete;
  ServerIoThreadScope& operator=(const ServerIoThreadScope&) = delete;

 private:
  boost::asio::io_context* previous_;
};

}  // namespace atrium::http::internal
