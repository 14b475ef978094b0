// Rewriting of `?` placeholders to PostgreSQL's `$1..$n` (private to libs/store).
#pragma once

#include <string>
#include <string_view>

namespace atrium::store {

struct RewrittenSql {
  std::string sql;
  int placeholders = 0;  // how many `?` were replaced
};

// Replaces each `?` outside single-quoted strings (including E'' strings with backslash
// escapes), double-quoted identifiers, dollar-quoted strings and comments with $1, $2, ...
// Unterminated quotes or comments leave the rest of the text unchanged (the server reports the
// syntax error).
RewrittenSql RewritePlaceholders(std::string_view sql);

}  // namespace atrium::store
