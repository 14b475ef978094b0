#include "io_thread.h"

namespace atrium::http::internal {
namespace {
thread_local boost::asio::io_context* t_server_io = nullptr;
}  // namespace

boost::asio::io_context* CurrentServerIoContext() { return t_server_io; }

ServerIoThreadScope::ServerIoThreadScope(boost::asio::io_context& io) : previous_(t_server_io) {
  t_server_io = &io;
}

ServerIoThreadScope::~ServerIoThreadScope() { t_server_io = previous_; }

}  // namespace atrium::http::internal
