#include "atrium/bus/wal_record.h"

#include <cstring>

#include "atrium/bus/crc32c.h"
#include "atrium/bus/wal_format.h"

namespace atrium::bus {
namespace wf = wal_format;
namespace {

// Little-endian writers over a buffer sized in advance (EncodeRecord): no capacity checks.
char* StoreU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
  return p + 4;
}
char* StoreU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
  return p + 8;
}
char* StoreBytes(char* p, std::string_view s) {
  p = StoreU32(p, static_cast<uint32_t>(s.size()));
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Bounds-checked reader over a record body.
class BodyReader {
 public:
  explicit BodyReader(std::string_view b) : b_(b) {}
  bool U8(uint8_t* v) {
    if (b_.size() < 1) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (b_.size() < 4) return false;
    *v = GetU32(b_.data());
    b_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (b_.size() < 8) return false;
    *v = GetU64(b_.data());
    b_.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string* out) {
    uint32_t n;
    if (!U32(&n) || b_.size() < n) return false;
    out->assign(b_.data(), n);
    b_.remove_prefix(n);
    return true;
  }
  bool empty() const { return b_.empty(); }
  size_t size() const { return b_.size(); }

 private:
  std::string_view b_;
};

}  // namespace

size_t EncodedRecordSize(const Record& r) {
  size_t n = wf::kFrameHeaderSize + wf::kMinBodySize + r.key.size() + r.payload.size();
  for (const auto& [k, v] : r.headers) n += 8 + k.size() + v.size();
  return n;
}

void EncodeRecord(const Record& r, std::string* out) {
  const size_t start = out->size();
  const size_t size = EncodedRecordSize(r);
  out->resize(start + size);
  char* const frame = out->data() + start;
  char* p = frame + wf::kFrameHeaderSize;  // length and crc are stored last
  *p++ = static_cast<char>(wf::RecordType::kData);
  p = StoreU64(p, r.offset);
  p = StoreU64(p, static_cast<uint64_t>(r.timestamp_ns));
  p = StoreBytes(p, r.key);
  p = StoreU32(p, static_cast<uint32_t>(r.headers.size()));
  for (const auto& [k, v] : r.headers) {
    p = StoreBytes(p, k);
    p = StoreBytes(p, v);
  }
  p = StoreBytes(p, r.payload);
  const size_t body_len = size - wf::kFrameHeaderSize;
  const uint32_t crc = wf::MaskCrc(Crc32cExtend(0, frame + wf::kFrameHeaderSize, body_len));
  p = StoreU32(frame, static_cast<uint32_t>(body_len));
  StoreU32(p, crc);
}

DecodeResult DecodeRecord(std::string_view data, Record* r, size_t* consumed) {
  if (data.size() < wf::kFrameHeaderSize) return DecodeResult::kIncomplete;
  uint32_t len = GetU32(data.data());
  uint32_t crc = GetU32(data.data() + 4);
  if (len < wf::kMinBodySize || len > wf::kMaxBodySize) return DecodeResult::kCorrupt;
  if (data.size() - wf::kFrameHeaderSize < len) return DecodeResult::kIncomplete;
  std::string_view body = data.substr(wf::kFrameHeaderSize, len);
  if (wf::UnmaskCrc(crc) != Crc32c(body)) return DecodeResult::kCorrupt;

  BodyReader in(body);
  uint8_t type;
  uint64_t ts;
  uint32_t header_count;
  if (!in.U8(&type) || type != static_cast<uint8_t>(wf::RecordType::kData)) {
    return DecodeResult::kCorrupt;
  }
  if (!in.U64(&r->offset) || !in.U64(&ts) || !in.Bytes(&r->key) || !in.U32(&header_count)) {
    return DecodeResult::kCorrupt;
  }
  // Each header takes at least 8 bytes, which bounds the reservation by the input size.
  if (header_count > wf::kMaxHeaderCount || header_count > in.size() / 8) {
    return DecodeResult::kCorrupt;
  }
  r->timestamp_ns = static_cast<int64_t>(ts);
  r->headers.clear();
  r->headers.reserve(header_count);
  for (uint32_t i = 0; i < header_count; ++i) {
    std::string k, v;
    if (!in.Bytes(&k) || !in.Bytes(&v)) return DecodeResult::kCorrupt;
    r->headers.emplace_back(std::move(k), std::move(v));
  }
  if (!in.Bytes(&r->payload) || !in.empty()) return DecodeResult::kCorrupt;
  *consumed = wf::kFrameHeaderSize + len;
  return DecodeResult::kOk;
}

}  // namespace atrium::bus
