// Records: the immutable unit the bus stores and delivers.
//
// A published Message becomes a Record once the bus has given it an offset and a timestamp.
// Records are shared as `RecordPtr` (a reference-counted pointer to const): every subscriber of a
// topic receives the same buffer, so fan-out never copies payloads. Immutable, hence thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace atrium::bus {

using Headers = std::vector<std::pair<std::string, std::string>>;

// What a publisher hands to the bus.
struct Message {
  std::string key;  // optional; used for filtering and (later) partitioning
  Headers headers;  // small string map; filters read these, never the payload
  std::string payload;
};

struct Record {
  uint64_t offset = 0;       // strictly increasing per topic, never reused
  int64_t timestamp_ns = 0;  // wall clock at publish, nanoseconds since the Unix epoch
  std::string key;
  Headers headers;
  std::string payload;

  // The value of the first header named `name`, or nullptr.
  const std::string* FindHeader(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

using RecordPtr = std::shared_ptr<const Record>;

}  // namespace atrium::bus
