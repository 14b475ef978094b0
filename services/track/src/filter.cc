// The filter language: lexer, recursive-descent parser and SQL compiler (see filter.h).
#include "atrium/track/filter.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace atrium::track {
namespace {

constexpr size_t kMaxFilterBytes = 16 * 1024;
constexpr int kMaxDepth = 64;
constexpr size_t kMaxInValues = 1000;

Status ErrorAt(std::string_view prefix, std::string_view what, size_t pos) {
  return InvalidArgument(std::string(prefix) + ": " + std::string(what) + " at position " +
                         std::to_string(pos));
}

enum class Tok { kEnd, kIdent, kString, kNumber, kOp, kLParen, kRParen, kComma };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // ident: raw text; string: content; number: as written; op: normalised
  size_t pos = 0;
};

bool IsIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '`';
}
bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '/' ||
         c == '-' || c == '`';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view text, std::string_view prefix) : s_(text), prefix_(prefix) {}

  Result<Token> Next() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    Token t;
    t.pos = i_;
    if (i_ >= s_.size()) return t;
    char c = s_[i_];
    if (c == '(') return Single(Tok::kLParen);
    if (c == ')') return Single(Tok::kRParen);
    if (c == ',') return Single(Tok::kComma);
    if (c == '\'' || c == '"') return String(c);
    if (c == '=' || c == '!' || c == '<' || c == '>') return Op();
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
      return Number();
    }
    if (IsIdentStart(c)) return Ident();
    return ErrorAt(prefix_, std::string("unexpected character '") + c + "'", i_);
  }

 private:
  Token Single(Tok kind) {
    Token t{kind, std::string(1, s_[i_]), i_};
    ++i_;
    return t;
  }

  Result<Token> String(char quote) {
    Token t{Tok::kString, "", i_};
    ++i_;
    while (true) {
      if (i_ >= s_.size()) return ErrorAt(prefix_, "unterminated string", t.pos);
      char c = s_[i_++];
      if (c == quote) {
        if (i_ < s_.size() && s_[i_] == quote) {
          t.text += quote;
          ++i_;
          continue;
        }
        return t;
      }
      t.text += c;
    }
  }

  Result<Token> Op() {
    Token t{Tok::kOp, "", i_};
    char c = s_[i_];
    char n = i_ + 1 < s_.size() ? s_[i_ + 1] : '\0';
    if (c == '=') {
      t.text = "=";
      i_ += n == '=' ? 2 : 1;
    } else if (c == '!') {
      if (n != '=') return ErrorAt(prefix_, "expected '!='", i_);
      t.text = "!=";
      i_ += 2;
    } else if (c == '<') {
      if (n == '=') {
        t.text = "<=";
        i_ += 2;
      } else if (n == '>') {
        t.text = "!=";
        i_ += 2;
      } else {
        t.text = "<";
        i_ += 1;
      }
    } else {
      t.text = n == '=' ? ">=" : ">";
      i_ += n == '=' ? 2 : 1;
    }
    return t;
  }

  Result<Token> Number() {
    Token t{Tok::kNumber, "", i_};
    size_t j = i_;
    if (s_[j] == '-' || s_[j] == '+') ++j;
    size_t digits_start = j;
    while (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j]))) ++j;
    if (j < s_.size() && s_[j] == '.') {
      ++j;
      while (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j]))) ++j;
    }
    bool has_digit = false;
    for (size_t k = digits_start; k < j; ++k) {
      if (std::isdigit(static_cast<unsigned char>(s_[k]))) has_digit = true;
    }
    if (!has_digit) return ErrorAt(prefix_, "invalid number", i_);
    if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      size_t k = j + 1;
      if (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) ++k;
      if (k >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[k]))) {
        return ErrorAt(prefix_, "invalid number exponent", j);
      }
      while (k < s_.size() && std::isdigit(static_cast<unsigned char>(s_[k]))) ++k;
      j = k;
    }
    if (j < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) {
      return ErrorAt(prefix_, "invalid number", i_);
    }
    t.text = std::string(s_.substr(i_, j - i_));
    i_ = j;
    return t;
  }

  Result<Token> Ident() {
    Token t{Tok::kIdent, "", i_};
    size_t j = i_;
    while (j < s_.size() && IsIdentChar(s_[j])) {
      if (s_[j] == '`') {
        size_t close = s_.find('`', j + 1);
        if (close == std::string_view::npos) {
          return ErrorAt(prefix_, "unterminated backtick quote", j);
        }
        j = close + 1;
      } else {
        ++j;
      }
    }
    t.text = std::string(s_.substr(i_, j - i_));
    i_ = j;
    return t;
  }

  std::string_view s_;
  std::string_view prefix_;
  size_t i_ = 0;
};

