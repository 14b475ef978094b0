// Headers: an ordered list of HTTP header fields with case-insensitive lookup.
//
// Used by both the server (requests and responses) and the client. Keeps Beast out of the
// headers that services include. Thread-compatible.
#pragma once

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
  using Field = std::pair<std::string, std::string>;

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

  const std::vector<Field>& fields() const { return fields_; }
  bool empty() const { return fields_.empty(); }
  size_t size() const { return fields_.size(); }

 private:
  std::vector<Field> fields_;
};

}  // namespace atrium::http
