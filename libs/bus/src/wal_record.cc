#include "atrium/bus/wal_record.h"

#include <cstring>

#include "atrium/bus/crc32c.h"
#include "atrium/bus/wal_format.h"

namespace atrium::bus {
namespace wf = wal_format;
namespace {

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}
void PutU64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}
void PutBytes(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
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
  size_t start = out->size();
  PutU32(out, 0);  // length, patched below
  PutU32(out, 0);  // crc, patched below
  out->push_back(static_cast<char>(wf::RecordType::kData));
  PutU64(out, r.offset);
  PutU64(out, static_cast<uint64_t>(r.timestamp_ns));
  PutBytes(out, r.key);
  PutU32(out, static_cast<uint32_t>(r.headers.size()));
  for (const auto& [k, v] : r.headers) {
    PutBytes(out, k);
    PutBytes(out, v);
  }
  PutBytes(out, r.payload);
  size_t body_len = out->size() - start - wf::kFrameHeaderSize;
  uint32_t crc = wf::MaskCrc(Crc32cExtend(0, out->data() + start + wf::kFrameHeaderSize, body_len));
  char hdr[8];
  for (int i = 0; i < 4; ++i)
    hdr[i] = static_cast<char>(static_cast<uint32_t>(body_len) >> (8 * i));
  for (int i = 0; i < 4; ++i) hdr[4 + i] = static_cast<char>(crc >> (8 * i));
  std::memcpy(out->data() + start, hdr, 8);
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
