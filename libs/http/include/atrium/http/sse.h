// Server-Sent Events on top of BodyStream: framing (docs/formats/sse.md) and a writer.
//
// Framing follows the HTML standard: `id:`, `event:`, `retry:` lines, then one `data:` line per
// line of the payload (split on \r\n, \n and \r), then a blank line. Ids and event names cannot
// contain line breaks; they are stripped. A stream opened with SseResponse gets heartbeat comments
// every `heartbeat` and `X-Accel-Buffering: no`.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "atrium/http/body_stream.h"
#include "atrium/http/handler.h"

namespace atrium::http {

struct SseEvent {
  std::string id;     // empty: no id line
  std::string event;  // empty: default "message"
  std::string data;
  std::optional<int> retry_ms;
};

// The wire text of one event, ending with the blank line.
std::string FormatSseEvent(const SseEvent& event);
// A comment line (": text\n\n"), used for heartbeats; line breaks in text are replaced by spaces.
std::string FormatSseComment(std::string_view text);

struct SseOptions {
  size_t max_queued_bytes = 1 << 20;
  std::chrono::milliseconds heartbeat{15000};
  // Event sent when the server shuts down; empty event name = none.
  SseEvent shutdown_event{.event = "shutdown", .data = "{}"};
};

// A writer for one SSE connection. Thread-safe.
class SseWriter {
 public:
  explicit SseWriter(std::shared_ptr<BodyStream> stream) : stream_(std::move(stream)) {}
  BodyStream::WriteResult Send(const SseEvent& event) {
    return stream_->Write(FormatSseEvent(event));
  }
  // Ends the stream with a last event (for example `resync` for a client that fell behind).
  void Close(const std::optional<SseEvent>& last = std::nullopt) {
    stream_->Close(last ? FormatSseEvent(*last) : std::string());
  }
  bool closed() const { return stream_->closed(); }
  BodyStream& stream() { return *stream_; }

 private:
  std::shared_ptr<BodyStream> stream_;
};

// Builds a streaming `text/event-stream` response and the writer that feeds it.
std::pair<Response, std::shared_ptr<SseWriter>> SseResponse(const SseOptions& options = {});

}  // namespace atrium::http
