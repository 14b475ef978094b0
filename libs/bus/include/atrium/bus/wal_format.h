// On-disk constants of the bus write-ahead log, shared by the writer, the reader and the recovery
// scan. The format is specified in docs/formats/wal.md; change both together (and bump
// kWalVersion when the layout changes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace atrium::bus::wal_format {

// Segment file: `<base offset, 20 decimal digits>.wal`; its sparse index: `<same>.idx`.
inline constexpr char kSegmentSuffix[] = ".wal";
inline constexpr char kIndexSuffix[] = ".idx";
inline constexpr int kSegmentNameDigits = 20;

// Segment header (32 bytes, little-endian):
//   [0..8)   magic "ATRBWAL\0"
//   [8..12)  version (u32)
//   [12..16) reserved, zero
//   [16..24) base offset (u64): the offset of the first record this segment may hold
//   [24..28) CRC32C (masked) of bytes [0..24)
//   [28..32) reserved, zero
inline constexpr char kSegmentMagic[8] = {'A', 'T', 'R', 'B', 'W', 'A', 'L', '\0'};
inline constexpr uint32_t kWalVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 32;

// Record frame (little-endian):
//   u32 body_length | u32 masked CRC32C of body | body
// body:
//   u8 type | u64 offset | i64 timestamp_ns | u32 key_len | key
//   | u32 header_count | (u32 name_len | name | u32 value_len | value) * header_count
//   | u32 payload_len | payload
// The body must be consumed exactly: trailing bytes make the record corrupt.
inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr size_t kMinBodySize = 1 + 8 + 8 + 4 + 4 + 4;
inline constexpr uint32_t kMaxBodySize = 64u << 20;  // 64 MiB
inline constexpr uint32_t kMaxHeaderCount = 1024;

enum class RecordType : uint8_t {
  kData = 1,  // a published record
};

// Sparse index entry (16 bytes): u64 offset | u64 file position of that record's frame. One entry
// at least every kIndexIntervalBytes of segment data; the first record of a segment always has one.
inline constexpr size_t kIndexEntrySize = 16;
inline constexpr uint64_t kIndexIntervalBytes = 4096;

// CRCs are stored masked (as in LevelDB) so that a CRC of data containing CRCs stays well mixed.
inline constexpr uint32_t kCrcMaskDelta = 0xa282ead8u;
inline uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kCrcMaskDelta; }
inline uint32_t UnmaskCrc(uint32_t masked) {
  uint32_t rot = masked - kCrcMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace atrium::bus::wal_format
