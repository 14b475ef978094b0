#include "atrium/relay/sse_parser.h"

namespace atrium::relay {

std::vector<ParsedSseEvent> SseParser::Feed(std::string_view bytes) {
  std::vector<ParsedSseEvent> out;
  size_t start = 0;
  if (pending_cr_ && !bytes.empty() && bytes.front() == '\n') start = 1;  // \r\n split
  pending_cr_ = false;
  for (size_t i = start; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (c != '\n' && c != '\r') continue;
    buf_.append(bytes.substr(start, i - start));
    Line(buf_, out);
    buf_.clear();
    if (c == '\r') {
      if (i + 1 < bytes.size()) {
        if (bytes[i + 1] == '\n') ++i;
      } else {
        pending_cr_ = true;
      }
    }
    start = i + 1;
  }
  if (start < bytes.size()) buf_.append(bytes.substr(start));
  if (buf_.size() + current_.data.size() > max_event_bytes_) {
    overflowed_ = true;
    buf_.clear();
    current_ = {};
    has_data_ = false;
  }
  return out;
}

void SseParser::Line(std::string_view line, std::vector<ParsedSseEvent>& out) {
  if (line.empty()) {
    if (has_data_ || !current_.event.empty()) out.push_back(std::move(current_));
    current_ = {};
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "event") {
    current_.event = std::string(value);
  } else if (field == "data") {
    if (has_data_) current_.data += '\n';
    current_.data.append(value);
    has_data_ = true;
  }
}

std::string SseFrame(std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 16);
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  out += "data: ";
  out += data;
  out += "\n\n";
  return out;
}

}  // namespace atrium::relay
