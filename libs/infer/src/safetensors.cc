#include "atrium/infer/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace atrium::infer {
namespace json = boost::json;

namespace {

Status Malformed(std::string_view what) {
  return InvalidArgument("safetensors header: " + std::string(what));
}

Status TensorError(std::string_view tensor, std::string_view what) {
  return InvalidArgument("safetensors header: tensor \"" + std::string(tensor) +
                         "\": " + std::string(what));
}

// A JSON number as a non-negative integer, or nullopt.
std::optional<uint64_t> AsUnsigned(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<uint64_t>(v.get_int64());
  return std::nullopt;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

Result<SafetensorsDtype> ParseSafetensorsDtype(std::string_view name) {
  static constexpr std::pair<std::string_view, SafetensorsDtype> kNames[] = {
      {"F64", SafetensorsDtype::kF64}, {"F32", SafetensorsDtype::kF32},
      {"F16", SafetensorsDtype::kF16}, {"BF16", SafetensorsDtype::kBF16},
      {"I64", SafetensorsDtype::kI64}, {"I32", SafetensorsDtype::kI32},
      {"I16", SafetensorsDtype::kI16}, {"I8", SafetensorsDtype::kI8},
      {"U8", SafetensorsDtype::kU8},   {"BOOL", SafetensorsDtype::kBool}};
  for (const auto& [n, d] : kNames) {
    if (n == name) return d;
  }
  return InvalidArgument("unknown safetensors dtype \"" + std::string(name) + "\"");
}

std::string_view SafetensorsDtypeName(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF64:
      return "F64";
    case SafetensorsDtype::kF32:
      return "F32";
    case SafetensorsDtype::kF16:
      return "F16";
    case SafetensorsDtype::kBF16:
      return "BF16";
    case SafetensorsDtype::kI64:
      return "I64";
    case SafetensorsDtype::kI32:
      return "I32";
    case SafetensorsDtype::kI16:
      return "I16";
    case SafetensorsDtype::kI8:
      return "I8";
    case SafetensorsDtype::kU8:
      return "U8";
    case SafetensorsDtype::kBool:
      return "BOOL";
  }
  return "?";
}

size_t SafetensorsDtypeSize(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF64:
    case SafetensorsDtype::kI64:
      return 8;
    case SafetensorsDtype::kF32:
    case SafetensorsDtype::kI32:
      return 4;
    case SafetensorsDtype::kF16:
    case SafetensorsDtype::kBF16:
    case SafetensorsDtype::kI16:
      return 2;
    case SafetensorsDtype::kI8:
    case SafetensorsDtype::kU8:
    case SafetensorsDtype::kBool:
      return 1;
  }
  return 1;
}

