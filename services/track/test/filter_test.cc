// The filter language as a data-driven table: input → compiled SQL and arguments, or the error
// with its position.
#include <gtest/gtest.h>

#include "atrium/track/filter.h"

namespace atrium::track {
namespace {

struct Case {
  const char* filter;
  const char* sql;            // expected SQL, or nullptr for an error
  const char* args_or_error;  // "|"-joined args, or the expected error message
};

std::string Args(const std::vector<SqlArg>& args) {
  std::string out;
  for (const auto& a : args) {
    if (!out.empty()) out += "|";
    if (const auto* i = std::get_if<int64_t>(&a)) {
      out += "i" + std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&a)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "d%g", *d);
      out += buf;
    } else {
      out += "s" + std::get<std::string>(a);
    }
  }
  return out;
}

std::optional<int64_t> Keys(const std::string& key) {
  if (key == "lr") return 1;
  if (key == "loss") return 2;
  if (key == "opt.name") return 3;
  if (key == "a b") return 4;
  return std::nullopt;
}

#define P(cond) \
  "EXISTS (SELECT 1 FROM track_params p WHERE p.run_id = r.id AND p.key_id = ? AND " cond ")"
#define M(cond) \
  "EXISTS (SELECT 1 FROM track_summary s WHERE s.run_id = r.id AND s.key_id = ? AND " cond ")"
#define T(cond) \
  "EXISTS (SELECT 1 FROM track_tags t WHERE t.run_id = r.id AND t.key = ? AND " cond ")"

const Case kCases[] = {
    {"params.lr > 0.001", P("p.num > ?"), "i1|d0.001"},
    {"params.lr >= 1e-3", P("p.num >= ?"), "i1|d0.001"},
    {"config.lr = -2", P("p.num = ?"), "i1|d-2"},
    {"params.lr != 3", P("p.num <> ?"), "i1|d3"},
    {"params.lr <> 3", P("p.num <> ?"), "i1|d3"},
    {"params.lr == 3", P("p.num = ?"), "i1|d3"},
    {"params.opt.name = 'adam'", P("p.txt = ?"), "i3|sadam"},
    {"params.opt.name = \"it''s\"", P("p.txt = ?"), "i3|sit''s"},
    {"params.opt.name = 'it''s'", P("p.txt = ?"), "i3|sit's"},
    {"params.`a b` = true", P("p.txt = ?"), "i4|strue"},
    {"params.unknown = 1", P("p.num = ?"), "i-1|d1"},
    {"metrics.loss < 0.5", M("s.last_value < ?"), "i2|d0.5"},
    {"tags.dataset = 'imagenet'", T("t.value = ?"), "sdataset|simagenet"},
    {"tags.n = 5", T("t.value = ?"), "sn|s5"},
    {"status = 'failed'", "r.status = ?", "sfailed"},
    {"STATUS = 'failed'", "r.status = ?", "sfailed"},
    {"group = 'g'", "r.grp = ?", "sg"},
    {"start_time > 1000", "r.start_time > ?", "d1e+06"},
    {"id = 7", "r.id = ?", "d7"},
    {"name like 'res%'", "LOWER(r.name) LIKE LOWER(?)", "sres%"},
    {"name not like 'x'", "(CASE WHEN LOWER(r.name) LIKE LOWER(?) THEN 0 ELSE 1 END = 1)", "sx"},
    {"status in ('failed', 'crashed')", "(r.status = ? OR r.status = ?)", "sfailed|scrashed"},
    {"status not in ('failed')", "(CASE WHEN (r.status = ?) THEN 0 ELSE 1 END = 1)", "sfailed"},
    {"params.lr in (1, 'x')", P("(p.num = ? OR p.txt = ?)"), "i1|d1|sx"},
    {"params.lr > 0.001 and metrics.loss < 0.5 and tags.dataset = 'imagenet' or status = 'failed'",
     "((" P("p.num > ?") " AND " M("s.last_value < ?") " AND " T(
         "t.value = ?") ") OR r.status = ?)",
     "i1|d0.001|i2|d0.5|sdataset|simagenet|sfailed"},
    {"status = 'a' or status = 'b' and name = 'c'",
     "(r.status = ? OR (r.status = ? AND r.name = ?))", "sa|sb|sc"},
    {"(status = 'a' or status = 'b') and name = 'c'",
     "((r.status = ? OR r.status = ?) AND r.name = ?)", "sa|sb|sc"},
    {"not status = 'a'", "(CASE WHEN r.status = ? THEN 0 ELSE 1 END = 1)", "sa"},
    {"  ", "", ""},
    // Errors, with positions.
    {"params.lr >", nullptr,
     "filter: expected a string or number but found end of filter at position 11"},
    {"params.lr 5", nullptr,
     "filter: expected an operator (=, !=, <, <=, >, >=, in, like) but found '5' at position 10"},
    {"bogus = 1", nullptr, "filter: unknown attribute 'bogus' at position 0"},
    {"foo.bar = 1", nullptr, "filter: unknown field prefix 'foo' at position 0"},
    {"params. = 1", nullptr, "filter: empty key after 'params.' at position 0"},
    {"status = 'open", nullptr, "filter: unterminated string at position 9"},
    {"status = 1 and", nullptr,
     "filter: expected a field such as params.lr, metrics.loss, tags.x or status but found end of "
     "filter at position 14"},
    {"(status = 'a'", nullptr, "filter: expected ')' but found end of filter at position 13"},
    {"status = 'a')", nullptr, "filter: unexpected ')' at position 12"},
    {"status = 'a' # x", nullptr, "filter: unexpected character '#' at position 13"},
    {"status in ()", nullptr, "filter: expected a string or number but found ')' at position 11"},
    {"status in ('a' 'b')", nullptr, "filter: expected ',' or ')' but found 'b' at position 15"},
    {"metrics.loss = 'x'", nullptr,
     "filter: this field compares with numbers, not strings at position 15"},
    {"metrics.loss like 'x'", nullptr, "filter: 'like' needs a text field at position 0"},
    {"params.lr = 1x", nullptr, "filter: invalid number at position 12"},
    {"params.lr = 1e", nullptr, "filter: invalid number exponent at position 13"},
    {"status ! 'a'", nullptr, "filter: expected '!=' at position 7"},
    {"params.`x = 1", nullptr, "filter: unterminated backtick quote at position 7"},
    {"status not = 'a'", nullptr,
     "filter: expected 'in' or 'like' after 'not' but found '=' at position 11"},
    {"id = 'abc'", nullptr, "filter: this field compares with numbers, not strings at position 5"},
};

