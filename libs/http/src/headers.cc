#include "atrium/http/headers.h"

#include <algorithm>

namespace atrium::http {

namespace {
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Room for a typical request's or response's fields before the first reallocation.
constexpr size_t kInitialFields = 8;
constexpr size_t kInitialBytes = 256;
}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> Headers::Get(std::string_view name) const {
  for (const Entry& e : entries_) {
    if (EqualsIgnoreCase(std::string_view(bytes_.data() + e.name_at, e.name_size), name)) {
      return std::string_view(bytes_.data() + e.value_at, e.value_size);
    }
  }
  return std::nullopt;
}

std::string_view Headers::GetOr(std::string_view name, std::string_view fallback) const {
  auto v = Get(name);
  return v ? *v : fallback;
}

bool Headers::Views(std::string_view s) const {
  return !s.empty() && s.data() >= bytes_.data() && s.data() < bytes_.data() + bytes_.size();
}

// `name` or `value` may view this object's own bytes (h.Set("b", *h.Get("a"))): growing or
// compacting the buffer would move them, so such arguments are copied first.

void Headers::Set(std::string_view name, std::string_view value) {
  if (Views(name) || Views(value)) {
    const std::string name_copy(name), value_copy(value);
    return Set(name_copy, value_copy);
  }
  Remove(name);
  Add(name, value);
}

void Headers::Add(std::string_view name, std::string_view value) {
  if (Views(name) || Views(value)) {
    const std::string name_copy(name), value_copy(value);
    return Add(name_copy, value_copy);
  }
  if (entries_.empty()) {
    entries_.reserve(kInitialFields);
    bytes_.reserve(std::max(kInitialBytes, name.size() + value.size()));
  }
  Entry e{};
  e.name_at = static_cast<uint32_t>(bytes_.size());
  e.name_size = static_cast<uint32_t>(name.size());
  bytes_.append(name);
  e.value_at = static_cast<uint32_t>(bytes_.size());
  e.value_size = static_cast<uint32_t>(value.size());
  bytes_.append(value);
  entries_.push_back(e);
}

void Headers::Remove(std::string_view name) {
  if (Views(name)) {
    const std::string name_copy(name);
    return Remove(name_copy);
  }
  size_t removed_bytes = 0;
  std::erase_if(entries_, [&](const Entry& e) {
    if (!EqualsIgnoreCase(std::string_view(bytes_.data() + e.name_at, e.name_size), name)) {
      return false;
    }
    removed_bytes += e.name_size + e.value_size;
    return true;
  });
  unused_bytes_ += removed_bytes;
  if (entries_.empty()) {
    bytes_.clear();
    unused_bytes_ = 0;
  } else if (unused_bytes_ > kInitialBytes && unused_bytes_ * 2 > bytes_.size()) {
    Compact();
  }
}

void Headers::Compact() {
  std::string bytes;
  bytes.reserve(bytes_.size() - unused_bytes_);
  for (Entry& e : entries_) {
    const uint32_t name_at = static_cast<uint32_t>(bytes.size());
    bytes.append(bytes_, e.name_at, e.name_size);
    const uint32_t value_at = static_cast<uint32_t>(bytes.size());
    bytes.append(bytes_, e.value_at, e.value_size);
    e.name_at = name_at;
    e.value_at = value_at;
  }
  bytes_ = std::move(bytes);
  unused_bytes_ = 0;
}

}  // namespace atrium::http
