// CRC32C (Castagnoli), used to checksum WAL records and segment headers.
//
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at run time) and a
// slicing table otherwise; both give identical results. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace atrium::bus {

// Extends `crc` (the CRC32C of some prefix; 0 for none) with `n` bytes at `data`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data.data(), data.size()); }

// The portable implementation, exposed so tests can compare it with the hardware one.
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n);
// True when Crc32cExtend uses the SSE4.2 instruction.
bool Crc32cIsHardwareAccelerated();

}  // namespace atrium::bus
