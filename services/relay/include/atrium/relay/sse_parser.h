// An incremental Server-Sent Events parser for upstream streams (the relay reads Anthropic,
// OpenAI and Gemini streams with it for usage accounting and translation).
//
// Feed() takes bytes as they arrive, in arbitrary pieces, and returns the events completed by
// them. Line endings \n, \r\n and \r are accepted; `data:` lines are joined with \n; comments
// (": ping") are skipped. Bytes held for an incomplete event are bounded by `max_event_bytes`
// (then Feed reports overflow and drops them). Not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace atrium::relay {

struct ParsedSseEvent {
  std::string event;  // empty when the event had no `event:` line
  std::string data;
};

class SseParser {
 public:
  explicit SseParser(size_t max_event_bytes = 8 << 20) : max_event_bytes_(max_event_bytes) {}
  // Appends `bytes`; returns the events they completed, in order.
  std::vector<ParsedSseEvent> Feed(std::string_view bytes);
  // True once an event outgrew max_event_bytes.
  bool overflowed() const { return overflowed_; }

 private:
  void Line(std::string_view line, std::vector<ParsedSseEvent>& out);

  size_t max_event_bytes_;
  std::string buf_;
  ParsedSseEvent current_;
  bool has_data_ = false;
  bool pending_cr_ = false;
  bool overflowed_ = false;
};

// The wire text of an SSE event: "event: <name>\n" (when non-empty), "data: <data>\n\n".
std::string SseFrame(std::string_view event, std::string_view data);

}  // namespace atrium::relay
