// Subscription filters and topic patterns. Filters look at a record's key and headers only, never
// at its payload. Immutable and cheap to copy (a shared tree); thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "atrium/bus/record.h"

namespace atrium::bus {

class Filter {
 public:
  // Matches every record.
  Filter();
  static Filter All() { return Filter(); }
  static Filter KeyPrefix(std::string prefix);
  static Filter HeaderEquals(std::string name, std::string value);
  static Filter And(Filter a, Filter b);
  static Filter Or(Filter a, Filter b);
  static Filter Not(Filter a);

  bool Matches(const Record& record) const;

  struct Node;

 private:
  explicit Filter(std::shared_ptr<const Node> node) : node_(std::move(node)) {}
  std::shared_ptr<const Node> node_;  // null: matches all
};

// Topic names are dot-separated tokens of [A-Za-z0-9_-]. Patterns use the same tokens plus `*`
// (exactly one token) and a final `>` (one or more tokens): `chat.*` matches `chat.message` but
// not `chat.message.created`; `chat.>` matches both.
bool IsValidTopicName(std::string_view name);
bool IsValidTopicPattern(std::string_view pattern);
bool TopicMatches(std::string_view pattern, std::string_view topic);

}  // namespace atrium::bus
