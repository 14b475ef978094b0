// FakeUpstream: a scripted HTTP/1.1 server on 127.0.0.1:<port 0> that plays a provider for the
// relay tests byte for byte (raw sockets, so tests control every byte, delays, stalls and
// abrupt disconnects). Each connection serves one request (`Connection: close`).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace atrium::relay::testing {

struct UpstreamRequest {
  std::string method, path;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct Step {
  std::string bytes;
  int delay_ms = 0;  // before sending
};

struct Script {
  std::vector<Step> steps;
  enum class End { kClose, kAbort, kHang } end = End::kClose;
};

// A complete JSON response.
inline Script JsonReply(int status, const std::string& body,
                        std::vector<std::pair<std::string, std::string>> headers = {}) {
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " X\r\ncontent-type: application/json\r\n";
  for (auto& [k, v] : headers) head += k + ": " + v + "\r\n";
  head += "content-length: " + std::to_string(body.size()) + "\r\nconnection: close\r\n\r\n";
  return Script{{Step{head + body}}};
}

inline std::string Chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return size + data + "\r\n";
}

// A chunked text/event-stream response; each piece is one chunk sent after `delay_ms`.
// `complete` = false ends without the terminating chunk (with `end`).
inline Script SseReply(const std::vector<std::string>& pieces, int delay_ms = 0,
                       bool complete = true, Script::End end = Script::End::kClose) {
  Script s;
  s.steps.push_back(
      Step{"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
           "transfer-encoding: chunked\r\nconnection: close\r\n\r\n"});
  for (const auto& p : pieces) s.steps.push_back(Step{Chunk(p), delay_ms});
  if (complete) s.steps.push_back(Step{"0\r\n\r\n"});
  s.end = complete ? Script::End::kClose : end;
  return s;
}

class FakeUpstream {
 public:
  using Handler = std::function<Script(const UpstreamRequest&)>;

  explicit FakeUpstream(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 256);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeUpstream() { Stop(); }

  void Stop() {
    if (stopped_.exchange(true)) return;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      workers = std::move(workers_);
    }
    for (auto& t : workers) t.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<UpstreamRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  size_t request_count() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }
  // Streams whose client went away while the script was still sending.
  int client_aborts() const { return client_aborts_; }
  bool WaitClientAborts(int n, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (client_aborts_ < n && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return client_aborts_ >= n;
  }

 private:
  void AcceptLoop() {
    while (!stopped_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        if (stopped_) return;
        continue;
      }
      std::lock_guard lock(mu_);
      workers_.emplace_back([this, c] { Serve(c); });
    }
  }

  void Serve(int c) {
    std::string buf;
    char tmp[8192];
    size_t header_end;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        ::close(c);
        return;
      }
      buf.append(tmp, static_cast<size_t>(n));
    }
    UpstreamRequest req;
    std::string head = buf.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    req.method = request_line.substr(0, sp1);
    req.path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        req.headers[name] = value;
      }
      pos = e + 2;
    }
    size_t length =
        req.headers.contains("content-length") ? std::stoul(req.headers["content-length"]) : 0;
    req.body = buf.substr(header_end + 4);
    while (req.body.size() < length) {
      ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
      if (n <= 0) break;
      req.body.append(tmp, static_cast<size_t>(n));
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(req);
    }
    Script script = handler_(req);
    for (size_t i = 0; i < script.steps.size(); ++i) {
      const auto& step = script.steps[i];
      if (step.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step.delay_ms));
      if (stopped_) break;
      ssize_t n = ::send(c, step.bytes.data(), step.bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        ++client_aborts_;
        ::close(c);
        return;
      }
    }
    if (script.end == Script::End::kHang) {
      while (!stopped_) {
        char b;
        // Returns when the client (the relay) closes its side.
        timeval tv{0, 100000};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = ::recv(c, &b, 1, 0);
        if (n == 0) break;
      }
    } else if (script.end == Script::End::kAbort) {
      linger lg{1, 0};  // RST: an abrupt disconnect
      ::setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    ::close(c);
  }

  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int> client_aborts_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;       // guarded by mu_
  std::vector<UpstreamRequest> requests_;  // guarded by mu_
};

// Wire-exact provider responses.
inline std::string AnthropicEvent(const std::string& name, const std::string& data) {
  return "event: " + name + "\ndata: " + data + "\n\n";
}

// The full Anthropic stream for `text` in `parts` deltas (with ping), usage in/out.
inline std::vector<std::string> AnthropicStream(const std::vector<std::string>& parts,
                                                int input_tokens, int output_tokens,
                                                bool finish = true) {
  std::vector<std::string> out;
  out.push_back(AnthropicEvent(
      "message_start",
      R"({"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":)" +
          std::to_string(input_tokens) +
          R"(,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})"));
  out.push_back(AnthropicEvent(
      "content_block_start",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  out.push_back(AnthropicEvent("ping", R"({"type": "ping"})"));
  for (const auto& p : parts) {
    out.push_back(AnthropicEvent(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":")" + p +
            R"("}})"));
  }
  if (finish) {
    out.push_back(
        AnthropicEvent("content_block_stop", R"({"type":"content_block_stop","index":0})"));
    out.push_back(AnthropicEvent(
        "message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":)" +
            std::to_string(output_tokens) + "}}"));
    out.push_back(AnthropicEvent("message_stop", R"({"type":"message_stop"})"));
  }
  return out;
}

inline std::string AnthropicMessage(const std::string& text, int input_tokens, int output_tokens) {
  return R"({"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":")" +
         text + R"("}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":)" +
         std::to_string(input_tokens) +
         R"(,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":)" +
         std::to_string(output_tokens) + "}}";
}

inline std::vector<std::string> OpenAIStream(const std::vector<std::string>& parts, int prompt,
                                             int completion) {
  std::vector<std::string> out;
  auto chunk = [](const std::string& delta, const std::string& finish) {
    return R"(data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":)" +
           delta + R"(,"logprobs":null,"finish_reason":)" + finish + R"(}],"usage":null})" + "\n\n";
  };
  out.push_back(chunk(R"({"role":"assistant","content":"","refusal":null})", "null"));
  for (const auto& p : parts) out.push_back(chunk(R"({"content":")" + p + R"("})", "null"));
  out.push_back(chunk("{}", R"("stop")"));
  out.push_back(
      R"(data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[],"usage":{"prompt_tokens":)" +
      std::to_string(prompt) + R"(,"completion_tokens":)" + std::to_string(completion) +
      R"(,"total_tokens":)" + std::to_string(prompt + completion) + "}}\n\n");
  out.push_back("data: [DONE]\n\n");
  return out;
}

}  // namespace atrium::relay::testing