// Splits "params.a.`b c`" into field and key. Validates attributes.
Result<FilterIdent> MakeIdent(const Token& t, std::string_view prefix) {
  FilterIdent id;
  id.position = t.pos;
  const std::string& raw = t.text;
  size_t dot = raw.find('.');
  std::string head = Lower(raw.substr(0, dot));
  if (dot == std::string::npos) {
    if (head.find('`') != std::string::npos || !LookupAttribute(head)) {
      return ErrorAt(prefix, "unknown attribute '" + raw + "'", t.pos);
    }
    id.field = FilterField::kAttribute;
    id.name = head;
    return id;
  }
  if (head == "params" || head == "param" || head == "config") {
    id.field = FilterField::kParam;
  } else if (head == "metrics" || head == "metric") {
    id.field = FilterField::kMetric;
  } else if (head == "tags" || head == "tag") {
    id.field = FilterField::kTag;
  } else {
    return ErrorAt(prefix, "unknown field prefix '" + raw.substr(0, dot) + "'", t.pos);
  }
  std::string key;
  for (size_t k = dot + 1; k < raw.size(); ++k) {
    if (raw[k] != '`') key += raw[k];
  }
  if (key.empty()) return ErrorAt(prefix, "empty key after '" + head + ".'", t.pos);
  id.name = std::move(key);
  return id;
}

