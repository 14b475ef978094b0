// Headers: an ordered list of HTTP header fields with case-insensitive lookup.
//
// Used by both the server (requests and responses) and the client. Keeps Beast out of the
// headers that services include. Thread-compatible.
//
// The names and values live in one buffer, the fields in one array of offsets: building a set
// of N fields costs two allocations rather than up to 2N (a relayed request builds four sets).
// Views returned by Get() and fields() are valid until the next change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace atrium::http {

// ASCII case-insensitive equality (header names, tokens).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

class Headers {
 public:
  using Field = std::pair<std::string_view, std::string_view>;  // name, value

  // The fields in order, as (name, value) views.
  class Fields {
   public:
    class Iterator {
     public:
      using iterator_category = std::forward_iterator_tag;
      using value_type = Field;
      using difference_type = std::ptrdiff_t;
      using pointer = void;
      using reference = Field;

      Iterator() = default;
      Field operator*() const { return headers_->FieldAt(index_); }
      Iterator& operator++() {
        ++index_;
        return *this;
      }
      Iterator operator++(int) {
        Iterator before = *this;
        ++index_;
        return before;
      }
      bool operator==(const Iterator& other) const { return index_ == other.index_; }

     private:
      friend class Fields;
      Iterator(const Headers* headers, size_t index) : headers_(headers), index_(index) {}
      const Headers* headers_ = nullptr;
      size_t index_ = 0;
    };

    Iterator begin() const { return Iterator(headers_, 0); }
    Iterator end() const { return Iterator(headers_, headers_->size()); }
    size_t size() const { return headers_->size(); }

   private:
    friend class Headers;
    explicit Fields(const Headers* headers) : headers_(headers) {}
    const Headers* headers_;
  };

  // First value of `name`, or nullopt.
  std::optional<std::string_view> Get(std::string_view name) const;
  // First value of `name`, or `fallback`.
  std::string_view GetOr(std::string_view name, std::string_view fallback) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }
  // Replaces all fields named `name` with one field.
  void Set(std::string_view name, std::string_view value);
  // Appends a field (keeps existing ones: Set-Cookie, Vary...).
  void Add(std::string_view name, std::string_view value);
  void Remove(std::string_view name);

  Fields fields() const { return Fields(this); }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t name_at;
    uint32_t name_size;
    uint32_t value_at;
    uint32_t value_size;
  };

  Field FieldAt(size_t i) const {
    const Entry& e = entries_[i];
    return {std::string_view(bytes_.data() + e.name_at, e.name_size),
            std::string_view(bytes_.data() + e.value_at, e.value_size)};
  }
  // Whether `s` points into bytes_.
  bool Views(std::string_view s) const;
  // Copies the bytes of the live fields into a new buffer (after removals left enough unused).
  void Compact();

  std::string bytes_;           // names and values, back to back
  std::vector<Entry> entries_;  // the fields, in order
  size_t unused_bytes_ = 0;     // bytes of removed fields still in bytes_
};

}  // namespace atrium::http
