// libFuzzer target: the WAL record decoder reads bytes from disk that may be torn or damaged. It
// must never crash, read out of bounds or over-allocate, and whatever it accepts must re-encode
// to exactly the bytes it consumed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "atrium/bus/wal_record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Decode frames back to back, as the recovery scan and the readers do.
  while (!in.empty()) {
    atrium::bus::Record record;
    size_t consumed = 0;
    auto r = atrium::bus::DecodeRecord(in, &record, &consumed);
    if (r != atrium::bus::DecodeResult::kOk) break;
    if (consumed == 0 || consumed > in.size()) std::abort();
    std::string again;
    atrium::bus::EncodeRecord(record, &again);
    if (again != in.substr(0, consumed)) std::abort();
    in.remove_prefix(consumed);
  }
  return 0;
}
