// The run-search filter language (docs/track.md, "Run search"): a hand-written recursive-descent
// parser into an AST, and a compiler from the AST to a parameterised SQL condition. Values never
// reach the SQL text: every literal becomes a bound argument.
//
//   params.lr > 0.001 and metrics.loss < 0.5 and tags.dataset = 'imagenet' or status = 'failed'
//
// Errors are InvalidArgument with the message "filter: <what> at position <n>" (0-based byte
// offset into the input). Pure functions; thread-safe. Depends on nothing but core, so the fuzz
// target can compile it alone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::track {

enum class FilterField { kParam, kMetric, kTag, kAttribute };

// A field reference: `params.<key>` / `config.<key>`, `metrics.<key>`, `tags.<key>`, or an
// attribute (`status`, `start_time`, ...; see docs/track.md).
struct FilterIdent {
  FilterField field = FilterField::kAttribute;
  std::string name;  // the key (backticks removed) or the attribute name, lower case
  size_t position = 0;
};

struct FilterLiteral {
  bool is_number = false;
  double number = 0;
  std::string text;  // the string's content, or the number as written
  size_t position = 0;
};

struct FilterNode {
  enum class Kind { kAnd, kOr, kNot, kCompare, kIn, kLike };
  Kind kind = Kind::kCompare;
  std::vector<std::unique_ptr<FilterNode>> children;  // kAnd, kOr (≥ 2), kNot (1)
  FilterIdent ident;                                  // kCompare, kIn, kLike
  std::string op;                                     // kCompare: "=", "!=", "<", "<=", ">", ">="
  bool negated = false;                               // kIn / kLike: "not in", "not like"
  std::vector<FilterLiteral> values;                  // kCompare, kLike: 1; kIn: ≥ 1
  size_t position = 0;
};

// Parses `text`. An empty (or all-blank) filter yields a null node, which matches every run.
Result<std::unique_ptr<FilterNode>> ParseFilter(std::string_view text);

struct OrderTerm {
  FilterIdent ident;
  bool descending = false;
};
// Parses one "<ident> [asc|desc]" term (errors say "order_by: ... at position n").
Result<OrderTerm> ParseOrderTerm(std::string_view text);

// A compiled condition: SQL text with `?` placeholders and the arguments in order.
using SqlArg = std::variant<int64_t, double, std::string>;
struct SqlCondition {
  std::string sql;
  std::vector<SqlArg> args;
};

// Looks up the integer id of a param/metric key; nullopt when no run ever had it.
using KeyIdLookup = std::function<std::optional<int64_t>(const std::string&)>;

// The SQL column of an attribute for `run_alias` (e.g. "r.status"), whether it holds text, and
// whether it is a time (micros) compared with milliseconds. Nullopt for unknown attributes.
struct AttributeColumn {
  std::string column;  // without alias
  bool is_text = true;
  bool is_time = false;
};
std::optional<AttributeColumn> LookupAttribute(std::string_view name);

// Compiles `node` into a condition over the runs table aliased `run_alias`, using the tables
// track_params (run_id, key_id, num, txt), track_summary (run_id, key_id, last_value) and
// track_tags (run_id, key, value). Type errors (a string compared with a metric, an unknown
// attribute) are InvalidArgument with the position.
Result<SqlCondition> CompileFilter(const FilterNode& node, const KeyIdLookup& key_ids,
                                   std::string_view run_alias = "r");

}  // namespace atrium::track
