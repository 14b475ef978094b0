#include <gtest/gtest.h>
#include <unistd.h>

#include "atrium/core/env.h"
#include "atrium/core/testing.h"
#include "atrium/store/database.h"

namespace atrium::store {
namespace {

TEST(OpenDatabaseTest, SqliteUrlWithAbsolutePathCreatesTheFile) {
  atrium::testing::TempDir tmp;
  std::string path = tmp.path() + "/abs.db";
  auto db = OpenDatabase("sqlite://" + path);  // sqlite:///abs/path
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ((*db)->dialect(), Dialect::kSqlite);
  EXPECT_TRUE(Env::Default().FileExists(path));
}

TEST(OpenDatabaseTest, PlainPathAndRelativeUrlOpenSqlite) {
  atrium::testing::TempDir tmp;
  auto plain = OpenDatabase(tmp.path() + "/plain.db");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(Env::Default().FileExists(tmp.path() + "/plain.db"));

  char old_cwd[4096];
  ASSERT_NE(::getcwd(old_cwd, sizeof(old_cwd)), nullptr);
  ASSERT_EQ(::chdir(tmp.path().c_str()), 0);
  auto relative = OpenDatabase("sqlite://relative.db");
  bool created = Env::Default().FileExists(tmp.path() + "/relative.db");
  ASSERT_EQ(::chdir(old_cwd), 0);
  ASSERT_TRUE(relative.ok()) << relative.status().ToString();
  EXPECT_TRUE(created);
}

TEST(OpenDatabaseTest, UnknownSchemeIsInvalidArgument) {
  EXPECT_EQ(OpenDatabase("mysql://localhost/db").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenDatabase("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenDatabase("sqlite://").status().code(), StatusCode::kInvalidArgument);
}

TEST(OpenDatabaseTest, UnreachablePostgresIsUnavailable) {
  auto db = OpenDatabase("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
  EXPECT_EQ(db.status().code(), StatusCode::kUnavailable) << db.status().ToString();
}

TEST(OpenDatabaseTest, UnopenableSqliteFileIsAnError) {
  auto db = OpenDatabase("sqlite:///nonexistent-dir-for-atrium/x/y.db");
  EXPECT_FALSE(db.ok());
}

}  // namespace
}  // namespace atrium::store
