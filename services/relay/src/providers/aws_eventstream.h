// The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), which Bedrock's
// InvokeModelWithResponseStream answers with (docs/formats/aws-eventstream.md).
//
// A message: a 12-byte prelude (total length u32, headers length u32, CRC32 of those 8 bytes),
// the headers (name length u8, name, value type u8, value), the payload, and a CRC32 of everything
// before it. All integers are big-endian; the CRC is CRC-32 (IEEE 802.3, the zlib one).
//
// EventStreamDecoder takes the bytes as they arrive, in pieces of any size, and returns each
// message once it is complete and both CRCs check. Lengths are bounded before anything is
// buffered for them, so a hostile length cannot make it allocate more than `max_message_bytes`.
// After the first error the decoder stays failed (a framing error loses the stream's alignment).
// Not thread-safe; no allocation beyond the message being assembled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::relay::aws {

// The header value types of the format.
enum class EventStreamValueType : uint8_t {
  kBoolTrue = 0,
  kBoolFalse = 1,
  kByte = 2,
  kShort = 3,
  kInteger = 4,
  kLong = 5,
  kBytes = 6,
  kString = 7,
  kTimestamp = 8,  // milliseconds since the epoch, as a long
  kUuid = 9,       // 16 bytes
};

struct EventStreamHeader {
  std::string name;
  EventStreamValueType type = EventStreamValueType::kString;
  std::string bytes;   // kBytes, kString and kUuid: the raw value
  int64_t number = 0;  // the integer types, kTimestamp, and 1/0 for the booleans
};

struct EventStreamMessage {
  std::vector<EventStreamHeader> headers;
  std::string payload;

  // The value of the string header `name` (":event-type", ":message-type"...), or "" when the
  // message has none of that name and type.
  std::string_view StringHeader(std::string_view name) const;
};

// Largest message AWS sends (16 MiB) and largest headers section (128 KiB).
inline constexpr size_t kEventStreamMaxMessageBytes = size_t{16} << 20;
inline constexpr size_t kEventStreamMaxHeaderBytes = size_t{128} << 10;
// Prelude (12) + message CRC (4): the size of a message without headers and payload.
inline constexpr size_t kEventStreamOverheadBytes = 16;

class EventStreamDecoder {
 public:
  explicit EventStreamDecoder(size_t max_message_bytes = kEventStreamMaxMessageBytes)
      : max_message_bytes_(max_message_bytes) {}
  EventStreamDecoder(const EventStreamDecoder&) = delete;
  EventStreamDecoder& operator=(const EventStreamDecoder&) = delete;

  // Appends `bytes` and moves the messages they complete to the end of `out`, in order. An
  // InvalidArgument naming the fault (prelude CRC, message CRC, a length out of bounds, a
  // malformed header) when the stream is corrupt; messages completed before the fault are still
  // in `out`. Once failed, every later call returns the same error.
  Status Feed(std::string_view bytes, std::vector<EventStreamMessage>& out);
  // True when no partial message is held (a clean end of stream).
  bool idle() const { return buf_.empty() && status_.ok(); }
  const Status& status() const { return status_; }

 private:
  Status DecodeOne(std::string_view frame, EventStreamMessage& out) const;

  size_t max_message_bytes_;
  std::string buf_;      // the partial message (at most one)
  size_t expected_ = 0;  // its total length, once the prelude checked; 0 before
  Status status_;
};

// CRC-32 (IEEE, reflected, polynomial 0xEDB88320) of `data`, continuing from `crc`.
uint32_t Crc32(std::string_view data, uint32_t crc = 0);

// The wire bytes of a message (tests, fuzz seeds, mock upstreams).
std::string EncodeEventStreamMessage(const EventStreamMessage& message);
// A string header.
EventStreamHeader StringHeader(std::string name, std::string value);

}  // namespace atrium::relay::aws
