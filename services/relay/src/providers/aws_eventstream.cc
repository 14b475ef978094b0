#include "aws_eventstream.h"

#include <algorithm>
#include <array>

namespace atrium::relay::aws {
namespace {

constexpr size_t kPreludeBytes = 12;

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

uint32_t ReadU32(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

uint64_t ReadBE(std::string_view s, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}

void AppendBE(std::string& out, uint64_t v, size_t n) {
  for (size_t i = n; i-- > 0;) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The size in bytes of a fixed-size value of `type`, 0 for the length-prefixed ones, -1 for an
// unknown type.
int FixedSize(uint8_t type) {
  switch (static_cast<EventStreamValueType>(type)) {
    case EventStreamValueType::kBoolTrue:
    case EventStreamValueType::kBoolFalse:
      return 0;
    case EventStreamValueType::kByte:
      return 1;
    case EventStreamValueType::kShort:
      return 2;
    case EventStreamValueType::kInteger:
      return 4;
    case EventStreamValueType::kLong:
    case EventStreamValueType::kTimestamp:
      return 8;
    case EventStreamValueType::kUuid:
      return 16;
    case EventStreamValueType::kBytes:
    case EventStreamValueType::kString:
      return 0;
  }
  return -1;
}

bool LengthPrefixed(EventStreamValueType t) {
  return t == EventStreamValueType::kBytes || t == EventStreamValueType::kString;
}

// Sign-extends the low `n` bytes of `v`.
int64_t SignExtend(uint64_t v, size_t n) {
  if (n == 0 || n >= 8) return static_cast<int64_t>(v);
  uint64_t sign = uint64_t{1} << (8 * n - 1);
  return static_cast<int64_t>((v ^ sign) - sign);
}

}  // namespace

uint32_t Crc32(std::string_view data, uint32_t crc) {
  crc = ~crc;
  for (char ch : data) crc = kCrcTable[(crc ^ static_cast<unsigned char>(ch)) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string_view EventStreamMessage::StringHeader(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name == name && h.type == EventStreamValueType::kString) return h.bytes;
  }
  return {};
}

Status EventStreamDecoder::Feed(std::string_view bytes, std::vector<EventStreamMessage>& out) {
  if (!status_.ok()) return status_;
  size_t pos = 0;
  while (true) {
    if (expected_ == 0) {
      size_t take = std::min(kPreludeBytes - buf_.size(), bytes.size() - pos);
      buf_.append(bytes.substr(pos, take));
      pos += take;
      if (buf_.size() < kPreludeBytes) return Status::Ok();
      uint32_t total = ReadU32(buf_, 0);
      uint32_t headers = ReadU32(buf_, 4);
      if (Crc32(std::string_view(buf_).substr(0, 8)) != ReadU32(buf_, 8)) {
        status_ = InvalidArgument("event stream: prelude CRC mismatch");
      } else if (total < kEventStreamOverheadBytes || total > max_message_bytes_) {
        status_ = InvalidArgument("event stream: message length " + std::to_string(total) +
                                  " out of bounds");
      } else if (headers > kEventStreamMaxHeaderBytes ||
                 headers > total - kEventStreamOverheadBytes) {
        status_ = InvalidArgument("event stream: headers length " + std::to_string(headers) +
                                  " out of bounds");
      }
      if (!status_.ok()) {
        buf_.clear();
        return status_;
      }
      expected_ = total;
      buf_.reserve(total);
    }
    size_t take = std::min(expected_ - buf_.size(), bytes.size() - pos);
    buf_.append(bytes.substr(pos, take));
    pos += take;
    if (buf_.size() < expected_) return Status::Ok();
    EventStreamMessage message;
    status_ = DecodeOne(buf_, message);
    buf_.clear();
    expected_ = 0;
    if (!status_.ok()) return status_;
    out.push_back(std::move(message));
    if (pos == bytes.size()) return Status::Ok();
  }
}

Status EventStreamDecoder::DecodeOne(std::string_view frame, EventStreamMessage& out) const {
  const size_t total = frame.size();
  if (Crc32(frame.substr(0, total - 4)) != ReadU32(frame, total - 4)) {
    return InvalidArgument("event stream: message CRC mismatch");
  }
  const size_t headers_end = kPreludeBytes + ReadU32(frame, 4);
  size_t p = kPreludeBytes;
  while (p < headers_end) {
    size_t name_len = static_cast<unsigned char>(frame[p++]);
    if (name_len == 0 || p + name_len + 1 > headers_end) {
      return InvalidArgument("event stream: malformed header name");
    }
    EventStreamHeader h;
    h.name.assign(frame.substr(p, name_len));
    p += name_len;
    uint8_t type = static_cast<unsigned char>(frame[p++]);
    int fixed = FixedSize(type);
    if (fixed < 0) {
      return InvalidArgument("event stream: unknown header value type " + std::to_string(type));
    }
    h.type = static_cast<EventStreamValueType>(type);
    if (LengthPrefixed(h.type)) {
      if (p + 2 > headers_end) return InvalidArgument("event stream: truncated header value");
      size_t len = ReadBE(frame, p, 2);
      p += 2;
      if (p + len > headers_end) return InvalidArgument("event stream: truncated header value");
      h.bytes.assign(frame.substr(p, len));
      p += len;
    } else {
      auto n = static_cast<size_t>(fixed);
      if (p + n > headers_end) return InvalidArgument("event stream: truncated header value");
      if (h.type == EventStreamValueType::kUuid) {
        h.bytes.assign(frame.substr(p, n));
      } else if (h.type == EventStreamValueType::kBoolTrue) {
        h.number = 1;
      } else if (n > 0) {
        h.number = SignExtend(ReadBE(frame, p, n), n);
      }
      p += n;
    }
    out.headers.push_back(std::move(h));
  }
  out.payload.assign(frame.substr(headers_end, total - 4 - headers_end));
  return Status::Ok();
}

EventStreamHeader StringHeader(std::string name, std::string value) {
  EventStreamHeader h;
  h.name = std::move(name);
  h.type = EventStreamValueType::kString;
  h.bytes = std::move(value);
  return h;
}

std::string EncodeEventStreamMessage(const EventStreamMessage& message) {
  std::string headers;
  for (const auto& h : message.headers) {
    headers.push_back(static_cast<char>(h.name.size()));
    headers += h.name;
    headers.push_back(static_cast<char>(h.type));
    if (LengthPrefixed(h.type)) {
      AppendBE(headers, h.bytes.size(), 2);
      headers += h.bytes;
    } else if (h.type == EventStreamValueType::kUuid) {
      headers += h.bytes;
    } else {
      int n = FixedSize(static_cast<uint8_t>(h.type));
      if (n > 0) AppendBE(headers, static_cast<uint64_t>(h.number), static_cast<size_t>(n));
    }
  }
  std::string out;
  size_t total = kEventStreamOverheadBytes + headers.size() + message.payload.size();
  out.reserve(total);
  AppendBE(out, total, 4);
  AppendBE(out, headers.size(), 4);
  AppendBE(out, Crc32(out), 4);
  out += headers;
  out += message.payload;
  AppendBE(out, Crc32(out), 4);
  return out;
}

}  // namespace atrium::relay::aws
