#include "atrium/store/database.h"

#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "atrium/store/postgres_database.h"
#include "atrium/store/sqlite_database.h"

namespace atrium::store {
namespace {

const Value& NullValue() {
  static const Value kNull;  // immutable
  return kNull;
}

std::string FormatDouble(double d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", d);
  return buf;
}

}  // namespace

std::string Value::DebugString() const {
  switch (type()) {
    case ValueType::kNull:
      return "NULL";
    case ValueType::kInt:
      return std::to_string(int_value());
    case ValueType::kDouble:
      return FormatDouble(double_value());
    case ValueType::kText:
      return "'" + text_value() + "'";
    case ValueType::kBlob: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out = "x'";
      for (unsigned char c : blob_value()) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
      return out + "'";
    }
  }
  return "?";
}

const Value& Row::Get(size_t i) const {
  assert(i < values_.size() && "column index out of range");
  return i < values_.size() ? values_[i] : NullValue();
}

const Value& Row::Get(std::string_view column) const {
  for (size_t i = 0; i < columns_->size(); ++i) {
    if ((*columns_)[i] == column) return Get(i);
  }
  assert(false && "unknown column name");
  return NullValue();
}

int64_t Row::AsInt(const Value& v) {
  switch (v.type()) {
    case ValueType::kInt:
      return v.int_value();
    case ValueType::kDouble:
      return std::isfinite(v.double_value()) ? static_cast<int64_t>(v.double_value()) : 0;
    case ValueType::kText:
    case ValueType::kBlob: {
      const std::string& s = v.type() == ValueType::kText ? v.text_value() : v.blob_value();
      int64_t out = 0;
      std::from_chars(s.data(), s.data() + s.size(), out);
      return out;
    }
    case ValueType::kNull:
      return 0;
  }
  return 0;
}

double Row::AsDouble(const Value& v) {
  switch (v.type()) {
    case ValueType::kInt:
      return static_cast<double>(v.int_value());
    case ValueType::kDouble:
      return v.double_value();
    case ValueType::kText:
      return std::strtod(v.text_value().c_str(), nullptr);
    case ValueType::kBlob:
    case ValueType::kNull:
      return 0;
  }
  return 0;
}

std::string Row::AsText(const Value& v) {
  switch (v.type()) {
    case ValueType::kInt:
      return std::to_string(v.int_value());
    case ValueType::kDouble:
      return FormatDouble(v.double_value());
    case ValueType::kText:
      return v.text_value();
    case ValueType::kBlob:
      return v.blob_value();
    case ValueType::kNull:
      return "";
  }
  return "";
}

std::string_view DialectName(Dialect d) { return d == Dialect::kSqlite ? "sqlite" : "postgres"; }

Result<std::unique_ptr<Database>> OpenDatabase(std::string_view url,
                                               const DatabaseOptions& options) {
  auto starts_with = [&](std::string_view p) { return url.substr(0, p.size()) == p; };
  if (starts_with("postgres://") || starts_with("postgresql://")) {
    return OpenPostgresDatabase(std::string(url), options);
  }
  if (url == "sqlite::memory:" || url == "sqlite://:memory:" || url == ":memory:") {
    return OpenSqliteDatabase(":memory:", options);
  }
  if (starts_with("sqlite://")) {
    // sqlite:///abs → "/abs"; sqlite://rel → "rel".
    std::string_view path = url.substr(std::string_view("sqlite://").size());
    if (path.empty()) return InvalidArgument("database URL has no path: " + std::string(url));
    return OpenSqliteDatabase(std::string(path), options);
  }
  if (starts_with("sqlite:")) {
    std::string_view path = url.substr(std::string_view("sqlite:").size());
    if (path.empty()) return InvalidArgument("database URL has no path: " + std::string(url));
    return OpenSqliteDatabase(std::string(path), options);
  }
  if (url.find("://") != std::string_view::npos) {
    return InvalidArgument("unsupported database URL scheme (want sqlite:// or postgres://): " +
                           std::string(url));
  }
  if (url.empty()) return InvalidArgument("empty database URL");
  return OpenSqliteDatabase(std::string(url), options);
}

}  // namespace atrium::store