uint64_t TensorEntry::NumElements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> prefix,
                                                 uint64_t file_size) {
  if (prefix.size() < 8 || file_size < 8) return Malformed("file shorter than 8 bytes");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | prefix[static_cast<size_t>(i)];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Malformed("header length " + std::to_string(header_len) + " exceeds the limit");
  }
  if (header_len > file_size - 8) {
    return Malformed("header length " + std::to_string(header_len) + " runs past the end of the " +
                     std::to_string(file_size) + "-byte file");
  }
  if (prefix.size() < 8 + header_len) return Malformed("header truncated");
  std::string_view text(reinterpret_cast<const char*>(prefix.data() + 8), header_len);

  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return Malformed("invalid JSON: " + ec.message());
  if (!root.is_object()) return Malformed("not a JSON object");

  SafetensorsHeader header;
  header.data_offset = 8 + header_len;
  const uint64_t data_size = file_size - header.data_offset;
  for (const auto& kv : root.as_object()) {
    std::string name(kv.key());
    const json::value& v = kv.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return Malformed("__metadata__ is not an object");
      for (const auto& m : v.as_object()) {
        if (!m.value().is_string()) {
          return Malformed("__metadata__ value \"" + std::string(m.key()) + "\" is not a string");
        }
        header.metadata[std::string(m.key())] = std::string(m.value().as_string());
      }
      continue;
    }
    if (!v.is_object()) return TensorError(name, "entry is not an object");
    const json::object& o = v.as_object();
    TensorEntry t;
    t.name = name;

    const json::value* dtype = o.if_contains("dtype");
    if (!dtype || !dtype->is_string()) return TensorError(name, "missing string field \"dtype\"");
    auto parsed = ParseSafetensorsDtype(std::string_view(dtype->as_string()));
    if (!parsed.ok()) return TensorError(name, parsed.status().message());
    t.dtype = *parsed;

    const json::value* shape = o.if_contains("shape");
    if (!shape || !shape->is_array()) return TensorError(name, "missing array field \"shape\"");
    uint64_t elements = 1;
    bool overflow = false;
    for (const json::value& d : shape->as_array()) {
      auto dim = AsUnsigned(d);
      if (!dim || *dim > static_cast<uint64_t>(INT64_MAX)) {
        return TensorError(name, "shape holds a value that is not a non-negative integer");
      }
      t.shape.push_back(static_cast<int64_t>(*dim));
      if (*dim != 0 && elements > UINT64_MAX / *dim) overflow = true;
      elements *= *dim;
    }
    if (t.shape.size() > 8) return TensorError(name, "more than 8 dimensions");

    const json::value* offsets = o.if_contains("data_offsets");
    if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2) {
      return TensorError(name, "\"data_offsets\" must be [begin, end]");
    }
    auto begin = AsUnsigned(offsets->as_array()[0]);
    auto end = AsUnsigned(offsets->as_array()[1]);
    if (!begin || !end) return TensorError(name, "data_offsets are not non-negative integers");
    if (*begin > *end) return TensorError(name, "data_offsets begin > end");
    if (*end > data_size) {
      return TensorError(name, "data_offsets end " + std::to_string(*end) +
                                   " runs past the data section of " + std::to_string(data_size) +
                                   " bytes");
    }
    const uint64_t elem_size = SafetensorsDtypeSize(t.dtype);
    if (overflow || elements > UINT64_MAX / elem_size || elements * elem_size != *end - *begin) {
      return TensorError(
          name, "data_offsets span " + std::to_string(*end - *begin) +
                    " bytes, but shape and dtype " + std::string(SafetensorsDtypeName(t.dtype)) +
                    " need " +
                    (overflow ? std::string("more") : std::to_string(elements * elem_size)));
    }
    t.begin = *begin;
    t.end = *end;
    header.tensors.push_back(std::move(t));
  }

  // Overlap check on byte ranges (empty tensors overlap nothing).
  std::vector<const TensorEntry*> by_offset;
  for (const auto& t : header.tensors) {
    if (t.end > t.begin) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return TensorError(by_offset[i]->name,
                         "data overlaps tensor \"" + by_offset[i - 1]->name + "\"");
    }
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.name < b.name; });
  for (size_t i = 1; i < header.tensors.size(); ++i) {
    if (header.tensors[i].name == header.tensors[i - 1].name) {
      return TensorError(header.tensors[i].name, "listed twice");
    }
  }
  return header;
}

Status ConvertToFloat32(SafetensorsDtype dtype, const uint8_t* data, size_t count, float* out) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      std::memcpy(out, data, count * 4);
      return Status::Ok();
    case SafetensorsDtype::kF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      return Status::Ok();
    case SafetensorsDtype::kBF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return Status::Ok();
    default:
      return InvalidArgument("dtype " + std::string(SafetensorsDtypeName(dtype)) +
                             " cannot be read as floating point");
  }
}

// ---------------------------------------------------------------------------------------------
// WeightStore

struct WeightStore::MappedFile {
  std::string path;
  const uint8_t* base = nullptr;
  size_t size = 0;
  SafetensorsHeader header;

  ~MappedFile() {
    if (base != nullptr && size > 0) munmap(const_cast<uint8_t*>(base), size);
  }
};

WeightStore::~WeightStore() = default;

Status WeightStore::AddFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(path + " does not exist");
    return Internal("cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Internal("cannot stat " + path + ": " + std::strerror(err));
  }
  auto file = std::make_unique<MappedFile>();
  file->path = path;
  file->size = static_cast<size_t>(st.st_size);
  if (file->size > 0) {
    void* p = mmap(nullptr, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return Internal("cannot map " + path + ": " + std::strerror(err));
    }
    file->base = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  auto header =
      ParseSafetensorsHeader(std::span<const uint8_t>(file->base, file->size), file->size);
  if (!header.ok()) return header.status().WithContext(path);
  file->header = std::move(header).value();
  for (const TensorEntry& t : file->header.tensors) {
    if (tensors_.count(t.name) != 0) {
      return InvalidArgument(path + ": tensor \"" + t.name + "\" is also in another shard");
    }
    tensors_.emplace(t.name, Location{file.get(), &t});
  }
  files_.push_back(std::move(file));
  return Status::Ok();
}

