#include "atrium/http/headers.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace atrium::http {
namespace {

std::vector<std::pair<std::string, std::string>> Copy(const Headers& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : h.fields()) out.emplace_back(name, value);
  return out;
}

TEST(HeadersTest, KeepsOrderAndFindsNamesInAnyCase) {
  Headers h;
  EXPECT_TRUE(h.empty());
  h.Add("Content-Type", "application/json");
  h.Add("Set-Cookie", "a=1");
  h.Add("set-cookie", "b=2");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.Get("content-type"), "application/json");
  EXPECT_EQ(h.Get("SET-COOKIE"), "a=1");  // the first
  EXPECT_EQ(h.GetOr("x-missing", "fallback"), "fallback");
  EXPECT_FALSE(h.Has("x-missing"));
  EXPECT_EQ(
      Copy(h),
      (std::vector<std::pair<std::string, std::string>>{
          {"Content-Type", "application/json"}, {"Set-Cookie", "a=1"}, {"set-cookie", "b=2"}}));
}

TEST(HeadersTest, SetReplacesEveryFieldOfTheNameAndRemoveDropsThem) {
  Headers h;
  h.Add("Vary", "Accept");
  h.Add("X-Other", "1");
  h.Add("vary", "Origin");
  h.Set("VARY", "Cookie");
  EXPECT_EQ(Copy(h), (std::vector<std::pair<std::string, std::string>>{{"X-Other", "1"},
                                                                       {"VARY", "Cookie"}}));
  h.Remove("x-other");
  EXPECT_EQ(h.size(), 1u);
  h.Remove("vary");
  EXPECT_TRUE(h.empty());
  h.Add("A", "b");  // usable after it emptied
  EXPECT_EQ(h.Get("a"), "b");
}

TEST(HeadersTest, EmptyNamesAndValuesAndLongOnes) {
  Headers h;
  std::string long_value(100'000, 'v');
  h.Add("Empty", "");
  h.Add("Long", long_value);
  EXPECT_EQ(h.Get("empty"), "");
  EXPECT_TRUE(h.Has("empty"));
  EXPECT_EQ(h.Get("long"), long_value);
}

TEST(HeadersTest, ArgumentsThatViewItsOwnBytesAreCopiedBeforeItGrows) {
  Headers h;
  h.Add("Source", std::string(300, 's'));
  for (int i = 0; i < 50; ++i) {
    // Each Set reads the value it copies from the object it writes to.
    h.Set("Copy-" + std::to_string(i), *h.Get("Source"));
    h.Add(*h.Get("Source"), "name from own bytes");
  }
  EXPECT_EQ(h.size(), 101u);
  EXPECT_EQ(h.Get("copy-49"), std::string(300, 's'));
  EXPECT_EQ(h.Get(std::string(300, 's')), "name from own bytes");
  // Removing by a name viewed from the object itself, while removals compact its bytes.
  for (int i = 0; i < 50; ++i) {
    for (const auto& [name, value] : h.fields()) {
      if (!name.starts_with("Copy-")) continue;
      h.Remove(name);  // the view dies in the call: iteration stops here
      break;
    }
  }
  EXPECT_EQ(h.size(), 51u);
  EXPECT_FALSE(h.Has("copy-0"));
  EXPECT_EQ(h.Get("source"), std::string(300, 's'));
}

TEST(HeadersTest, RepeatedSetsOfOneNameDoNotGrowWithoutBound) {
  Headers h;
  h.Add("Keep", "me");
  for (int i = 0; i < 10'000; ++i) h.Set("Counter", std::string(100, 'a' + i % 26));
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.Get("keep"), "me");
  EXPECT_EQ(h.Get("counter"), std::string(100, 'a' + 9'999 % 26));
  // Compaction kept the fields readable; a copy is independent of the original.
  Headers copy = h;
  h.Set("Keep", "changed");
  EXPECT_EQ(copy.Get("keep"), "me");
  EXPECT_EQ(h.Get("keep"), "changed");
}

}  // namespace
}  // namespace atrium::http