FilterLiteral MakeLiteral(const Token& t) {
  FilterLiteral lit;
  lit.position = t.pos;
  lit.text = t.text;
  if (t.kind == Tok::kNumber) {
    lit.is_number = true;
    lit.number = std::strtod(t.text.c_str(), nullptr);
  }
  return lit;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : lex_(text, "filter") {}

  Result<std::unique_ptr<FilterNode>> Parse() {
    RETURN_IF_ERROR(Advance());
    if (cur_.kind == Tok::kEnd) return std::unique_ptr<FilterNode>();
    ASSIGN_OR_RETURN(auto node, Or(0));
    if (cur_.kind != Tok::kEnd)
      return ErrorAt("filter", "unexpected '" + cur_.text + "'", cur_.pos);
    return node;
  }

 private:
  Status Advance() {
    ASSIGN_OR_RETURN(cur_, lex_.Next());
    return Status::Ok();
  }
  bool IsKeyword(std::string_view kw) const {
    return cur_.kind == Tok::kIdent && Lower(cur_.text) == kw;
  }

  Result<std::unique_ptr<FilterNode>> Or(int depth) {
    if (depth > kMaxDepth) return ErrorAt("filter", "nesting too deep", cur_.pos);
    size_t pos = cur_.pos;
    ASSIGN_OR_RETURN(auto first, And(depth));
    if (!IsKeyword("or")) return first;
    auto node = std::make_unique<FilterNode>();
    node->kind = FilterNode::Kind::kOr;
    node->position = pos;
    node->children.push_back(std::move(first));
    while (IsKeyword("or")) {
      RETURN_IF_ERROR(Advance());
      ASSIGN_OR_RETURN(auto next, And(depth));
      node->children.push_back(std::move(next));
    }
    return node;
  }

  Result<std::unique_ptr<FilterNode>> And(int depth) {
    size_t pos = cur_.pos;
    ASSIGN_OR_RETURN(auto first, Unary(depth));
    if (!IsKeyword("and")) return first;
    auto node = std::make_unique<FilterNode>();
    node->kind = FilterNode::Kind::kAnd;
    node->position = pos;
    node->children.push_back(std::move(first));
    while (IsKeyword("and")) {
      RETURN_IF_ERROR(Advance());
      ASSIGN_OR_RETURN(auto next, Unary(depth));
      node->children.push_back(std::move(next));
    }
    return node;
  }

  Result<std::unique_ptr<FilterNode>> Unary(int depth) {
    if (depth > kMaxDepth) return ErrorAt("filter", "nesting too deep", cur_.pos);
    if (IsKeyword("not")) {
      auto node = std::make_unique<FilterNode>();
      node->kind = FilterNode::Kind::kNot;
      node->position = cur_.pos;
      RETURN_IF_ERROR(Advance());
      ASSIGN_OR_RETURN(auto child, Unary(depth + 1));
      node->children.push_back(std::move(child));
      return node;
    }
    if (cur_.kind == Tok::kLParen) {
      RETURN_IF_ERROR(Advance());
      ASSIGN_OR_RETURN(auto inner, Or(depth + 1));
      if (cur_.kind != Tok::kRParen) return Expected("')'");
      RETURN_IF_ERROR(Advance());
      return inner;
    }
    return Comparison();
  }

  Status Expected(std::string_view what) {
    std::string got = cur_.kind == Tok::kEnd ? "end of filter" : "'" + cur_.text + "'";
    return ErrorAt("filter", "expected " + std::string(what) + " but found " + got, cur_.pos);
  }

  Result<FilterLiteral> Literal() {
    if (cur_.kind == Tok::kString || cur_.kind == Tok::kNumber) {
      FilterLiteral lit = MakeLiteral(cur_);
      RETURN_IF_ERROR(Advance());
      return lit;
    }
    if (IsKeyword("true") || IsKeyword("false")) {
      FilterLiteral lit;
      lit.position = cur_.pos;
      lit.text = Lower(cur_.text);
      RETURN_IF_ERROR(Advance());
      return lit;
    }
    return Expected("a string or number");
  }

  Result<std::unique_ptr<FilterNode>> Comparison() {
    if (cur_.kind != Tok::kIdent || IsKeyword("and") || IsKeyword("or") || IsKeyword("in") ||
        IsKeyword("like")) {
      return Expected("a field such as params.lr, metrics.loss, tags.x or status");
    }
    auto node = std::make_unique<FilterNode>();
    node->position = cur_.pos;
    ASSIGN_OR_RETURN(node->ident, MakeIdent(cur_, "filter"));
    RETURN_IF_ERROR(Advance());
    if (IsKeyword("not")) {
      node->negated = true;
      RETURN_IF_ERROR(Advance());
      if (!IsKeyword("in") && !IsKeyword("like")) return Expected("'in' or 'like' after 'not'");
    }
    if (IsKeyword("in")) {
      node->kind = FilterNode::Kind::kIn;
      RETURN_IF_ERROR(Advance());
      if (cur_.kind != Tok::kLParen) return Expected("'(' after 'in'");
      RETURN_IF_ERROR(Advance());
      while (true) {
        ASSIGN_OR_RETURN(auto lit, Literal());
        node->values.push_back(std::move(lit));
        if (node->values.size() > kMaxInValues) {
          return ErrorAt("filter", "too many values in 'in'", cur_.pos);
        }
        if (cur_.kind == Tok::kComma) {
          RETURN_IF_ERROR(Advance());
          continue;
        }
        if (cur_.kind == Tok::kRParen) break;
        return Expected("',' or ')'");
      }
      RETURN_IF_ERROR(Advance());
      return node;
    }
    if (IsKeyword("like")) {
      node->kind = FilterNode::Kind::kLike;
      RETURN_IF_ERROR(Advance());
      if (cur_.kind != Tok::kString) return Expected("a quoted pattern after 'like'");
      node->values.push_back(MakeLiteral(cur_));
      RETURN_IF_ERROR(Advance());
      return node;
    }
    if (cur_.kind != Tok::kOp) return Expected("an operator (=, !=, <, <=, >, >=, in, like)");
    node->kind = FilterNode::Kind::kCompare;
    node->op = cur_.text;
    RETURN_IF_ERROR(Advance());
    ASSIGN_OR_RETURN(auto lit, Literal());
    node->values.push_back(std::move(lit));
    return node;
  }

  Lexer lex_;
  Token cur_;
};

std::string SqlOp(const std::string& op) { return op == "!=" ? "<>" : op; }

class Compiler {
 public:
  Compiler(const KeyIdLookup& key_ids, std::string_view alias) : key_ids_(key_ids), alias_(alias) {}