Result<std::unique_ptr<WeightStore>> WeightStore::OpenFile(const std::string& path) {
  std::unique_ptr<WeightStore> store(new WeightStore());
  RETURN_IF_ERROR(store->AddFile(path));
  return store;
}

Result<std::unique_ptr<WeightStore>> WeightStore::Open(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  if (::access(single.c_str(), F_OK) == 0) return OpenFile(single);
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::ifstream in(index_path, std::ios::binary);
  if (!in) {
    return NotFound(single + " does not exist (nor " + index_path + ")");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  json::value root = json::parse(ss.str(), ec);
  if (ec || !root.is_object()) return InvalidArgument(index_path + ": not a JSON object");
  const json::value* map = root.as_object().if_contains("weight_map");
  if (!map || !map->is_object()) {
    return InvalidArgument(index_path + ": missing object field \"weight_map\"");
  }
  std::set<std::string> shards;
  for (const auto& kv : map->as_object()) {
    if (!kv.value().is_string()) {
      return InvalidArgument(index_path + ": weight_map entry \"" + std::string(kv.key()) +
                             "\" is not a string");
    }
    std::string shard(kv.value().as_string());
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      return InvalidArgument(index_path + ": weight_map entry \"" + std::string(kv.key()) +
                             "\" names \"" + shard + "\", not a file in the model directory");
    }
    shards.insert(shard);
  }
  if (shards.empty()) return InvalidArgument(index_path + ": weight_map is empty");
  std::unique_ptr<WeightStore> store(new WeightStore());
  for (const std::string& shard : shards) RETURN_IF_ERROR(store->AddFile(dir + "/" + shard));
  for (const auto& kv : map->as_object()) {
    if (!store->Contains(kv.key())) {
      return InvalidArgument(index_path + ": tensor \"" + std::string(kv.key()) +
                             "\" is not in shard " + std::string(kv.value().as_string()));
    }
  }
  return store;
}

bool WeightStore::Contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

const TensorEntry* WeightStore::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.entry;
}

Result<std::vector<float>> WeightStore::ReadFloat32(std::string_view name,
                                                    std::span<const int64_t> shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return NotFound("tensor \"" + std::string(name) + "\" is missing");
  const TensorEntry& t = *it->second.entry;
  if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end())) {
    auto fmt = [](std::span<const int64_t> s) {
      std::string r = "[";
      for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
      return r + "]";
    };
    return InvalidArgument(it->second.file->path + ": tensor \"" + t.name + "\" has shape " +
                           fmt(t.shape) + ", expected " + fmt(shape));
  }
  std::vector<float> out(t.NumElements());
  const uint8_t* data = it->second.file->base + it->second.file->header.data_offset + t.begin;
  Status s = ConvertToFloat32(t.dtype, data, out.size(), out.data());
  if (!s.ok()) return s.WithContext(it->second.file->path + ": tensor \"" + t.name + "\"");
  return out;
}

std::vector<std::string> WeightStore::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& kv : tensors_) names.push_back(kv.first);
  return names;
}

uint64_t WeightStore::ParameterCount() const {
  uint64_t n = 0;
  for (const auto& kv : tensors_) n += kv.second.entry->NumElements();
  return n;
}

std::string WeightStore::FloatDtype() const {
  std::string dtype;
  for (const auto& kv : tensors_) {
    SafetensorsDtype d = kv.second.entry->dtype;
    if (d != SafetensorsDtype::kF32 && d != SafetensorsDtype::kF16 &&
        d != SafetensorsDtype::kBF16) {
      continue;
    }
    std::string name(SafetensorsDtypeName(d));
    if (dtype.empty()) {
      dtype = name;
    } else if (dtype != name) {
      return "mixed";
    }
  }
  return dtype;
}

}  // namespace atrium::infer
