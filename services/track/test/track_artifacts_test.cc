// HTTP tests of run files, artifacts (dedup, aliases, finalize, external references), lineage,
// sweeps and the model registry, on SQLite and PostgreSQL.
#include <cmath>
#include <set>

#include "track_fixture.h"

namespace atrium::track::testing {
namespace {

class TrackArtifactsTest : public TrackHttpTest {
 protected:
  std::string PutBlob(const std::string& content) {
    Reply r = Send("PUT", "/api/v1/blobs", content, nullptr, "application/octet-stream");
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.Str("sha256");
  }
  static json::object File(const std::string& path, const std::string& sha) {
    return json::object{{"path", path}, {"sha256", sha}};
  }
};

TEST_P(TrackArtifactsTest, RunFilesUploadListDownload) {
  std::string run = CreateRun(CreateProject("files"));
  Reply r = Send("PUT", "/api/v1/runs/" + run + "/files/ckpt/model.bin",
                 std::string("\0\1\2abc", 6), nullptr, "application/octet-stream");
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body.at("size").as_int64(), 6);
  std::string sha = r.Str("sha256");
  EXPECT_EQ(sha.size(), 64u);
  Send("PUT", "/api/v1/runs/" + run + "/files/a.txt", "hello", nullptr, "text/plain");
  r = Get("/api/v1/runs/" + run + "/files");
  ASSERT_EQ(r.status, 200);
  const auto& files = r.body.at("files").as_array();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].at("path").as_string(), "a.txt");
  EXPECT_EQ(files[1].at("sha256").as_string(), sha);
  r = Get("/api/v1/runs/" + run + "/files/ckpt/model.bin");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.raw, std::string("\0\1\2abc", 6));
  // Replacing a path.
  Send("PUT", "/api/v1/runs/" + run + "/files/a.txt", "bye", nullptr, "text/plain");
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/files/a.txt").raw, "bye");
  EXPECT_EQ(Send("PUT", "/api/v1/runs/" + run + "/files/a//b", "x", nullptr, "text/plain").status,
            400);
  EXPECT_EQ(Send("DELETE", "/api/v1/runs/" + run + "/files/a.txt").status, 204);
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/files/a.txt").status, 404);
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/files/ckpt/model.bin", &bob_).status, 404);
  // Blobs are per workspace.
  EXPECT_EQ(Get("/api/v1/blobs/" + sha).status, 200);
  EXPECT_EQ(Get("/api/v1/blobs/" + sha, &bob_).status, 404);
}

