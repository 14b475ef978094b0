#include "placeholders.h"

#include <gtest/gtest.h>

namespace atrium::store {
namespace {

std::string Rewrite(std::string_view sql) { return RewritePlaceholders(sql).sql; }

TEST(RewritePlaceholdersTest, NumbersPlaceholdersInOrder) {
  RewrittenSql r = RewritePlaceholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)");
  EXPECT_EQ(r.sql, "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)");
  EXPECT_EQ(r.placeholders, 3);
}

TEST(RewritePlaceholdersTest, LeavesQuestionMarksInStringLiteralsAlone) {
  EXPECT_EQ(Rewrite("SELECT 'a?b', ? , 'it''s ?'"), "SELECT 'a?b', $1 , 'it''s ?'");
}

TEST(RewritePlaceholdersTest, HandlesBackslashEscapesInEStrings) {
  EXPECT_EQ(Rewrite(R"(SELECT E'\'?', ?)"), R"(SELECT E'\'?', $1)");
  // Outside E'' strings a backslash is an ordinary character.
  EXPECT_EQ(Rewrite(R"(SELECT '\', ?)"), R"(SELECT '\', $1)");
}

TEST(RewritePlaceholdersTest, LeavesQuotedIdentifiersAlone) {
  EXPECT_EQ(Rewrite(R"(SELECT "wh?""at" FROM t WHERE x = ?)"),
            R"(SELECT "wh?""at" FROM t WHERE x = $1)");
}

TEST(RewritePlaceholdersTest, LeavesDollarQuotedStringsAlone) {
  EXPECT_EQ(Rewrite("SELECT $$?$$, $tag$ ? $$ ? $tag$, ?"), "SELECT $$?$$, $tag$ ? $$ ? $tag$, $1");
}

TEST(RewritePlaceholdersTest, LeavesCommentsAlone) {
  EXPECT_EQ(Rewrite("SELECT ? -- why?\n, ? /* what? /* nested? */ still? */ , ?"),
            "SELECT $1 -- why?\n, $2 /* what? /* nested? */ still? */ , $3");
}

TEST(RewritePlaceholdersTest, LeavesPositionalParametersAndDollarIdentifiersAlone) {
  EXPECT_EQ(Rewrite("SELECT a$b, $1, ?"), "SELECT a$b, $1, $1");
}

TEST(RewritePlaceholdersTest, UnterminatedStringIsCopiedVerbatim) {
  RewrittenSql r = RewritePlaceholders("SELECT ?, 'oops ?");
  EXPECT_EQ(r.sql, "SELECT $1, 'oops ?");
  EXPECT_EQ(r.placeholders, 1);
}

}  // namespace
}  // namespace atrium::store
