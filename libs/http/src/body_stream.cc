#include "atrium/http/body_stream.h"

#include "atrium/http/sse.h"

namespace atrium::http {

BodyStream::BodyStream(size_t max_queued_bytes) : max_queued_bytes_(max_queued_bytes) {}

BodyStream::WriteResult BodyStream::Write(std::string chunk) {
  std::function<void()> waker;
  {
    std::lock_guard lock(mu_);
    if (reason_ != CloseReason::kNone) return WriteResult::kClosed;
    if (chunk.empty()) return WriteResult::kOk;
    if (queued_bytes_ + chunk.size() > max_queued_bytes_) return WriteResult::kFull;
    queued_bytes_ += chunk.size();
    queue_.push_back(std::move(chunk));
    waker = waker_;
  }
  if (waker) waker();
  return WriteResult::kOk;
}

void BodyStream::Close(std::string final_chunk) {
  std::unique_lock lock(mu_);
  if (reason_ != CloseReason::kNone) return;
  if (!final_chunk.empty()) {
    queued_bytes_ += final_chunk.size();
    queue_.push_back(std::move(final_chunk));
  }
  reason_ = CloseReason::kProducer;
  producer_finished_ = true;
  auto waker = waker_;
  RunCloseCallbacks(lock);
  if (waker) waker();
}

bool BodyStream::closed() const {
  std::lock_guard lock(mu_);
  return reason_ != CloseReason::kNone;
}

BodyStream::CloseReason BodyStream::close_reason() const {
  std::lock_guard lock(mu_);
  return reason_;
}

void BodyStream::OnClose(std::function<void()> callback) {
  std::unique_lock lock(mu_);
  if (reason_ != CloseReason::kNone) {
    lock.unlock();
    callback();
    return;
  }
  on_close_.push_back(std::move(callback));
}

void BodyStream::SetHeartbeat(std::chrono::milliseconds interval, std::string chunk) {
  heartbeat_interval_ = interval;
  heartbeat_chunk_ = std::move(chunk);
}

void BodyStream::SetShutdownChunk(std::string chunk) {
  std::lock_guard lock(mu_);
  shutdown_chunk_ = std::move(chunk);
}

BodyStream::Drained BodyStream::Drain() {
  std::lock_guard lock(mu_);
  Drained d;
  d.chunks.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  queued_bytes_ = 0;
  d.finished = reason_ != CloseReason::kNone;
  return d;
}

void BodyStream::SetWaker(std::function<void()> waker) {
  std::lock_guard lock(mu_);
  waker_ = std::move(waker);
}

void BodyStream::CloseFromServer(CloseReason reason) {
  std::unique_lock lock(mu_);
  if (reason_ != CloseReason::kNone) return;
  reason_ = reason;
  if (reason == CloseReason::kServerShutdown && !shutdown_chunk_.empty()) {
    queued_bytes_ += shutdown_chunk_.size();
    queue_.push_back(shutdown_chunk_);
  }
  auto waker = waker_;
  RunCloseCallbacks(lock);
  if (waker) waker();
}

size_t BodyStream::queued_bytes() const {
  std::lock_guard lock(mu_);
  return queued_bytes_;
}

void BodyStream::RunCloseCallbacks(std::unique_lock<std::mutex>& lock) {
  auto callbacks = std::move(on_close_);
  on_close_.clear();
  waker_ = nullptr;
  lock.unlock();
  for (auto& cb : callbacks) cb();
  lock.lock();
}

namespace {

// Appends `field: value` lines, one per line of `value` (SSE splits on CRLF, LF and CR).
void AppendLines(std::string& out, std::string_view field, std::string_view value) {
  size_t start = 0;
  while (true) {
    size_t br = value.find_first_of("\r\n", start);
    out += field;
    out += ": ";
    out += value.substr(start, br == std::string_view::npos ? std::string_view::npos : br - start);
    out += '\n';
    if (br == std::string_view::npos) break;
    start = br + 1;
    if (value[br] == '\r' && start < value.size() && value[start] == '\n') ++start;
  }
}

std::string OneLine(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '\r' && c != '\n' && c != '\0') out += c;
  }
  return out;
}

}  // namespace

std::string FormatSseEvent(const SseEvent& event) {
  std::string out;
  out.reserve(event.data.size() + event.id.size() + event.event.size() + 32);
  if (!event.id.empty()) {
    out += "id: ";
    out += OneLine(event.id);
    out += '\n';
  }
  if (!event.event.empty()) {
    out += "event: ";
    out += OneLine(event.event);
    out += '\n';
  }
  if (event.retry_ms) {
    out += "retry: ";
    out += std::to_string(*event.retry_ms);
    out += '\n';
  }
  AppendLines(out, "data", event.data);
  out += '\n';
  return out;
}

std::string FormatSseComment(std::string_view text) {
  std::string out = ": ";
  for (char c : text) out += (c == '\r' || c == '\n') ? ' ' : c;
  out += "\n\n";
  return out;
}

std::pair<Response, std::shared_ptr<SseWriter>> SseResponse(const SseOptions& options) {
  auto stream = std::make_shared<BodyStream>(options.max_queued_bytes);
  stream->SetHeartbeat(options.heartbeat, FormatSseComment("ping"));
  if (!options.shutdown_event.event.empty()) {
    stream->SetShutdownChunk(FormatSseEvent(options.shutdown_event));
  }
  Response res;
  res.status = 200;
  res.headers.Set("Content-Type", "text/event-stream; charset=utf-8");
  res.headers.Set("Cache-Control", "no-cache");
  res.headers.Set("X-Accel-Buffering", "no");
  res.stream = stream;
  return {std::move(res), std::make_shared<SseWriter>(stream)};
}

}  // namespace atrium::http
