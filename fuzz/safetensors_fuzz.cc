// libFuzzer target: the safetensors header parser must accept or reject any byte string without
// crashing, and every tensor it accepts must lie inside the file, match its shape and dtype
// size, and not overlap another; converting an accepted floating-point tensor must stay in
// bounds (ASan checks the reads).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "atrium/infer/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atrium::infer;
  auto header = ParseSafetensorsHeader(std::span<const uint8_t>(data, size), size);
  if (!header.ok()) return 0;
  if (header->data_offset > size) std::abort();
  const uint64_t data_size = size - header->data_offset;
  std::vector<float> out;
  for (const TensorEntry& t : header->tensors) {
    if (t.begin > t.end || t.end > data_size) std::abort();
    if (t.NumElements() * SafetensorsDtypeSize(t.dtype) != t.end - t.begin) std::abort();
    const size_t count = static_cast<size_t>(t.NumElements());
    if (count > (1u << 20)) continue;
    out.resize(count);
    (void)ConvertToFloat32(t.dtype, data + header->data_offset + t.begin, count, out.data());
  }
  return 0;
}
