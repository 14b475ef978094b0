#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "atrium/track/sweep.h"

namespace atrium::track {
namespace {

SweepConfig Parse(const std::string& json) {
  auto c = ParseSweepConfig(json);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : SweepConfig{};
}

TEST(SweepTest, GridFollowsTheGridExactly) {
  auto c = Parse(R"({"method":"grid","parameters":{"a":{"values":[1,2]},
      "b":{"values":["x","y","z"]},"c":{"value":true}}})");
  EXPECT_EQ(GridSize(c), 6);
  std::vector<std::string> got;
  for (int i = 0; i < 6; ++i) {
    auto s = GridSuggestion(c, i);
    ASSERT_TRUE(s.has_value());
    ASSERT_EQ(s->size(), 3u);
    got.push_back((*s)[0].second + "," + (*s)[1].second + "," + (*s)[2].second);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"1,\"x\",true", "1,\"y\",true", "1,\"z\",true",
                                           "2,\"x\",true", "2,\"y\",true", "2,\"z\",true"}));
  EXPECT_FALSE(GridSuggestion(c, 6).has_value());
  auto ints =
      Parse(R"({"method":"grid","parameters":{"n":{"distribution":"int","min":2,"max":4}}})");
  EXPECT_EQ(GridSize(ints), 3);
  EXPECT_EQ((*GridSuggestion(ints, 2))[0].second, "4");
}

TEST(SweepTest, RandomStaysWithinBoundsAndIsSeeded) {
  auto c = Parse(R"({"method":"random","seed":7,"parameters":{
      "lr":{"distribution":"log_uniform","min":1e-5,"max":1e-1},
      "d":{"distribution":"uniform","min":0.1,"max":0.5},
      "n":{"distribution":"int","min":1,"max":8},
      "opt":{"distribution":"categorical","values":["adam","sgd"]}}})");
  std::set<std::string> opts;
  std::set<std::string> ns;
  double lr_min = 1, lr_max = 0;
  for (int i = 0; i < 500; ++i) {
    auto s = RandomSuggestion(c, i);
    double lr = std::stod(s[0].second), d = std::stod(s[1].second);
    EXPECT_GE(lr, 1e-5);
    EXPECT_LE(lr, 1e-1);
    EXPECT_GE(d, 0.1);
    EXPECT_LE(d, 0.5);
    int n = std::stoi(s[2].second);
    EXPECT_GE(n, 1);
    EXPECT_LE(n, 8);
    lr_min = std::min(lr_min, lr);
    lr_max = std::max(lr_max, lr);
    opts.insert(s[3].second);
    ns.insert(s[2].second);
  }
  EXPECT_EQ(opts.size(), 2u);
  EXPECT_EQ(ns.size(), 8u);
  EXPECT_LT(lr_min, 1e-4);  // log-uniform reaches the low decades
  EXPECT_GT(lr_max, 1e-2);
  EXPECT_EQ(RandomSuggestion(c, 3), RandomSuggestion(c, 3));
  EXPECT_NE(RandomSuggestion(c, 3), RandomSuggestion(c, 4));
}

// A toy objective with its optimum at x = 0.3, y = 0.7 (plus a categorical that matters).
double Objective(const Assignment& a) {
  double x = std::stod(a[0].second), y = std::stod(a[1].second);
  double penalty = a[2].second == "\"good\"" ? 0.0 : 0.05;
  return (x - 0.3) * (x - 0.3) + (y - 0.7) * (y - 0.7) + penalty;
}

TEST(SweepTest, TpeBeatsRandomOnASeededToyObjective) {
  double tpe_total = 0, random_total = 0;
  for (int seed = 1; seed <= 5; ++seed) {
    auto c = Parse(R"({"method":"bayes","seed":)" + std::to_string(seed) +
                   R"(,"metric":{"name":"loss","goal":"minimize"},"parameters":{
        "x":{"distribution":"uniform","min":0,"max":1},
        "y":{"distribution":"uniform","min":0,"max":1},
        "c":{"values":["bad","good","worse"]}}})");
    std::vector<Observation> history;
    double best_tpe = 1e9, best_random = 1e9;
    for (int i = 0; i < 60; ++i) {
      auto s = TpeSuggestion(c, i, history);
      double v = Objective(s);
      history.push_back({s, v});
      best_tpe = std::min(best_tpe, v);
      best_random = std::min(best_random, Objective(RandomSuggestion(c, i)));
    }
    tpe_total += best_tpe;
    random_total += best_random;
  }
  EXPECT_LT(tpe_total, random_total) << "tpe " << tpe_total << " random " << random_total;
}

TEST(SweepTest, Hyperband) {
  auto c = Parse(R"({"method":"random","metric":{"name":"loss"},"parameters":{"a":{"values":[1]}},
      "early_terminate":{"type":"hyperband","min_iter":2,"eta":3}})");
  EXPECT_FALSE(HyperbandRung(c, 1).has_value());
  EXPECT_EQ(*HyperbandRung(c, 2), 2);
  EXPECT_EQ(*HyperbandRung(c, 5), 2);
  EXPECT_EQ(*HyperbandRung(c, 6), 6);
  EXPECT_EQ(*HyperbandRung(c, 20), 18);
  // Six runs at a rung: the best ceil(6/3) = 2 continue (minimize).
  std::vector<double> all{0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  EXPECT_FALSE(HyperbandShouldStop(c, 0.1, all));
  EXPECT_FALSE(HyperbandShouldStop(c, 0.2, all));
  EXPECT_TRUE(HyperbandShouldStop(c, 0.3, all));
  EXPECT_FALSE(HyperbandShouldStop(c, 0.9, {0.9, 0.1}));  // too few to judge
}

TEST(SweepTest, InvalidConfigsNameTheField) {
  EXPECT_EQ(ParseSweepConfig(R"({"parameters":{}})").status().message(),
            "config.method is required");
  EXPECT_EQ(ParseSweepConfig(R"({"method":"grid","parameters":{"x":{"min":0,"max":1}}})")
                .status()
                .message(),
            "config.parameters.x: grid sweeps need values (or int), not continuous ranges");
  EXPECT_EQ(
      ParseSweepConfig(
          R"({"method":"random","parameters":{"x":{"distribution":"log_uniform","min":0,"max":1}}})")
          .status()
          .message(),
      "config.parameters.x.min must be positive for log_uniform");
  EXPECT_EQ(ParseSweepConfig(R"({"method":"bayes","parameters":{"x":{"values":[1]}}})")
                .status()
                .message(),
            "config.metric is required for bayes");
  EXPECT_FALSE(ParseSweepConfig("[]").ok());
}

}  // namespace
}  // namespace atrium::track