  Status Compile(const FilterNode& n, SqlCondition& out) {
    switch (n.kind) {
      case FilterNode::Kind::kAnd:
      case FilterNode::Kind::kOr: {
        out.sql += "(";
        for (size_t i = 0; i < n.children.size(); ++i) {
          if (i > 0) out.sql += n.kind == FilterNode::Kind::kAnd ? " AND " : " OR ";
          RETURN_IF_ERROR(Compile(*n.children[i], out));
        }
        out.sql += ")";
        return Status::Ok();
      }
      case FilterNode::Kind::kNot:
        // CASE keeps NOT total: a condition that is NULL counts as false before negation.
        out.sql += "(CASE WHEN ";
        RETURN_IF_ERROR(Compile(*n.children[0], out));
        out.sql += " THEN 0 ELSE 1 END = 1)";
        return Status::Ok();
      default:
        return Leaf(n, out);
    }
  }

 private:
  // The value condition for `col_num` / `col_txt` (either may be empty when the column type
  // does not exist for this field) against the node's operator and literals.
  Result<std::string> ValueCondition(const FilterNode& n, const std::string& col_num,
                                     const std::string& col_txt, SqlCondition& out) {
    auto bind = [&](const FilterLiteral& lit, bool numeric) -> Status {
      if (numeric) {
        if (!lit.is_number) {
          if (lit.text == "true" || lit.text == "false") {
            out.args.emplace_back(lit.text == "true" ? 1.0 : 0.0);
            return Status::Ok();
          }
          return ErrorAt("filter", "expected a number", lit.position);
        }
        if (!std::isfinite(lit.number))
          return ErrorAt("filter", "number out of range", lit.position);
        out.args.emplace_back(lit.number);
      } else {
        out.args.emplace_back(lit.text);
      }
      return Status::Ok();
    };
    // Which column a literal compares with: numbers (and booleans, when a numeric column
    // exists) with the numeric column, strings with the text column.
    auto numeric_for = [&](const FilterLiteral& lit) -> Result<bool> {
      if (lit.is_number) {
        if (!col_num.empty()) return true;
        return false;  // compare the number as written with the text
      }
      if (col_txt.empty()) {
        return ErrorAt("filter", "this field compares with numbers, not strings", lit.position);
      }
      return false;
    };
    std::string sql;
    if (n.kind == FilterNode::Kind::kCompare) {
      ASSIGN_OR_RETURN(bool numeric, numeric_for(n.values[0]));
      sql = (numeric ? col_num : col_txt) + " " + SqlOp(n.op) + " ?";
      RETURN_IF_ERROR(bind(n.values[0], numeric));
      return sql;
    }
    if (n.kind == FilterNode::Kind::kLike) {
      if (col_txt.empty()) return ErrorAt("filter", "'like' needs a text field", n.position);
      RETURN_IF_ERROR(bind(n.values[0], false));
      return "LOWER(" + col_txt + ") LIKE LOWER(?)";
    }
    // kIn: an OR of equalities, split by type.
    std::string cond;
    for (const auto& lit : n.values) {
      ASSIGN_OR_RETURN(bool numeric, numeric_for(lit));
      if (!cond.empty()) cond += " OR ";
      cond += (numeric ? col_num : col_txt) + " = ?";
      RETURN_IF_ERROR(bind(lit, numeric));
    }
    return "(" + cond + ")";
  }

  // Wraps a value condition so that negated forms stay false for missing values.
  static std::string MaybeNegate(const FilterNode& n, const std::string& cond) {
    if (!n.negated) return cond;
    return "(CASE WHEN " + cond + " THEN 0 ELSE 1 END = 1)";
  }