TEST_P(TrackArtifactsTest, DedupAliasesFinalizeAndExternalReferences) {
  std::string project = CreateProject("arts");
  std::string a = PutBlob("train data"), b = PutBlob("labels"), c = PutBlob("labels v2");
  auto create = [&](json::array files, json::array aliases = {}, bool finalize = true) {
    return Post("/api/v1/artifacts", json::object{{"project_id", project},
                                                  {"name", "mnist"},
                                                  {"type", "dataset"},
                                                  {"files", std::move(files)},
                                                  {"aliases", std::move(aliases)},
                                                  {"finalize", finalize}});
  };
  Reply r = create({File("train.bin", a), File("labels.txt", b)}, {"production"});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_TRUE(r.body.at("created").as_bool());
  std::string artifact = std::string(r.body.at("artifact").at("id").as_string());
  std::string v0 = std::string(r.body.at("version").at("id").as_string());
  EXPECT_EQ(r.body.at("version").at("version").as_string(), "v0");
  EXPECT_EQ(r.body.at("version").at("size").as_int64(), 16);
  EXPECT_EQ(r.body.at("version").at("file_count").as_int64(), 2);
  // Same content in another order: no new version.
  r = create({File("labels.txt", b), File("train.bin", a)});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_FALSE(r.body.at("created").as_bool());
  EXPECT_EQ(r.body.at("version").at("id").as_string(), v0);
  // Changed content: v1, which becomes latest; production stays on v0.
  r = create({File("train.bin", a), File("labels.txt", c)});
  ASSERT_EQ(r.status, 201);
  std::string v1 = std::string(r.body.at("version").at("id").as_string());
  EXPECT_EQ(r.body.at("version").at("version").as_string(), "v1");
  r = Get("/api/v1/artifacts/" + artifact);
  EXPECT_EQ(r.body.at("aliases").at("latest").as_string(), "v1");
  EXPECT_EQ(r.body.at("aliases").at("production").as_string(), "v0");
  EXPECT_EQ(r.body.at("version_count").as_int64(), 2);
  // Aliases move.
  ASSERT_EQ(Send("PUT", "/api/v1/artifact-versions/" + v1 + "/aliases/production").status, 200);
  r = Get("/api/v1/artifacts/" + artifact);
  EXPECT_EQ(r.body.at("aliases").at("production").as_string(), "v1");
  EXPECT_EQ(Send("PUT", "/api/v1/artifact-versions/" + v0 + "/aliases/latest").status, 400);
  EXPECT_EQ(Send("PUT", "/api/v1/artifact-versions/" + v0 + "/aliases/v7").status, 400);
  // Resolution by name:alias and by version.
  r = Get("/api/v1/artifacts/resolve?project_id=" + project + "&ref=mnist:production");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("id"), v1);
  EXPECT_EQ(Get("/api/v1/artifacts/resolve?project_id=" + project + "&ref=mnist").Str("id"), v1);
  r = Get("/api/v1/artifacts/" + artifact + "/versions/v0");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.at("files").as_array().size(), 2u);
  EXPECT_EQ(Get("/api/v1/artifacts/" + artifact + "/versions/v9").status, 404);
  EXPECT_EQ(
      Get("/api/v1/artifacts/" + artifact + "/versions").body.at("versions").as_array().size(), 2u);
  EXPECT_EQ(Get("/api/v1/artifact-versions/" + v0 + "/files/train.bin").raw, "train data");
  EXPECT_EQ(Send("DELETE", "/api/v1/artifact-versions/" + v1 + "/aliases/production").status, 204);
  EXPECT_EQ(Get("/api/v1/artifacts/resolve?project_id=" + project + "&ref=mnist:production").status,
            404);
  // Bad input.
  r = create({File("x", std::string(64, 'a'))});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("files[0].sha256"), std::string::npos) << r.raw;
  EXPECT_EQ(Post("/api/v1/artifacts", json::object{{"project_id", project},
                                                   {"name", "mnist"},
                                                   {"type", "model"},
                                                   {"files", json::array()}})
                .status,
            409);
  // External references.
  r = create(
      {json::object{{"path", "s3/big.tar"}, {"url", "s3://bucket/big.tar"}, {"size", 1000}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string v2 = std::string(r.body.at("version").at("id").as_string());
  EXPECT_EQ(r.body.at("version").at("files").as_array()[0].at("url").as_string(),
            "s3://bucket/big.tar");
  EXPECT_EQ(Get("/api/v1/artifact-versions/" + v2 + "/files/s3/big.tar").status, 409);
  // Pending versions: add files, then finalize.
  r = create({File("train.bin", a)}, {}, false);
  ASSERT_EQ(r.status, 201);
  std::string pending = std::string(r.body.at("version").at("id").as_string());
  EXPECT_TRUE(r.body.at("version").at("version").is_null());
  EXPECT_EQ(r.body.at("version").at("state").as_string(), "pending");
  ASSERT_EQ(Post("/api/v1/artifact-versions/" + pending + "/files",
                 json::object{{"files", json::array{File("labels.txt", b)}}})
                .status,
            200);
  // Equal to v0 after adding: finalize returns v0 and drops the draft.
  r = Post("/api/v1/artifact-versions/" + pending + "/finalize", json::object{});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_FALSE(r.body.at("created").as_bool());
  EXPECT_EQ(r.Str("id"), v0);
  r = create({File("only.bin", c)}, {}, false);
  pending = std::string(r.body.at("version").at("id").as_string());
  r = Post("/api/v1/artifact-versions/" + pending + "/finalize", json::object{});
  EXPECT_TRUE(r.body.at("created").as_bool());
  EXPECT_EQ(r.Str("version"), "v3");
  EXPECT_EQ(Get("/api/v1/artifacts/" + artifact).body.at("latest_version").as_string(), "v3");
  // Other workspaces see nothing.
  EXPECT_EQ(Get("/api/v1/artifacts/" + artifact, &bob_).status, 404);
  EXPECT_EQ(Get("/api/v1/artifact-versions/" + v0 + "/files/train.bin", &bob_).status, 404);
  EXPECT_TRUE(Get("/api/v1/artifacts", &bob_).body.at("artifacts").as_array().empty());
}

TEST_P(TrackArtifactsTest, LineageUpstreamAndDownstream) {
  std::string project = CreateProject("lineage");
  std::string prep = CreateRun(project, json::object{{"name", "prep"}});
  std::string train = CreateRun(project, json::object{{"name", "train"}});
  std::string eval = CreateRun(project, json::object{{"name", "eval"}});
  std::string data = PutBlob("dataset"), weights = PutBlob("weights");
  Reply r = Post("/api/v1/artifacts", json::object{{"project_id", project},
                                                   {"name", "ds"},
                                                   {"type", "dataset"},
                                                   {"run_id", prep},
                                                   {"files", json::array{File("d", data)}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string ds = std::string(r.body.at("version").at("id").as_string());
  ASSERT_EQ(Post("/api/v1/runs/" + train + "/artifacts",
                 json::object{{"version_id", ds}, {"relation", "used"}})
                .status,
            200);
  r = Post("/api/v1/artifacts", json::object{{"project_id", project},
                                             {"name", "net"},
                                             {"type", "model"},
                                             {"run_id", train},
                                             {"files", json::array{File("w", weights)}}});
  std::string model = std::string(r.body.at("version").at("id").as_string());
  Post("/api/v1/runs/" + eval + "/artifacts", json::object{{"version_id", model}});

  auto ids = [](const Reply& r) {
    std::set<std::string> out;
    for (const auto& n : r.body.at("nodes").as_array())
      out.insert(std::string(n.at("id").as_string()));
    return out;
  };
  r = Get("/api/v1/lineage?version_id=" + model + "&direction=upstream");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(ids(r), (std::set<std::string>{"version:" + model, "run:" + train, "version:" + ds,
                                           "run:" + prep}));
  EXPECT_EQ(r.body.at("edges").as_array().size(), 3u);
  r = Get("/api/v1/lineage?version_id=" + ds + "&direction=downstream");
  EXPECT_EQ(ids(r), (std::set<std::string>{"version:" + ds, "run:" + train, "version:" + model,
                                           "run:" + eval}));
  bool found = false;
  for (const auto& e : r.body.at("edges").as_array()) {
    if (e.at("from").as_string() == "version:" + ds && e.at("to").as_string() == "run:" + train) {
      found = e.at("relation").as_string() == "used";
    }
  }
  EXPECT_TRUE(found);
  r = Get("/api/v1/lineage?run_id=" + train + "&depth=1");
  EXPECT_EQ(ids(r), (std::set<std::string>{"run:" + train, "version:" + ds, "version:" + model}));
  r = Get("/api/v1/runs/" + train + "/artifacts");
  EXPECT_EQ(r.body.at("used").as_array().size(), 1u);
  EXPECT_EQ(r.body.at("produced").as_array()[0].at("name").as_string(), "net");
  EXPECT_EQ(Get("/api/v1/lineage?version_id=" + ds, &bob_).status, 404);
  EXPECT_EQ(Get("/api/v1/lineage").status, 400);
}

TEST_P(TrackArtifactsTest, GridSweepFollowsTheGridAndPauses) {
  std::string project = CreateProject("sweeps");
  Reply r = Post(
      "/api/v1/sweeps",
      json::object{
          {"project_id", project},
          {"config",
           json::object{{"method", "grid"},
                        {"parameters",
                         json::object{{"lr", json::object{{"values", json::array{0.1, 0.01}}}},
                                      {"bs", json::object{{"values", json::array{16, 32}}}}}}}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string sweep = r.Str("id");
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    r = Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{});
    ASSERT_EQ(r.status, 200) << r.raw;
    ASSERT_FALSE(r.body.at("done").as_bool());
    got.push_back(json::serialize(r.body.at("params")));
    if (i == 1) {
      EXPECT_EQ(Post("/api/v1/sweeps/" + sweep + "/pause", json::object{}).Str("status"), "paused");
      EXPECT_EQ(Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{}).status, 409);
      EXPECT_EQ(Post("/api/v1/sweeps/" + sweep + "/resume", json::object{}).Str("status"),
                "running");
    }
  }
  EXPECT_EQ(got, (std::vector<std::string>{R"({"lr":1E-1,"bs":16})", R"({"lr":1E-1,"bs":32})",
                                           R"({"lr":1E-2,"bs":16})", R"({"lr":1E-2,"bs":32})"}));
  r = Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{});
  EXPECT_TRUE(r.body.at("done").as_bool());
  EXPECT_EQ(r.Str("reason"), "grid_exhausted");
  EXPECT_EQ(Post("/api/v1/sweeps",
                 json::object{
                     {"project_id", project},
                     {"config",
                      json::object{{"method", "grid"},
                                   {"parameters",
                                    json::object{{"x", json::object{{"min", 0}, {"max", 1}}}}}}}})
                .status,
            400);
  EXPECT_EQ(Get("/api/v1/sweeps/" + sweep, &bob_).status, 404);
}

TEST_P(TrackArtifactsTest, SweepRunCapStatsAndHyperband) {
  std::string project = CreateProject("sw2");
  Reply r = Post(
      "/api/v1/sweeps",
      json::object{{"project_id", project},
                   {"config",
                    json::object{{"method", "random"},
                                 {"run_cap", 4},
                                 {"seed", 3},
                                 {"metric", json::object{{"name", "loss"}, {"goal", "minimize"}}},
                                 {"early_terminate",
                                  json::object{{"type", "hyperband"}, {"min_iter", 1}, {"eta", 2}}},
                                 {"parameters",
                                  json::object{{"lr", json::object{{"distribution", "log_uniform"},
                                                                   {"min", 1e-4},
                                                                   {"max", 1e-1}}}}}}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string sweep = r.Str("id");
  std::vector<std::string> runs;
  for (int i = 0; i < 4; ++i) {
    r = Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{});
    ASSERT_FALSE(r.body.at("done").as_bool()) << r.raw;
    double lr = r.body.at("params").at("lr").to_number<double>();
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-1);
    std::string run = CreateRun(project, json::object{{"sweep_id", sweep},
                                                      {"suggestion_id", r.Str("suggestion_id")},
                                                      {"config", r.body.at("params")}});
    runs.push_back(run);
    json::array pts;
    for (int step = 0; step <= 2; ++step) {
      pts.push_back(json::object{{"key", "loss"}, {"step", step}, {"value", 1.0 + i - step * 0.1}});
    }
    ASSERT_EQ(LogPoints(run, pts).status, 200);
    Post("/api/v1/runs/" + run + "/finish", json::object{});
  }
  r = Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{});
  EXPECT_EQ(r.Str("reason"), "run_cap");
  r = Get("/api/v1/sweeps/" + sweep + "/stats");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("run_count").as_int64(), 4);
  EXPECT_EQ(r.body.at("best").at("run_id").as_string(), runs[0]);
  EXPECT_EQ(r.body.at("runs").as_array()[3].at("run_id").as_string(), runs[3]);
  EXPECT_EQ(r.body.at("by_status").at("finished").as_int64(), 4);
  // Hyperband at rung 2 (min_iter 1, eta 2): the best half continue.
  r = Post("/api/v1/sweeps/" + sweep + "/should-stop", json::object{{"run_id", runs[0]}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_FALSE(r.body.at("stop").as_bool());
  EXPECT_EQ(r.body.at("rung").as_int64(), 2);
  r = Post("/api/v1/sweeps/" + sweep + "/should-stop", json::object{{"run_id", runs[3]}});
  EXPECT_TRUE(r.body.at("stop").as_bool()) << r.raw;
  EXPECT_EQ(Get("/api/v1/sweeps?project_id=" + project).body.at("sweeps").as_array().size(), 1u);
}

TEST_P(TrackArtifactsTest, BayesSweepSuggestsAfterStartup) {
  std::string project = CreateProject("bayes");
  Reply r =
      Post("/api/v1/sweeps",
           json::object{
               {"project_id", project},
               {"config",
                json::object{
                    {"method", "bayes"},
                    {"n_startup", 3},
                    {"metric", json::object{{"name", "acc"}, {"goal", "maximize"}}},
                    {"parameters",
                     json::object{
                         {"x", json::object{{"distribution", "uniform"}, {"min", 0}, {"max", 1}}},
                         {"opt", json::object{{"values", json::array{"a", "b"}}}}}}}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string sweep = r.Str("id");
  for (int i = 0; i < 6; ++i) {
    r = Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{});
    ASSERT_EQ(r.status, 200) << r.raw;
    double x = r.body.at("params").at("x").to_number<double>();
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 1);
    std::string run =
        CreateRun(project, json::object{{"sweep_id", sweep}, {"config", r.body.at("params")}});
    LogPoints(run, json::array{json::object{
                       {"key", "acc"}, {"step", 0}, {"value", 1 - std::abs(x - 0.5)}}});
    Post("/api/v1/runs/" + run + "/finish", json::object{});
  }
}

TEST_P(TrackArtifactsTest, ModelRegistryStagesAndAliases) {
  std::string project = CreateProject("reg");
  std::string run = CreateRun(project);
  Reply r = Post("/api/v1/registry/models", json::object{{"name", "resnet"}, {"description", "d"}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(Post("/api/v1/registry/models", json::object{{"name", "resnet"}}).status, 409);
  EXPECT_EQ(Post("/api/v1/registry/models", json::object{{"name", "bad name"}}).status, 400);
  r = Post("/api/v1/registry/models/resnet/versions", json::object{{"run_id", run}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body.at("version").as_int64(), 1);
  EXPECT_EQ(r.Str("stage"), "none");
  EXPECT_EQ(r.Str("run_id"), run);
  r = Post("/api/v1/registry/models/resnet/versions", json::object{{"description", "second"}});
  EXPECT_EQ(r.body.at("version").as_int64(), 2);
  EXPECT_EQ(
      Post("/api/v1/registry/models/resnet/versions", json::object{{"run_id", "999999"}}).status,
      404);

  r = Post("/api/v1/registry/models/resnet/versions/1/stage",
           json::object{{"stage", "production"}, {"comment", "ship it"}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("stage"), "production");
  r = Post("/api/v1/registry/models/resnet/versions/2/stage",
           json::object{{"stage", "production"}, {"archive_existing", true}});
  ASSERT_EQ(r.status, 200);
  r = Get("/api/v1/registry/models/resnet/versions/1");
  EXPECT_EQ(r.Str("stage"), "archived");
  const auto& history = r.body.at("transitions").as_array();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].at("from").as_string(), "none");
  EXPECT_EQ(history[0].at("to").as_string(), "production");
  EXPECT_EQ(history[0].at("comment").as_string(), "ship it");
  EXPECT_EQ(history[0].at("actor").as_string(), alice_.user_id);
  EXPECT_EQ(history[1].at("to").as_string(), "archived");
  EXPECT_EQ(Post("/api/v1/registry/models/resnet/versions/2/stage", json::object{{"stage", "gold"}})
                .status,
            400);

  // Aliases move between versions.
  ASSERT_EQ(Send("PUT", "/api/v1/registry/models/resnet/aliases/champion",
                 json::serialize(json::object{{"version", 1}}))
                .status,
            200);
  ASSERT_EQ(Send("PUT", "/api/v1/registry/models/resnet/aliases/champion",
                 json::serialize(json::object{{"version", 2}}))
                .status,
            200);
  r = Get("/api/v1/registry/models/resnet/aliases/champion");
  EXPECT_EQ(r.body.at("version").as_int64(), 2);
  EXPECT_EQ(json::serialize(r.body.at("aliases")), R"(["champion"])");
  r = Get("/api/v1/registry/models/resnet");
  EXPECT_EQ(r.body.at("latest_version").as_int64(), 2);
  EXPECT_EQ(r.body.at("aliases").at("champion").as_int64(), 2);
  EXPECT_EQ(Send("PUT", "/api/v1/registry/models/resnet/aliases/champion",
                 json::serialize(json::object{{"version", 9}}))
                .status,
            404);
  EXPECT_EQ(Send("DELETE", "/api/v1/registry/models/resnet/aliases/champion").status, 204);
  EXPECT_EQ(Get("/api/v1/registry/models/resnet/aliases/champion").status, 404);
  EXPECT_EQ(Get("/api/v1/registry/models/resnet", &bob_).status, 404);
  EXPECT_EQ(Get("/api/v1/registry/models").body.at("models").as_array().size(), 1u);
  EXPECT_EQ(Send("DELETE", "/api/v1/registry/models/resnet").status, 204);
  EXPECT_EQ(Get("/api/v1/registry/models/resnet").status, 404);
}

TEST_P(TrackArtifactsTest, FinishedSweepSuggestsNothingAndCannotResume) {
  std::string project = CreateProject("fin");
  Reply r = Post(
      "/api/v1/sweeps",
      json::object{
          {"project_id", project},
          {"config",
           json::object{
               {"method", "random"},
               {"parameters", json::object{{"lr", json::object{{"min", 0.1}, {"max", 1.0}}}}}}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string sweep = "/api/v1/sweeps/" + r.Str("id");
  r = Post(sweep + "/suggest", json::object{});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_FALSE(r.body.at("done").as_bool());
  r = Post(sweep + "/finish", json::object{});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("status"), "finished");
  r = Post(sweep + "/suggest", json::object{});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.body.at("done").as_bool());
  EXPECT_EQ(r.Str("reason"), "finished");
  EXPECT_FALSE(r.body.as_object().contains("params"));
  EXPECT_EQ(Post(sweep + "/resume", json::object{}).status, 409);
  EXPECT_EQ(Post(sweep + "/pause", json::object{}).status, 409);
  EXPECT_EQ(Get(sweep).Str("status"), "finished");
  EXPECT_EQ(Get(sweep).body.at("suggestion_count").as_int64(), 1);
}

// The server's TPE reads the metric of the sweep's finished runs: after a few rounds its
// suggestions gather near the optimum, while the same sweep whose runs never finish (no
// observations: the bounds only) keeps drawing across the whole range.
TEST_P(TrackArtifactsTest, BayesSweepConcentratesNearTheOptimumOfFinishedRuns) {
  std::string project = CreateProject("tpe");
  auto create = [&] {
    Reply r =
        Post("/api/v1/sweeps",
             json::object{
                 {"project_id", project},
                 {"config",
                  json::object{
                      {"method", "bayes"},
                      {"n_startup", 5},
                      {"seed", 7},
                      {"metric", json::object{{"name", "val/loss"}, {"goal", "minimize"}}},
                      {"parameters", json::object{{"x", json::object{{"distribution", "uniform"},
                                                                     {"min", 0},
                                                                     {"max", 10}}}}}}}});
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.Str("id");
  };
  const std::string fed = create(), starved = create();
  constexpr double kOptimum = 7.3;
  // Suggests, runs the trial (loss = (x - 7.3)^2) and finishes it when `finish`; returns x.
  auto trial = [&](const std::string& sweep, bool finish) {
    Reply r = Post("/api/v1/sweeps/" + sweep + "/suggest", json::object{});
    EXPECT_EQ(r.status, 200) << r.raw;
    double x = r.body.at("params").at("x").to_number<double>();
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 10);
    std::string run = CreateRun(project, json::object{{"sweep_id", sweep},
                                                      {"suggestion_id", r.Str("suggestion_id")},
                                                      {"config", r.body.at("params")}});
    EXPECT_EQ(LogPoints(run, json::array{json::object{{"key", "val/loss"},
                                                      {"step", 0},
                                                      {"value", (x - kOptimum) * (x - kOptimum)}}})
                  .status,
              200);
    if (finish) {
      EXPECT_EQ(Post("/api/v1/runs/" + run + "/finish", json::object{}).status, 200);
    }
    return x;
  };
  for (int i = 0; i < 25; ++i) {
    trial(fed, true);
    trial(starved, false);  // running runs are not observations
  }
  double fed_error = 0, starved_error = 0;
  constexpr int kProbe = 10;
  for (int i = 0; i < kProbe; ++i) {
    fed_error += std::abs(trial(fed, true) - kOptimum) / kProbe;
    starved_error += std::abs(trial(starved, false) - kOptimum) / kProbe;
  }
  // Uniform draws on [0, 10] are on average 2.9 away from 7.3.
  EXPECT_LT(fed_error, 1.0) << "TPE mean distance " << fed_error;
  EXPECT_GT(starved_error, 1.5) << "bounds-only mean distance " << starved_error;
  // The best run of the fed sweep is close to the optimum.
  Reply stats = Get("/api/v1/sweeps/" + fed + "/stats");
  ASSERT_EQ(stats.status, 200) << stats.raw;
  EXPECT_LT(stats.body.at("best").at("value").to_number<double>(), 0.05) << stats.raw;
}

TEST_P(TrackArtifactsTest, RegistryVersionsLinkArtifactVersionsAndModelsUpdate) {
  std::string project = CreateProject("regart");
  std::string run = CreateRun(project);
  std::string sha = PutBlob("weights v1");
  Reply r = Post("/api/v1/artifacts", json::object{{"project_id", project},
                                                   {"name", "clf"},
                                                   {"type", "model"},
                                                   {"files", json::array{File("w.bin", sha)}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string version_id = std::string(r.body.at("version").at("id").as_string());
  // Bob's artifact version, in his workspace.
  std::string bob_project = CreateProject("bobs", &bob_);
  Reply bob_blob = Send("PUT", "/api/v1/blobs", "bob weights", &bob_, "application/octet-stream");
  ASSERT_EQ(bob_blob.status, 200) << bob_blob.raw;
  r = Post("/api/v1/artifacts",
           json::object{{"project_id", bob_project},
                        {"name", "clf"},
                        {"type", "model"},
                        {"files", json::array{File("w.bin", bob_blob.Str("sha256"))}}},
           &bob_);
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string bob_version_id = std::string(r.body.at("version").at("id").as_string());

  ASSERT_EQ(
      Post("/api/v1/registry/models", json::object{{"name", "clf"},
                                                   {"description", "first"},
                                                   {"tags", json::object{{"team", "vision"}}}})
          .status,
      201);
  r = Post(
      "/api/v1/registry/models/clf/versions",
      json::object{{"run_id", run}, {"artifact_version_id", version_id}, {"description", "v1"}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body.at("version").as_int64(), 1);
  EXPECT_EQ(r.Str("artifact_version_id"), version_id);
  EXPECT_EQ(r.Str("run_id"), run);
  // Another workspace's artifact version does not exist for alice.
  r = Post("/api/v1/registry/models/clf/versions",
           json::object{{"artifact_version_id", bob_version_id}});
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_NE(r.raw.find("artifact_version_id"), std::string::npos) << r.raw;
  EXPECT_EQ(
      Post("/api/v1/registry/models/clf/versions", json::object{{"artifact_version_id", "999999"}})
          .status,
      404);
  r = Post("/api/v1/registry/models/clf/versions", json::object{{"description", "v2"}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_TRUE(r.body.at("artifact_version_id").is_null());

  // PATCH: description and tags change, the name and the versions stay.
  r = Send("PATCH", "/api/v1/registry/models/clf",
           json::serialize(json::object{{"description", "classifier"},
                                        {"tags", json::object{{"team", "ml"}, {"tier", "1"}}}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("description"), "classifier");
  EXPECT_EQ(r.body.at("tags").at("team").as_string(), "ml");
  EXPECT_EQ(r.body.at("tags").at("tier").as_string(), "1");
  EXPECT_EQ(r.body.at("latest_version").as_int64(), 2);
  EXPECT_EQ(Get("/api/v1/registry/models/clf").Str("description"), "classifier");
  r = Send("PATCH", "/api/v1/registry/models/clf",
           json::serialize(json::object{{"description", "only the description"}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("tags").at("tier").as_string(), "1");
  EXPECT_EQ(Send("PATCH", "/api/v1/registry/models/nope",
                 json::serialize(json::object{{"description", "x"}}))
                .status,
            404);
  EXPECT_EQ(Send("PATCH", "/api/v1/registry/models/clf",
                 json::serialize(json::object{{"description", "x"}}), &bob_)
                .status,
            404);

  // GET versions: every version in order, with its links.
  r = Get("/api/v1/registry/models/clf/versions");
  ASSERT_EQ(r.status, 200) << r.raw;
  const auto& versions = r.body.at("versions").as_array();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].at("version").as_int64(), 1);
  EXPECT_EQ(versions[0].at("artifact_version_id").as_string(), version_id);
  EXPECT_EQ(versions[0].at("run_id").as_string(), run);
  EXPECT_EQ(versions[0].at("description").as_string(), "v1");
  EXPECT_EQ(versions[1].at("version").as_int64(), 2);
  EXPECT_EQ(versions[1].at("stage").as_string(), "none");
  EXPECT_EQ(Get("/api/v1/registry/models/clf/versions", &bob_).status, 404);
}

INSTANTIATE_TEST_SUITE_P(Backends, TrackArtifactsTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

}  // namespace
}  // namespace atrium::track::testing
