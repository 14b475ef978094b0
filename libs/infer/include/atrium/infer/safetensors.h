// Safetensors: the weight files of Hugging Face models (https://huggingface.co/docs/safetensors).
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}})
// and the tensor bytes; offsets count from the first byte after the header. ParseSafetensorsHeader
// validates everything a reader relies on (bounds, sizes, overlaps) before any tensor is touched,
// so the rest of the code may index the data without further checks. It reads untrusted bytes and
// has a fuzz target (fuzz/safetensors_fuzz.cc).
//
// WeightStore opens one file (model.safetensors) or the shards listed in
// model.safetensors.index.json, memory-maps them read-only and converts tensors to fp32 on demand.
//
// Thread safety: a parsed header and an open WeightStore are immutable; const methods may be
// called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::infer {

enum class SafetensorsDtype { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32" → kF32 etc.; nullopt-like InvalidArgument for an unknown name.
Result<SafetensorsDtype> ParseSafetensorsDtype(std::string_view name);
std::string_view SafetensorsDtypeName(SafetensorsDtype dtype);
size_t SafetensorsDtypeSize(SafetensorsDtype dtype);

struct TensorEntry {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section, begin <= end <= data size
  uint64_t end = 0;

  uint64_t NumElements() const;
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;          // 8 + header length: where the data section starts
  std::vector<TensorEntry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

// Largest header accepted (the format's reference implementation uses the same bound).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100 * 1024 * 1024;

// Parses and validates the header of a safetensors file. `prefix` holds at least the first
// 8 + N bytes of the file (more is fine), `file_size` is the size of the whole file.
// InvalidArgument (naming the tensor where there is one) for: a header length beyond the file or
// the limit, malformed JSON, an unknown dtype, a negative or non-integer dimension, offsets
// outside the data section or not matching shape × dtype size, and overlapping tensors.
Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> prefix,
                                                 uint64_t file_size);

// Converts `count` elements of F32, F16 or BF16 little-endian data to fp32.
// InvalidArgument for other dtypes.
Status ConvertToFloat32(SafetensorsDtype dtype, const uint8_t* data, size_t count, float* out);

// The tensors of a model: one safetensors file or a sharded set, memory-mapped.
class WeightStore {
 public:
  // Opens `dir`/model.safetensors, or, when absent, the shards named by
  // `dir`/model.safetensors.index.json. NotFound names the missing file; InvalidArgument names
  // the malformed file (and tensor).
  static Result<std::unique_ptr<WeightStore>> Open(const std::string& dir);
  // Opens one safetensors file.
  static Result<std::unique_ptr<WeightStore>> OpenFile(const std::string& path);

  ~WeightStore();
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  bool Contains(std::string_view name) const;
  // Null when absent.
  const TensorEntry* Find(std::string_view name) const;
  // The tensor `name` as fp32, checked against `shape`. NotFound when absent; InvalidArgument
  // naming the tensor for a shape mismatch or a dtype other than F32/F16/BF16.
  Result<std::vector<float>> ReadFloat32(std::string_view name,
                                         std::span<const int64_t> shape) const;
  // Every tensor name, sorted.
  std::vector<std::string> Names() const;
  // Total elements over all tensors.
  uint64_t ParameterCount() const;
  // The dtype of the floating-point tensors ("F32", "F16", "BF16"; "mixed" when they differ).
  std::string FloatDtype() const;

 private:
  struct MappedFile;
  struct Location {
    const MappedFile* file;
    const TensorEntry* entry;
  };
  WeightStore() = default;
  Status AddFile(const std::string& path);

  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, Location, std::less<>> tensors_;
};

}  // namespace atrium::infer
