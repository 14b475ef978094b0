// BodyStream: a bounded, thread-safe queue of response body chunks, from a producer (a service)
// to the connection that writes them (chunked transfer encoding).
//
// The producer writes from any thread; the server drains the queue on the connection's strand.
// Write never blocks: when the queued bytes would exceed the bound it returns kFull and queues
// nothing, so the producer decides what a slow client means (drop, or Close with a final chunk such
// as a `resync` event). The stream closes exactly once, by the producer (Close), by the client
// disconnecting, or by server shutdown; OnClose callbacks then run once, on the closing thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace atrium::http {

class BodyStream {
 public:
  enum class WriteResult { kOk, kFull, kClosed };
  enum class CloseReason { kNone, kProducer, kClientGone, kServerShutdown };

  explicit BodyStream(size_t max_queued_bytes = 1 << 20);
  BodyStream(const BodyStream&) = delete;
  BodyStream& operator=(const BodyStream&) = delete;

  // Queues a chunk. Empty chunks are ignored (they would end a chunked body).
  WriteResult Write(std::string chunk);
  // Ends the body after the queued chunks and `final_chunk` (which ignores the bound).
  void Close(std::string final_chunk = {});
  bool closed() const;
  CloseReason close_reason() const;
  // Registers a callback run once when the stream closes (immediately if already closed).
  void OnClose(std::function<void()> callback);

  // Sent when nothing was written for `interval` (SSE heartbeat comments); set before streaming.
  void SetHeartbeat(std::chrono::milliseconds interval, std::string chunk);
  // Sent as the last chunk when the server shuts down (SSE: a final event).
  void SetShutdownChunk(std::string chunk);

  // ---- connection side (used by the server) ----
  struct Drained {
    std::vector<std::string> chunks;
    bool finished = false;  // no more chunks will come
  };
  // Takes everything queued.
  Drained Drain();
  // Installs the waker called (from producer threads) when chunks arrive or the stream closes.
  void SetWaker(std::function<void()> waker);
  // Closes from the server side. On shutdown the shutdown chunk is queued as the last chunk.
  void CloseFromServer(CloseReason reason);
  std::chrono::milliseconds heartbeat_interval() const { return heartbeat_interval_; }
  const std::string& heartbeat_chunk() const { return heartbeat_chunk_; }
  size_t queued_bytes() const;

 private:
  void RunCloseCallbacks(std::unique_lock<std::mutex>& lock);

  const size_t max_queued_bytes_;
  std::chrono::milliseconds heartbeat_interval_{0};
  std::string heartbeat_chunk_;
  mutable std::mutex mu_;
  std::deque<std::string> queue_;                // guarded by mu_
  size_t queued_bytes_ = 0;                      // guarded by mu_
  CloseReason reason_ = CloseReason::kNone;      // guarded by mu_
  bool producer_finished_ = false;               // guarded by mu_
  std::string shutdown_chunk_;                   // guarded by mu_
  std::function<void()> waker_;                  // guarded by mu_
  std::vector<std::function<void()>> on_close_;  // guarded by mu_
};

}  // namespace atrium::http
