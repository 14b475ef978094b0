// Encoding and decoding of one WAL record frame (docs/formats/wal.md, constants in
// wal_format.h). The decoder reads untrusted bytes: it never reads out of bounds, never
// allocates more than the input justifies, and reports damage as a value.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "atrium/bus/record.h"

namespace atrium::bus {

// Appends the frame of `record` to `*out`.
void EncodeRecord(const Record& record, std::string* out);
// The size EncodeRecord would append.
size_t EncodedRecordSize(const Record& record);

enum class DecodeResult {
  kOk,          // *record filled, *consumed = frame size
  kIncomplete,  // `data` ends inside the frame (a torn tail when at the end of a file)
  kCorrupt,     // bad length, CRC mismatch or malformed body
};

// Decodes the frame at the start of `data`.
DecodeResult DecodeRecord(std::string_view data, Record* record, size_t* consumed);

}  // namespace atrium::bus