TEST(FilterTest, Table) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.filter);
    auto parsed = ParseFilter(c.filter);
    Result<SqlCondition> compiled = InvalidArgument("not compiled");
    if (parsed.ok()) {
      if (*parsed == nullptr) {
        compiled = SqlCondition{};
      } else {
        compiled = CompileFilter(**parsed, Keys);
      }
    } else {
      compiled = parsed.status();
    }
    if (c.sql == nullptr) {
      ASSERT_FALSE(compiled.ok());
      EXPECT_EQ(compiled.status().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(compiled.status().message(), c.args_or_error);
    } else {
      ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
      EXPECT_EQ(compiled->sql, c.sql);
      EXPECT_EQ(Args(compiled->args), c.args_or_error);
    }
  }
}

TEST(FilterTest, DeepNestingIsRejectedNotCrashing) {
  std::string f(10000, '(');
  auto r = ParseFilter(f);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nesting too deep"), std::string::npos);
  std::string n;
  for (int i = 0; i < 5000; ++i) n += "not ";
  n += "status = 'a'";
  EXPECT_FALSE(ParseFilter(n).ok());
}

TEST(FilterTest, OrderTerms) {
  auto t = ParseOrderTerm("metrics.loss DESC");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ident.field, FilterField::kMetric);
  EXPECT_EQ(t->ident.name, "loss");
  EXPECT_TRUE(t->descending);
  t = ParseOrderTerm("params.opt.name");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ident.name, "opt.name");
  EXPECT_FALSE(t->descending);
  EXPECT_EQ(ParseOrderTerm("start_time sideways").status().message(),
            "order_by: expected asc or desc at position 11");
  EXPECT_FALSE(ParseOrderTerm("nope").ok());
  EXPECT_FALSE(ParseOrderTerm("").ok());
}

}  // namespace
}  // namespace atrium::track