  Status Leaf(const FilterNode& n, SqlCondition& out) {
    const FilterIdent& id = n.ident;
    const std::string run_id = alias_ + ".id";
    if (id.field == FilterField::kAttribute) {
      auto attr = LookupAttribute(id.name);
      if (!attr) return ErrorAt("filter", "unknown attribute '" + id.name + "'", id.position);
      std::string col = alias_ + "." + attr->column;
      if (attr->is_text) {
        // Attributes are never NULL for text columns; numbers compare as written.
        SqlCondition tmp;
        ASSIGN_OR_RETURN(auto cond, ValueCondition(n, "", col, tmp));
        out.sql += MaybeNegate(n, cond);
        Append(out, tmp);
        return Status::Ok();
      }
      if (n.kind == FilterNode::Kind::kLike) {
        return ErrorAt("filter", "'like' needs a text field", n.position);
      }
      SqlCondition tmp;
      ASSIGN_OR_RETURN(auto cond, ValueCondition(n, col, "", tmp));
      if (attr->is_time) {
        // Times are stored in micros; the language speaks milliseconds.
        for (auto& a : tmp.args) {
          if (auto* d = std::get_if<double>(&a)) *d *= 1000.0;
        }
      }
      out.sql += MaybeNegate(n, cond);
      Append(out, tmp);
      return Status::Ok();
    }
    if (id.field == FilterField::kTag) {
      SqlCondition tmp;
      ASSIGN_OR_RETURN(auto cond, ValueCondition(n, "", "t.value", tmp));
      out.sql += "EXISTS (SELECT 1 FROM track_tags t WHERE t.run_id = " + run_id +
                 " AND t.key = ? AND " + MaybeNegate(n, cond) + ")";
      out.args.emplace_back(id.name);
      Append(out, tmp);
      return Status::Ok();
    }
    std::optional<int64_t> key_id = key_ids_ ? key_ids_(id.name) : std::nullopt;
    const bool metric = id.field == FilterField::kMetric;
    SqlCondition tmp;
    std::string cond;
    if (metric) {
      ASSIGN_OR_RETURN(cond, ValueCondition(n, "s.last_value", "", tmp));
      out.sql += "EXISTS (SELECT 1 FROM track_summary s WHERE s.run_id = " + run_id +
                 " AND s.key_id = ? AND " + MaybeNegate(n, cond) + ")";
    } else {
      ASSIGN_OR_RETURN(cond, ValueCondition(n, "p.num", "p.txt", tmp));
      out.sql += "EXISTS (SELECT 1 FROM track_params p WHERE p.run_id = " + run_id +
                 " AND p.key_id = ? AND " + MaybeNegate(n, cond) + ")";
    }
    out.args.emplace_back(key_id.value_or(-1));  // -1: no run has the key; nothing matches
    Append(out, tmp);
    return Status::Ok();
  }

  static void Append(SqlCondition& out, SqlCondition& tmp) {
    for (auto& a : tmp.args) out.args.push_back(std::move(a));
  }

  const KeyIdLookup& key_ids_;
  std::string alias_;
};

}  // namespace

std::optional<AttributeColumn> LookupAttribute(std::string_view name) {
  struct Entry {
    std::string_view name;
    AttributeColumn col;
  };
  static const Entry kAttributes[] = {
      {"status", {"status", true, false}},
      {"name", {"name", true, false}},
      {"group", {"grp", true, false}},
      {"job_type", {"job_type", true, false}},
      {"notes", {"notes", true, false}},
      {"created_by", {"created_by", true, false}},
      {"user", {"created_by", true, false}},
      {"id", {"id", false, false}},
      {"sweep_id", {"sweep_id", false, false}},
      {"parent_id", {"parent_id", false, false}},
      {"start_time", {"start_time", false, true}},
      {"end_time", {"end_time", false, true}},
  };
  for (const auto& e : kAttributes) {
    if (e.name == name) return e.col;
  }
  return std::nullopt;
}

Result<std::unique_ptr<FilterNode>> ParseFilter(std::string_view text) {
  if (text.size() > kMaxFilterBytes) {
    return ErrorAt("filter", "too long (max " + std::to_string(kMaxFilterBytes) + " bytes)",
                   kMaxFilterBytes);
  }
  Parser parser(text);
  return parser.Parse();
}

Result<OrderTerm> ParseOrderTerm(std::string_view text) {
  Lexer lex(text, "order_by");
  ASSIGN_OR_RETURN(Token t, lex.Next());
  if (t.kind != Tok::kIdent) return ErrorAt("order_by", "expected a field", t.pos);
  OrderTerm term;
  ASSIGN_OR_RETURN(term.ident, MakeIdent(t, "order_by"));
  ASSIGN_OR_RETURN(Token dir, lex.Next());
  if (dir.kind == Tok::kIdent) {
    std::string d = Lower(dir.text);
    if (d == "desc") {
      term.descending = true;
    } else if (d != "asc") {
      return ErrorAt("order_by", "expected asc or desc", dir.pos);
    }
    ASSIGN_OR_RETURN(dir, lex.Next());
  }
  if (dir.kind != Tok::kEnd) return ErrorAt("order_by", "unexpected '" + dir.text + "'", dir.pos);
  return term;
}

Result<SqlCondition> CompileFilter(const FilterNode& node, const KeyIdLookup& key_ids,
                                   std::string_view run_alias) {
  SqlCondition out;
  Compiler compiler(key_ids, run_alias);
  RETURN_IF_ERROR(compiler.Compile(node, out));
  return out;
}

}  // namespace atrium::track
