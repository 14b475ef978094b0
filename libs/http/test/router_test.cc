#include "atrium/http/router.h"

#include <gtest/gtest.h>

namespace atrium::http {
namespace {

SyncHandler Named(std::string name) {
  return [name](Request&) { return Response::Text(200, name); };
}

Router MakeRouter() {
  Router r;
  EXPECT_TRUE(r.Add("GET", "/api/v1/runs/{id}", Named("run")).ok());
  EXPECT_TRUE(r.Add("GET", "/api/v1/runs/search", Named("search")).ok());
  EXPECT_TRUE(r.Add("POST", "/api/v1/runs/{id}/metrics", Named("metrics")).ok());
  EXPECT_TRUE(r.Add("DELETE", "/api/v1/runs/{id}", Named("delete")).ok());
  EXPECT_TRUE(r.Add("GET", "/files/{path...}", Named("files")).ok());
  EXPECT_TRUE(r.Add("GET", "/", Named("root")).ok());
  return r;
}

std::string Param(const RouteMatch& m, const std::string& name) {
  for (const auto& [k, v] : m.params) {
    if (k == name) return v;
  }
  return "<none>";
}

TEST(RouterTest, LiteralBeatsParameter) {
  Router r = MakeRouter();
  auto m = r.Match("GET", "/api/v1/runs/search");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route->pattern, "/api/v1/runs/search");
  auto p = r.Match("GET", "/api/v1/runs/42");
  ASSERT_EQ(p.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(p.route->pattern, "/api/v1/runs/{id}");
  EXPECT_EQ(Param(p, "id"), "42");
}

TEST(RouterTest, ParameterIsUsedWhenLiteralBranchHasNoSuchMethod) {
  Router r = MakeRouter();
  auto m = r.Match("DELETE", "/api/v1/runs/search");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(Param(m, "id"), "search");
}

TEST(RouterTest, NestedParameters) {
  Router r = MakeRouter();
  auto m = r.Match("POST", "/api/v1/runs/abc/metrics");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(Param(m, "id"), "abc");
}

TEST(RouterTest, UnknownPathIsNotFound) {
  Router r = MakeRouter();
  EXPECT_EQ(r.Match("GET", "/api/v2/runs").kind, RouteMatch::Kind::kNotFound);
  EXPECT_EQ(r.Match("GET", "/api/v1/runs/1/metrics/x").kind, RouteMatch::Kind::kNotFound);
}

TEST(RouterTest, WrongMethodListsAllowed) {
  Router r = MakeRouter();
  auto m = r.Match("PUT", "/api/v1/runs/7");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kMethodNotAllowed);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"DELETE", "GET", "HEAD"}));
}

TEST(RouterTest, HeadFallsBackToGet) {
  Router r = MakeRouter();
  auto m = r.Match("HEAD", "/api/v1/runs/7");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route->method, "GET");
}

TEST(RouterTest, RestParameterTakesTheRemainder) {
  Router r = MakeRouter();
  auto m = r.Match("GET", "/files/a/b/c%20d.txt");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(Param(m, "path"), "a/b/c d.txt");
  auto empty = r.Match("GET", "/files");
  ASSERT_EQ(empty.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(Param(empty, "path"), "");
}

TEST(RouterTest, RootMatches) {
  Router r = MakeRouter();
  EXPECT_EQ(r.Match("GET", "/").kind, RouteMatch::Kind::kFound);
}

TEST(RouterTest, EmptySegmentDoesNotMatchParameter) {
  Router r = MakeRouter();
  EXPECT_NE(r.Match("GET", "/api/v1/runs/").kind, RouteMatch::Kind::kFound);
}

TEST(RouterTest, MalformedTemplatesAreRejected) {
  Router r;
  EXPECT_FALSE(r.Add("GET", "no-slash", Named("x")).ok());
  EXPECT_FALSE(r.Add("GET", "/a/{rest...}/b", Named("x")).ok());
  EXPECT_FALSE(r.Add("GET", "/a/{bad-name}", Named("x")).ok());
  EXPECT_FALSE(r.Add("GET", "/a/x{y}", Named("x")).ok());
  ASSERT_TRUE(r.Add("GET", "/a/{id}", Named("x")).ok());
  EXPECT_EQ(r.Add("GET", "/a/{id}", Named("x")).code(), StatusCode::kConflict);
  EXPECT_FALSE(r.Add("GET", "/a/{other}/b", Named("x")).ok());
}

TEST(RouterTest, ListsRoutesInRegistrationOrder) {
  Router r = MakeRouter();
  auto routes = r.routes();
  ASSERT_EQ(routes.size(), 6u);
  EXPECT_EQ(routes[0]->pattern, "/api/v1/runs/{id}");
  EXPECT_EQ(routes[5]->pattern, "/");
}

TEST(PercentDecodeTest, DecodesAndKeepsInvalidEscapes) {
  EXPECT_EQ(PercentDecode("a%20b%zz%4"), "a b%zz%4");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
}

TEST(RequestTest, QueryParameters) {
  Request req;
  req.query = "a=1&b=two%20words&c&a=3&d=x+y";
  EXPECT_EQ(req.Query("a"), "1");
  EXPECT_EQ(req.Query("b"), "two words");
  EXPECT_EQ(req.Query("c"), "");
  EXPECT_EQ(req.Query("d"), "x y");
  EXPECT_FALSE(req.Query("z").has_value());
  EXPECT_EQ(req.QueryParams().size(), 5u);
}

}  // namespace
}  // namespace atrium::http
