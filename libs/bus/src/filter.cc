#include "atrium/bus/filter.h"

#include <vector>

namespace atrium::bus {

struct Filter::Node {
  enum class Kind { kKeyPrefix, kHeaderEquals, kAnd, kOr, kNot } kind;
  std::string a, b;
  Filter left, right;
};

Filter::Filter() = default;

Filter Filter::KeyPrefix(std::string prefix) {
  return Filter(
      std::make_shared<const Node>(Node{Node::Kind::kKeyPrefix, std::move(prefix), {}, {}, {}}));
}
Filter Filter::HeaderEquals(std::string name, std::string value) {
  return Filter(std::make_shared<const Node>(
      Node{Node::Kind::kHeaderEquals, std::move(name), std::move(value), {}, {}}));
}
Filter Filter::And(Filter a, Filter b) {
  return Filter(
      std::make_shared<const Node>(Node{Node::Kind::kAnd, {}, {}, std::move(a), std::move(b)}));
}
Filter Filter::Or(Filter a, Filter b) {
  return Filter(
      std::make_shared<const Node>(Node{Node::Kind::kOr, {}, {}, std::move(a), std::move(b)}));
}
Filter Filter::Not(Filter a) {
  return Filter(std::make_shared<const Node>(Node{Node::Kind::kNot, {}, {}, std::move(a), {}}));
}

bool Filter::Matches(const Record& r) const {
  if (!node_) return true;
  switch (node_->kind) {
    case Node::Kind::kKeyPrefix:
      return std::string_view(r.key).starts_with(node_->a);
    case Node::Kind::kHeaderEquals: {
      const std::string* v = r.FindHeader(node_->a);
      return v != nullptr && *v == node_->b;
    }
    case Node::Kind::kAnd:
      return node_->left.Matches(r) && node_->right.Matches(r);
    case Node::Kind::kOr:
      return node_->left.Matches(r) || node_->right.Matches(r);
    case Node::Kind::kNot:
      return !node_->left.Matches(r);
  }
  return false;
}

namespace {

std::vector<std::string_view> Tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

bool IsPlainToken(std::string_view t) {
  if (t.empty()) return false;
  for (char c : t) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsValidTopicName(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (auto t : Tokens(name)) {
    if (!IsPlainToken(t)) return false;
  }
  return true;
}

bool IsValidTopicPattern(std::string_view pattern) {
  if (pattern.empty() || pattern.size() > 200) return false;
  auto tokens = Tokens(pattern);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "*") continue;
    if (tokens[i] == ">" && i + 1 == tokens.size()) continue;
    if (!IsPlainToken(tokens[i])) return false;
  }
  return true;
}

bool TopicMatches(std::string_view pattern, std::string_view topic) {
  auto p = Tokens(pattern);
  auto t = Tokens(topic);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return t.size() > i;
    if (i >= t.size()) return false;
    if (p[i] != "*" && p[i] != t[i]) return false;
  }
  return p.size() == t.size();
}

}  // namespace atrium::bus
