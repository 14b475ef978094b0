// HTTP API tests of the track service on SQLite and PostgreSQL: projects, runs, permissions,
// metrics (ingest, history, downsampling, bad input, limits), logs, crash detection, search.
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "atrium/auth/audit.h"
#include "atrium/track/downsample.h"
#include "track_fixture.h"

namespace atrium::track::testing {
namespace {

double D(const json::value& v) { return v.to_number<double>(); }

TEST_P(TrackHttpTest, ProjectsCrudAndUniqueNames) {
  Reply r = Post("/api/v1/projects", json::object{{"name", "vision"}, {"description", "d"}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string id = r.Str("id");
  EXPECT_EQ(r.Str("visibility"), "workspace");
  EXPECT_EQ(Post("/api/v1/projects", json::object{{"name", "vision"}}).status, 409);
  EXPECT_EQ(Post("/api/v1/projects", json::object{{"name", ""}}).status, 400);
  // The same name is free in another workspace.
  EXPECT_EQ(Post("/api/v1/projects", json::object{{"name", "vision"}}, &bob_).status, 201);
  r = Get("/api/v1/projects");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.at("projects").as_array().size(), 1u);
  r = Get("/api/v1/projects?name=vision");
  EXPECT_EQ(r.body.at("projects").as_array().size(), 1u);
  r = Send("PATCH", "/api/v1/projects/" + id,
           json::serialize(json::object{{"description", "new"}, {"visibility", "private"}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("description"), "new");
  EXPECT_EQ(r.Str("visibility"), "private");
  EXPECT_EQ(Get("/api/v1/projects/" + id).status, 200);
  EXPECT_EQ(Send("DELETE", "/api/v1/projects/" + id).status, 204);
  EXPECT_EQ(Get("/api/v1/projects/" + id).status, 404);
  // The name is free again after deletion.
  EXPECT_EQ(Post("/api/v1/projects", json::object{{"name", "vision"}}).status, 201);
  // Every mutation is audited.
  auto page = auth_->sql_audit()->Query(
      {.workspace_id = alice_.workspace_id, .action = "track.project.create"});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records.size(), 2u);
}

TEST_P(TrackHttpTest, OtherWorkspacesAreInvisible) {
  std::string project = CreateProject("secret");
  std::string run = CreateRun(project);
  ASSERT_EQ(
      LogPoints(run, json::array{json::object{{"key", "loss"}, {"step", 0}, {"value", 1}}}).status,
      200);
  EXPECT_EQ(Get("/api/v1/projects/" + project, &bob_).status, 404);
  EXPECT_EQ(Get("/api/v1/runs/" + run, &bob_).status, 404);
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/metrics/loss", &bob_).status, 404);
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/logs", &bob_).status, 404);
  EXPECT_EQ(
      LogPoints(run, json::array{json::object{{"key", "x"}, {"step", 0}, {"value", 1}}}, &bob_)
          .status,
      404);
  EXPECT_EQ(Send("DELETE", "/api/v1/runs/" + run, "", &bob_).status, 404);
  EXPECT_EQ(Post("/api/v1/runs", json::object{{"project_id", project}}, &bob_).status, 404);
  EXPECT_EQ(Post("/api/v1/runs/search", json::object{{"project_id", project}}, &bob_).status, 404);
  Reply list = Get("/api/v1/runs", &bob_);
  ASSERT_EQ(list.status, 200);
  EXPECT_TRUE(list.body.at("runs").as_array().empty());
  // Private projects are invisible to other members too (404, not 403): bob joins nothing
  // here, so check that the creator still sees it.
  ASSERT_EQ(Send("PATCH", "/api/v1/projects/" + project,
                 json::serialize(json::object{{"visibility", "private"}}))
                .status,
            200);
  EXPECT_EQ(Get("/api/v1/runs/" + run).status, 200);
  // No credentials: 401.
  EXPECT_EQ(Get("/api/v1/projects", &anonymous_).status, 401);
}

TEST_P(TrackHttpTest, RunLifecycle) {
  std::string project = CreateProject("p");
  Reply r = Post(
      "/api/v1/runs",
      json::object{{"project", "auto-created"},
                   {"config", json::object{{"lr", 0.01}, {"model", json::object{{"layers", 4}}}}},
                   {"tags", json::array{"baseline"}},
                   {"notes", "first"},
                   {"group", "g1"},
                   {"job_type", "train"},
                   {"git", json::object{{"commit", "abc"}}},
                   {"host", json::object{{"hostname", "gpu1"}}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string run = r.Str("id");
  EXPECT_EQ(r.Str("status"), "running");
  EXPECT_EQ(r.Str("name"), "run-" + run);
  EXPECT_EQ(r.body.at("config").at("model").at("layers").as_int64(), 4);
  EXPECT_EQ(r.body.at("tags").at("baseline").as_string(), "true");
  EXPECT_EQ(r.body.at("git").at("commit").as_string(), "abc");
  EXPECT_EQ(r.body.at("group").as_string(), "g1");
  EXPECT_TRUE(r.body.at("end_time").is_null());
  // The auto-created project exists.
  EXPECT_EQ(Get("/api/v1/projects?name=auto-created").body.at("projects").as_array().size(), 1u);

  std::string child = CreateRun(project, json::object{{"parent_id", run}, {"name", "child"}});
  EXPECT_EQ(Get("/api/v1/runs/" + child).body.at("parent_id").as_string(), run);

  r = Send("PATCH", "/api/v1/runs/" + run,
           json::serialize(json::object{{"name", "renamed"},
                                        {"tags", json::object{{"dataset", "imagenet"}}},
                                        {"config", json::object{{"bs", 32}}}}));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("name"), "renamed");
  EXPECT_EQ(r.body.at("config").at("bs").as_int64(), 32);
  EXPECT_EQ(r.body.at("config").at("lr").as_double(), 0.01);  // merged
  EXPECT_EQ(r.body.at("tags").at("dataset").as_string(), "imagenet");
  EXPECT_EQ(
      Send("PATCH", "/api/v1/runs/" + run, json::serialize(json::object{{"status", "sleeping"}}))
          .status,
      400);

  r = Post("/api/v1/runs/" + run + "/heartbeat", json::object{});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Str("status"), "running");
  r = Post("/api/v1/runs/" + run + "/finish", json::object{{"status", "failed"}, {"exit_code", 2}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Str("status"), "failed");
  EXPECT_FALSE(r.body.at("end_time").is_null());
  EXPECT_EQ(r.body.at("exit_code").as_int64(), 2);

  Reply list = Get("/api/v1/runs?project_id=" + project + "&limit=1");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.at("runs").as_array().size(), 1u);

  EXPECT_EQ(Send("DELETE", "/api/v1/runs/" + run).status, 204);
  EXPECT_EQ(Get("/api/v1/runs/" + run).status, 404);
  // Unknown and malformed ids are 404.
  EXPECT_EQ(Get("/api/v1/runs/999999").status, 404);
  EXPECT_EQ(Get("/api/v1/runs/abc").status, 404);
  EXPECT_EQ(LogPoints("424242", json::array{json::object{{"key", "x"}, {"step", 0}, {"value", 1}}})
                .status,
            404);
  EXPECT_EQ(Post("/api/v1/runs", json::object{}).status, 400);
}

TEST_P(TrackHttpTest, MetricsIngestHistoryAndDownsampling) {
  std::string run = CreateRun(CreateProject("m"));
  constexpr int kPoints = 5000;
  json::array pts;
  for (int i = 0; i < kPoints; ++i) {
    double v = i == 1234 ? 100.0 : (i == 4321 ? -100.0 : std::sin(i / 100.0));
    pts.push_back(
        json::object{{"key", "loss"}, {"step", i}, {"value", v}, {"timestamp", 1000 + i}});
    if (i % 10 == 0) {
      pts.push_back(json::object{{"key", "system/cpu"}, {"step", i}, {"value", 50}});
    }
  }
  Reply r = LogPoints(run, pts);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("accepted").as_int64(), kPoints + kPoints / 10);

  r = Get("/api/v1/runs/" + run + "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::serialize(r.body.at("keys")), R"(["loss","system/cpu"])");
  r = Get("/api/v1/runs/" + run + "/metrics?prefix=system/");
  EXPECT_EQ(json::serialize(r.body.at("keys")), R"(["system/cpu"])");

  // Full history.
  r = Get("/api/v1/runs/" + run + "/metrics/loss?max_points=10000");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("total").as_int64(), kPoints);
  EXPECT_FALSE(r.body.at("downsampled").as_bool());
  const auto& all = r.body.at("points").as_array();
  ASSERT_EQ(all.size(), static_cast<size_t>(kPoints));
  EXPECT_EQ(all[10].at("step").as_int64(), 10);
  EXPECT_EQ(all[10].at("timestamp").as_int64(), 1010);

  // Downsampled: at most max_points buckets, and the extremes survive.
  for (int pass = 0; pass < 2; ++pass) {  // the second pass is served from the cache
    r = Get("/api/v1/runs/" + run + "/metrics/loss?max_points=100");
    ASSERT_EQ(r.status, 200);
    EXPECT_TRUE(r.body.at("downsampled").as_bool());
    const auto& ds = r.body.at("points").as_array();
    EXPECT_LE(ds.size(), 100u);
    EXPECT_GE(ds.size(), 50u);
    double mn = 1e9, mx = -1e9;
    for (const auto& p : ds) {
      mn = std::min(mn, D(p.at("min")));
      mx = std::max(mx, D(p.at("max")));
    }
    EXPECT_EQ(mn, -100.0);
    EXPECT_EQ(mx, 100.0);
    EXPECT_EQ(ds.back().at("step").as_int64(), kPoints - 1);
  }
  // Step range.
  r = Get("/api/v1/runs/" + run + "/metrics/loss?min_step=100&max_step=199");
  EXPECT_EQ(r.body.at("total").as_int64(), 100);
  // A system metric through the rest-of-path key.
  r = Get("/api/v1/runs/" + run + "/metrics/system/cpu");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("total").as_int64(), kPoints / 10);
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/metrics/nope").status, 404);

  // New points after a cached read show up (cache kept in step with ingest).
  ASSERT_EQ(
      LogPoints(run, json::array{json::object{{"key", "loss"}, {"step", kPoints}, {"value", 7}}})
          .status,
      200);
  r = Get("/api/v1/runs/" + run + "/metrics/loss?max_points=100000");
  EXPECT_EQ(r.body.at("total").as_int64(), kPoints + 1);
  EXPECT_EQ(D(r.body.at("points").as_array().back().at("value")), 7.0);

  // Summary.
  r = Get("/api/v1/runs/" + run);
  const auto& s = r.body.at("summary").at("loss");
  EXPECT_EQ(D(s.at("last")), 7.0);
  EXPECT_EQ(D(s.at("min")), -100.0);
  EXPECT_EQ(D(s.at("max")), 100.0);
  EXPECT_EQ(s.at("step").as_int64(), kPoints);

  // Cursor scan over every key.
  std::string cursor;
  size_t seen = 0;
  for (int page = 0; page < 100; ++page) {
    r = Get("/api/v1/runs/" + run + "/metric-points?limit=2000" +
            (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.raw;
    seen += r.body.at("points").as_array().size();
    if (r.body.at("next_cursor").is_null()) break;
    cursor = std::string(r.body.at("next_cursor").as_string());
  }
  EXPECT_EQ(seen, static_cast<size_t>(kPoints + 1 + kPoints / 10));

  // Comparison of several runs x keys in one request.
  std::string run2 = CreateRun(Get("/api/v1/runs/" + run).Str("project_id"));
  ASSERT_EQ(
      LogPoints(run2, json::array{json::object{{"key", "loss"}, {"step", 0}, {"value", 3}}}).status,
      200);
  r = Post("/api/v1/metrics/compare", json::object{{"run_ids", json::array{run, run2}},
                                                   {"keys", json::array{"loss", "system/cpu"}},
                                                   {"max_points", 50}});
  ASSERT_EQ(r.status, 200) << r.raw;
  const auto& series = r.body.at("series").as_array();
  ASSERT_EQ(series.size(), 4u);
  EXPECT_LE(series[0].at("points").as_array().size(), 50u);
  EXPECT_EQ(series[2].at("total").as_int64(), 1);
  EXPECT_EQ(series[3].at("total").as_int64(), 0);  // run2 has no system/cpu
}

TEST_P(TrackHttpTest, DuplicateStepsLastWriteWins) {
  std::string run = CreateRun(CreateProject("d"));
  ASSERT_EQ(LogPoints(run, json::array{json::object{{"key", "acc"}, {"step", 1}, {"value", 1}},
                                       json::object{{"key", "acc"}, {"step", 1}, {"value", 2}},
                                       json::object{{"key", "acc"}, {"step", 2}, {"value", 5}}})
                .status,
            200);
  ASSERT_EQ(
      LogPoints(run, json::array{json::object{{"key", "acc"}, {"step", 2}, {"value", 3}}}).status,
      200);
  Reply r = Get("/api/v1/runs/" + run + "/metrics/acc");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(D(r.body.at("points").as_array()[0].at("value")), 2.0);
  EXPECT_EQ(r.body.at("total").as_int64(), 2);
  EXPECT_EQ(D(r.body.at("points").as_array()[1].at("value")), 3.0);
  EXPECT_EQ(D(Get("/api/v1/runs/" + run).body.at("summary").at("acc").at("last")), 3.0);
}

TEST_P(TrackHttpTest, NonFiniteValuesAreStoredAndBadValuesRejected) {
  std::string run = CreateRun(CreateProject("nan"));
  Reply r =
      LogPoints(run, json::array{json::object{{"key", "l"}, {"step", 0}, {"value", "NaN"}},
                                 json::object{{"key", "l"}, {"step", 1}, {"value", "Infinity"}},
                                 json::object{{"key", "l"}, {"step", 2}, {"value", "-Infinity"}},
                                 json::object{{"key", "l"}, {"step", 3}, {"value", nullptr}},
                                 json::object{{"key", "l"}, {"step", 4}, {"value", 0.5}}});
  ASSERT_EQ(r.status, 200) << r.raw;
  // Python's json.dumps writes bare NaN / Infinity tokens.
  r = Send("POST", "/api/v1/runs/" + run + "/metrics",
           R"({"points":[{"key":"l","step":5,"value":NaN},{"key":"l","step":6,"value":-Infinity},)"
           R"({"key":"NaN key","step":0,"value":Infinity}]})");
  ASSERT_EQ(r.status, 200) << r.raw;
  r = Get("/api/v1/runs/" + run + "/metrics/l");
  ASSERT_EQ(r.status, 200);
  const auto& p = r.body.at("points").as_array();
  ASSERT_EQ(p.size(), 7u);
  EXPECT_EQ(p[0].at("value").as_string(), "NaN");
  EXPECT_EQ(p[1].at("value").as_string(), "Infinity");
  EXPECT_EQ(p[2].at("value").as_string(), "-Infinity");
  EXPECT_EQ(p[3].at("value").as_string(), "NaN");
  EXPECT_EQ(D(p[4].at("value")), 0.5);
  EXPECT_EQ(p[5].at("value").as_string(), "NaN");
  EXPECT_EQ(p[6].at("value").as_string(), "-Infinity");
  // min/max ignore non-finite values.
  Reply run_reply = Get("/api/v1/runs/" + run);
  ASSERT_EQ(run_reply.status, 200) << run_reply.raw;
  ASSERT_TRUE(run_reply.body.at("summary").as_object().contains("l")) << run_reply.raw;
  const auto& s = run_reply.body.at("summary").at("l");
  EXPECT_EQ(D(s.at("min")), 0.5);
  EXPECT_EQ(D(s.at("max")), 0.5);
  EXPECT_EQ(s.at("last").as_string(), "-Infinity");
  r = Get("/api/v1/runs/" + run + "/metrics/NaN%20key");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("points").as_array()[0].at("value").as_string(), "Infinity");

  // Bad input names the field.
  r = LogPoints(run, json::array{json::object{{"key", "l"}, {"step", 0}, {"value", 1}},
                                 json::object{{"key", "l"}, {"step", 1}, {"value", "abc"}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("points[1].value"), std::string::npos) << r.raw;
  r = LogPoints(run, json::array{json::object{{"key", "l"}, {"value", 1}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("points[0].step"), std::string::npos) << r.raw;
  r = LogPoints(run, json::array{json::object{{"key", "l"}, {"step", -1}, {"value", 1}}});
  EXPECT_EQ(r.status, 400);
  r = LogPoints(run, json::array{json::object{{"key", ""}, {"step", 1}, {"value", 1}}});
  EXPECT_NE(r.raw.find("points[0].key"), std::string::npos) << r.raw;
  EXPECT_EQ(Send("POST", "/api/v1/runs/" + run + "/metrics", "{not json").status, 400);
}

TEST_P(TrackHttpTest, LogsAppendReadTailAndDownload) {
  std::string run = CreateRun(CreateProject("logs"));
  json::array lines;
  for (int i = 0; i < 25; ++i) {
    lines.push_back(json::object{{"level", i % 5 == 0 ? "error" : "info"},
                                 {"message", "line " + std::to_string(i)},
                                 {"timestamp", 1700000000000 + i}});
  }
  Reply r = Post("/api/v1/runs/" + run + "/logs", json::object{{"lines", lines}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.at("last_seq").as_int64(), 25);
  r = Post("/api/v1/runs/" + run + "/logs",
           json::object{{"lines", json::array{json::object{{"message", "tail"}}}}});
  EXPECT_EQ(r.body.at("last_seq").as_int64(), 26);
  EXPECT_EQ(
      Post("/api/v1/runs/" + run + "/logs",
           json::object{{"lines", json::array{json::object{{"level", "loud"}, {"message", "x"}}}}})
          .status,
      400);

  std::vector<std::string> got;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    r = Get("/api/v1/runs/" + run + "/logs?limit=10" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200);
    for (const auto& l : r.body.at("lines").as_array())
      got.emplace_back(l.at("message").as_string());
    cursor = std::string(r.body.at("next_cursor").as_string());
    if (!r.body.at("has_more").as_bool()) break;
  }
  ASSERT_EQ(got.size(), 26u);
  EXPECT_EQ(got[3], "line 3");
  EXPECT_EQ(got.back(), "tail");
  EXPECT_EQ(cursor, "26");
  r = Get("/api/v1/runs/" + run + "/logs?level=error");
  EXPECT_EQ(r.body.at("lines").as_array().size(), 5u);

  r = Get("/api/v1/runs/" + run + "/logs/download");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.raw.find("ERROR line 0\n"), std::string::npos) << r.raw.substr(0, 200);
  EXPECT_NE(r.raw.find("INFO tail\n"), std::string::npos);

  // Live tail over SSE: the backlog after the cursor, then new lines.
  std::mutex mu;
  std::condition_variable cv;
  std::string stream;
  auto cancel = std::make_shared<http::CancelToken>();
  http::ClientRequest req;
  req.url = base_ + "/api/v1/runs/" + run + "/logs/stream?cursor=24";
  req.headers.Set("authorization", "Bearer " + alice_.token);
  req.cancel = cancel;
  req.on_data = [&](std::string_view chunk) {
    std::lock_guard lock(mu);
    stream += chunk;
    cv.notify_all();
    return true;
  };
  std::atomic<bool> done{false};
  client_.Send(std::move(req), [&](Result<http::ClientResponse>) {
    done = true;
    cv.notify_all();
  });
  auto wait_for = [&](const std::string& needle) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5),
                       [&] { return stream.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(wait_for("\"line 24\""));
  EXPECT_TRUE(wait_for("\"tail\""));
  EXPECT_EQ(stream.find("\"line 23\""), std::string::npos);
  Post("/api/v1/runs/" + run + "/logs",
       json::object{{"lines", json::array{json::object{{"message", "live!"}}}}});
  EXPECT_TRUE(wait_for("live!"));
  EXPECT_TRUE(wait_for("id: 27"));
  cancel->Cancel();
  for (int i = 0; i < 100 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

TEST_P(TrackHttpTest, RunEventsStreamMetrics) {
  std::string run = CreateRun(CreateProject("live"));
  std::mutex mu;
  std::condition_variable cv;
  std::string stream;
  auto cancel = std::make_shared<http::CancelToken>();
  http::ClientRequest req;
  req.url = base_ + "/api/v1/runs/" + run + "/events";
  req.headers.Set("authorization", "Bearer " + alice_.token);
  req.cancel = cancel;
  req.on_data = [&](std::string_view chunk) {
    std::lock_guard lock(mu);
    stream += chunk;
    cv.notify_all();
    return true;
  };
  std::atomic<bool> done{false};
  client_.Send(std::move(req), [&](Result<http::ClientResponse>) { done = true; });
  auto wait_for = [&](const std::string& needle) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5),
                       [&] { return stream.find(needle) != std::string::npos; });
  };
  ASSERT_TRUE(wait_for("event: status"));
  ASSERT_EQ(LogPoints(run, json::array{json::object{{"key", "loss"}, {"step", 3}, {"value", 0.25}}})
                .status,
            200);
  EXPECT_TRUE(wait_for("event: metrics"));
  EXPECT_TRUE(wait_for("\"step\":3"));
  Post("/api/v1/runs/" + run + "/finish", json::object{});
  EXPECT_TRUE(wait_for("\"finished\""));
  cancel->Cancel();
  for (int i = 0; i < 100 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

class TrackLimitsTest : public TrackHttpTest {
 protected:
  // Sends only the headers of a POST with this Content-Length; returns the answer's status.
  int RawStatusForLength(const std::string& path, size_t length) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    std::string head =
        "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + alice_.token +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(length) +
        "\r\n\r\n";
    (void)!::write(fd, head.data(), head.size());
    char buf[256] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n < 12) return -1;
    return std::atoi(buf + 9);
  }

  void ConfigureOptions(TrackOptions& o) override {
    o.max_batch_bytes = 12 << 20;
    o.heartbeat_timeout = std::chrono::milliseconds(50);
  }
};

TEST_P(TrackLimitsTest, BatchSizeLimit) {
  std::string run = CreateRun(CreateProject("big"));
  // ~10 MB: accepted.
  std::string key(100, 'k');
  std::string body = "{\"points\":[";
  int i = 0;
  while (body.size() < 10'000'000) {
    if (i > 0) body += ",";
    body += "{\"key\":\"" + key + std::to_string(i % 10) + "\",\"step\":" + std::to_string(i) +
            ",\"value\":0.123456789}";
    ++i;
  }
  body += "]}";
  Reply r = Send("POST", "/api/v1/runs/" + run + "/metrics", body);
  ASSERT_EQ(r.status, 200) << r.raw.substr(0, 300);
  EXPECT_EQ(r.body.at("accepted").as_int64(), i);
  // Beyond the configured 12 MiB: 413 (the server answers from the Content-Length, before
  // the body, and closes; a raw socket reads that answer reliably).
  EXPECT_EQ(RawStatusForLength("/api/v1/runs/" + run + "/metrics", 13u << 20), 413);
  EXPECT_EQ(RawStatusForLength("/api/v1/runs/" + run + "/logs", 13u << 20), 413);
}

TEST_P(TrackLimitsTest, RunsWithoutHeartbeatCrash) {
  std::string project = CreateProject("hb");
  std::string run = CreateRun(project);
  std::string finished = CreateRun(project);
  Post("/api/v1/runs/" + finished + "/finish", json::object{});
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  auto n = track_->MarkCrashedRuns();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(Get("/api/v1/runs/" + run).Str("status"), "crashed");
  EXPECT_EQ(Get("/api/v1/runs/" + finished).Str("status"), "finished");
  // A heartbeat revives it.
  EXPECT_EQ(Post("/api/v1/runs/" + run + "/heartbeat", json::object{}).Str("status"), "running");
  // The background check runs too.
  track_->Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  track_->Stop();
}

// ---- search ----

TEST_P(TrackHttpTest, SearchWithFilterOrderAndCursor) {
  std::string project = CreateProject("search");
  std::vector<std::string> runs;
  for (int i = 0; i < 12; ++i) {
    json::object cfg{{"lr", 0.0001 * (i + 1)},
                     {"optimizer", json::object{{"name", i % 2 == 0 ? "adam" : "sgd"}}},
                     {"use_amp", i % 3 == 0}};
    std::string run = CreateRun(
        project, json::object{{"config", cfg},
                              {"tags", json::object{{"dataset", i < 6 ? "imagenet" : "cifar"}}},
                              {"name", "r" + std::to_string(i)}});
    runs.push_back(run);
    ASSERT_EQ(LogPoints(run, json::array{json::object{
                                 {"key", "loss"}, {"step", 0}, {"value", 1.0 - i * 0.05}}})
                  .status,
              200);
  }
  Post("/api/v1/runs/" + runs[11] + "/finish", json::object{{"status", "failed"}});
  auto search = [&](const std::string& filter, json::value order = nullptr, int limit = 100,
                    std::string cursor = "") {
    json::object body{{"project_id", project}, {"filter", filter}, {"limit", limit}};
    if (!order.is_null()) body["order_by"] = order;
    if (!cursor.empty()) body["cursor"] = cursor;
    return Post("/api/v1/runs/search", body);
  };
  auto names = [](const Reply& r) {
    std::vector<std::string> out;
    for (const auto& run : r.body.at("runs").as_array())
      out.emplace_back(run.at("name").as_string());
    return out;
  };
  Reply r = search(
      "params.lr > 0.00065 and metrics.loss < 0.6 and tags.dataset = 'cifar' or status = 'failed'",
      "name");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(names(r), (std::vector<std::string>{"r10", "r11", "r9"}));
  r = search("params.optimizer.name = 'adam' and (tags.dataset = 'imagenet')", "params.lr desc");
  EXPECT_EQ(names(r), (std::vector<std::string>{"r4", "r2", "r0"}));
  r = search("params.use_amp = true", "metrics.loss asc");
  EXPECT_EQ(names(r), (std::vector<std::string>{"r9", "r6", "r3", "r0"}));
  r = search("name in ('r1', 'r2') or name like 'R1%'", json::array{"name asc"});
  EXPECT_EQ(names(r), (std::vector<std::string>{"r1", "r10", "r11", "r2"}));
  r = search("not tags.dataset = 'imagenet' and name not in ('r6')", "name");
  EXPECT_EQ(names(r), (std::vector<std::string>{"r10", "r11", "r7", "r8", "r9"}));
  r = search("params.missing = 1");
  EXPECT_TRUE(r.body.at("runs").as_array().empty());
  // Pagination.
  std::vector<std::string> all;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    r = search("", "metrics.loss desc", 5, cursor);
    ASSERT_EQ(r.status, 200) << r.raw;
    for (auto& n : names(r)) all.push_back(n);
    if (r.body.at("next_cursor").is_null()) break;
    cursor = std::string(r.body.at("next_cursor").as_string());
  }
  ASSERT_EQ(all.size(), 12u);
  EXPECT_EQ(all.front(), "r0");
  EXPECT_EQ(all.back(), "r11");
  // Invalid filters: 400 with the position.
  r = search("params.lr >");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("position 11"), std::string::npos) << r.raw;
  r = search("bogus = 1");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("position 0"), std::string::npos) << r.raw;
  r = search("metrics.loss = 'x'");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("position 15"), std::string::npos) << r.raw;
  EXPECT_EQ(search("", "params.lr sideways").status, 400);
}

// Keyset pagination: runs created between two page requests (sorting before the page already
// read, after it, or lacking the sort key) make no run of the first pages come again and skip
// none, for every kind of sort key; the pages keep the order of a one-page search.
TEST_P(TrackHttpTest, SearchPagesNeitherSkipNorRepeatWhenRunsAreInserted) {
  std::string project = CreateProject("pages");
  int created = 0;
  // A run with every sort key (`high` sorts it first in the orders below) or with none.
  auto add_run = [&](bool with_keys, bool high) {
    int n = created++;
    json::object body{{"name", (high ? "a" : "m") + std::to_string(1000 + n)}};
    if (with_keys) {
      double lr = high ? 100.0 + n : 0.001 * (n % 7);  // repeated values: ties broken by id
      body["config"] = json::object{{"lr", lr}, {"opt", n % 2 == 0 ? "adam" : "sgd"}};
      body["tags"] =
          json::object{{"dataset", high ? "zz" + std::to_string(n) : "d" + std::to_string(n % 3)}};
    }
    std::string run = CreateRun(project, body);
    if (with_keys) {
      double loss = high ? -1.0 * n : 0.5 + (n % 5) * 0.1;
      EXPECT_EQ(
          LogPoints(run, json::array{json::object{{"key", "loss"}, {"step", 0}, {"value", loss}}})
              .status,
          200);
    }
    return run;
  };
  for (int i = 0; i < 14; ++i) add_run(i % 5 != 4, false);
  auto ids = [](const Reply& r) {
    std::vector<std::string> out;
    for (const auto& run : r.body.at("runs").as_array()) out.emplace_back(run.at("id").as_string());
    return out;
  };
  const std::vector<json::value> orders = {
      nullptr,  // start_time desc
      json::value("name asc"),
      json::value("params.lr desc"),
      json::value("metrics.loss asc"),
      json::value("tags.dataset desc"),
      json::value("params.opt, tags.dataset asc, metrics.loss desc"),
      json::array{"status", "end_time desc", "params.lr asc"}};
  for (const auto& order : orders) {
    SCOPED_TRACE("order_by " + json::serialize(order));
    json::object body{{"project_id", project}, {"limit", 4}};
    if (!order.is_null()) body["order_by"] = order;
    Reply r = Post("/api/v1/runs/search", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    std::vector<std::string> before = ids(r);  // (first page only)
    body["limit"] = 1000;
    std::vector<std::string> existing = ids(Post("/api/v1/runs/search", body));
    body["limit"] = 4;
    std::vector<std::string> paged;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      if (!cursor.empty()) body["cursor"] = cursor;
      r = Post("/api/v1/runs/search", body);
      ASSERT_EQ(r.status, 200) << r.raw;
      for (auto& id : ids(r)) paged.push_back(id);
      if (r.body.at("next_cursor").is_null()) break;
      cursor = std::string(r.body.at("next_cursor").as_string());
      // Between the first requests: a run sorting first, one sorting like the others, one
      // lacking every key.
      if (page < 4) {
        add_run(true, true);
        add_run(true, false);
        add_run(false, false);
      }
    }
    EXPECT_TRUE(r.body.at("next_cursor").is_null()) << "more than 100 pages";
    EXPECT_EQ(std::vector<std::string>(paged.begin(), paged.begin() + 4), before);
    // Nothing repeated, nothing that existed before skipped.
    std::set<std::string> seen(paged.begin(), paged.end());
    EXPECT_EQ(seen.size(), paged.size());
    for (const auto& id : existing) EXPECT_EQ(seen.count(id), 1u) << "run " << id << " skipped";
    // The pages follow the order of a one-page search over what exists now.
    body.erase("cursor");
    body["limit"] = 1000;
    std::vector<std::string> now = ids(Post("/api/v1/runs/search", body));
    size_t at = 0;
    for (const auto& id : paged) {
      while (at < now.size() && now[at] != id) ++at;
      ASSERT_LT(at, now.size()) << "run " << id << " out of order";
    }
  }
  // Ordering by a tag: missing tags last, ties by id (newest first).
  Reply r = Post("/api/v1/runs/search", json::object{{"project_id", project},
                                                     {"filter", "name like 'm%'"},
                                                     {"order_by", "tags.dataset asc"},
                                                     {"limit", 1000}});
  ASSERT_EQ(r.status, 200) << r.raw;
  std::string last_tag;
  bool missing_seen = false;
  for (const auto& run : r.body.at("runs").as_array()) {
    const auto* tag = run.at("tags").as_object().if_contains("dataset");
    if (tag == nullptr) {
      missing_seen = true;
      continue;
    }
    EXPECT_FALSE(missing_seen) << "a run with the tag after one without";
    EXPECT_LE(last_tag, std::string(tag->as_string()));
    last_tag = std::string(tag->as_string());
  }
  EXPECT_TRUE(missing_seen);
  // A cursor belongs to its search's order; garbage is 400.
  r = Post("/api/v1/runs/search",
           json::object{{"project_id", project}, {"order_by", "name"}, {"limit", 2}});
  std::string name_cursor = std::string(r.body.at("next_cursor").as_string());
  r = Post(
      "/api/v1/runs/search",
      json::object{{"project_id", project}, {"order_by", "params.lr"}, {"cursor", name_cursor}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.raw.find("order_by"), std::string::npos) << r.raw;
  EXPECT_EQ(
      Post("/api/v1/runs/search", json::object{{"project_id", project}, {"cursor", "12"}}).status,
      400);
}

TEST_P(TrackHttpTest, PrivateProjectsAreHiddenFromOtherMembersOfTheWorkspace) {
  User carol = JoinWorkspace(alice_, "carol@example.com");
  std::string project = CreateProject("mine");
  std::string run = CreateRun(project);
  ASSERT_EQ(
      LogPoints(run, json::array{json::object{{"key", "loss"}, {"step", 0}, {"value", 1}}}).status,
      200);
  Reply r = Send("PUT", "/api/v1/blobs", "weights", nullptr, "application/octet-stream");
  ASSERT_EQ(r.status, 200) << r.raw;
  r = Post(
      "/api/v1/artifacts",
      json::object{
          {"project_id", project},
          {"name", "model"},
          {"type", "model"},
          {"files", json::array{json::object{{"path", "w.bin"}, {"sha256", r.Str("sha256")}}}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string artifact = std::string(r.body.at("artifact").at("id").as_string());
  std::string version = std::string(r.body.at("version").at("id").as_string());
  // While the project is shared, carol (same workspace) sees it.
  EXPECT_EQ(Get("/api/v1/runs/" + run, &carol).status, 200);
  EXPECT_EQ(Get("/api/v1/artifacts/" + artifact, &carol).status, 200);
  ASSERT_EQ(Send("PATCH", "/api/v1/projects/" + project,
                 json::serialize(json::object{{"visibility", "private"}}))
                .status,
            200);
  // Private: 404 (never 403) for her, on the project, its runs and its artifacts.
  EXPECT_EQ(Get("/api/v1/projects/" + project, &carol).status, 404);
  EXPECT_EQ(Get("/api/v1/runs/" + run, &carol).status, 404);
  EXPECT_EQ(Get("/api/v1/runs/" + run + "/metrics/loss", &carol).status, 404);
  EXPECT_TRUE(Get("/api/v1/runs", &carol).body.at("runs").as_array().empty());
  EXPECT_EQ(Post("/api/v1/runs/search", json::object{{"project_id", project}}, &carol).status, 404);
  EXPECT_EQ(Get("/api/v1/artifacts/" + artifact, &carol).status, 404);
  EXPECT_EQ(Get("/api/v1/artifact-versions/" + version, &carol).status, 404);
  EXPECT_EQ(Get("/api/v1/artifact-versions/" + version + "/files/w.bin", &carol).status, 404);
  EXPECT_TRUE(Get("/api/v1/artifacts", &carol).body.at("artifacts").as_array().empty());
  EXPECT_EQ(Post("/api/v1/metrics/compare",
                 json::object{{"run_ids", json::array{run}}, {"keys", json::array{"loss"}}}, &carol)
                .status,
            404);
  // The creator still sees everything.
  EXPECT_EQ(Get("/api/v1/runs/" + run).status, 200);
  EXPECT_EQ(Get("/api/v1/artifacts/" + artifact).status, 200);
}

TEST_P(TrackHttpTest, CompareWithARunTheCallerCannotSeeIs404) {
  std::string mine = CreateRun(CreateProject("cmp"));
  std::string theirs = CreateRun(CreateProject("cmp", &bob_), {}, &bob_);
  for (const auto& [run, user] : {std::pair{mine, &alice_}, std::pair{theirs, &bob_}}) {
    ASSERT_EQ(
        LogPoints(run, json::array{json::object{{"key", "loss"}, {"step", 0}, {"value", 1}}}, user)
            .status,
        200);
  }
  json::object body{{"run_ids", json::array{mine}}, {"keys", json::array{"loss"}}};
  EXPECT_EQ(Post("/api/v1/metrics/compare", body).status, 200);
  body["run_ids"] = json::array{mine, theirs};
  Reply r = Post("/api/v1/metrics/compare", body);
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_NE(r.raw.find(theirs), std::string::npos) << r.raw;
  body["run_ids"] = json::array{mine, "999999"};
  EXPECT_EQ(Post("/api/v1/metrics/compare", body).status, 404);
  // Bob's own request works.
  body["run_ids"] = json::array{theirs};
  EXPECT_EQ(Post("/api/v1/metrics/compare", body, &bob_).status, 200);
}

// Long ranges are answered from the rollups kept at ingest: the answer must be exactly what
// downsampling every stored point gives, after appends, rewritten steps, filled-in gaps,
// non-finite values, step ranges that cut chunks, for sparse series, and for rollups rebuilt
// by migration 401 from points stored before it.
TEST_P(TrackHttpTest, LongHistoriesFromRollupsMatchDownsamplingEveryPoint) {
  std::string run = CreateRun(CreateProject("rollups"));
  auto value = [](int64_t step, int round) {
    if (step % 9973 == 0) return json::value("NaN");
    if (step % 31337 == 5) return json::value(round == 0 ? "Infinity" : "-Infinity");
    return json::value(std::sin(static_cast<double>(step) * 0.001 + round) * 10 +
                       static_cast<double>(step % 17));
  };
  // Two keys per batch: `loss` is checked against the rollups written at ingest, `acc` against
  // the ones the migration rebuilds.
  auto batch = [&](int64_t from, int64_t to, int round, int64_t skip_from = -1,
                   int64_t skip_to = -1) {
    json::array pts;
    for (int64_t s = from; s < to; ++s) {
      if (s >= skip_from && s < skip_to) continue;
      for (const char* key : {"loss", "acc"}) {
        pts.push_back(json::object{
            {"key", key}, {"step", s}, {"value", value(s, round)}, {"timestamp", 1000 + s}});
      }
    }
    Reply r = LogPoints(run, std::move(pts));
    ASSERT_EQ(r.status, 200) << r.raw.substr(0, 300);
  };
  // Appends (one with a gap), then a rewrite across chunk boundaries and the gap filled in.
  for (int64_t s = 0; s < 240000; s += 40000) batch(s, s + 40000, 0, 70010, 70990);
  batch(5000, 5300, 1);
  batch(70010, 70990, 2);
  // Sparse points far away.
  for (const char* key : {"loss", "acc"}) {
    ASSERT_EQ(
        LogPoints(run, json::array{json::object{{"key", key}, {"step", 5'000'000}, {"value", 1}},
                                   json::object{{"key", key}, {"step", 9'000'000}, {"value", 2}}})
            .status,
        200);
  }

  auto same = [](const json::value& got, double want) {
    if (std::isnan(want)) return got.is_string() && got.as_string() == "NaN";
    if (std::isinf(want)) {
      return got.is_string() && got.as_string() == (want > 0 ? "Infinity" : "-Infinity");
    }
    return got.is_number() && D(got) == want;
  };
  struct Query {
    int64_t max_points;
    std::optional<int64_t> min_step, max_step;
  };
  // With max_points up to 300 these ranges are long enough for the rollups (ChooseBucketGrid);
  // the last two are answered from the points (and load the series into the cache).
  const std::vector<Query> queries = {
      {300, {}, {}},     {100, {}, 239999},           {77, 3, 200000},        {200, 70001, 180123},
      {50, 100, 239000}, {300, 5'000'000, 9'000'000}, {1000, 239990, 239999}, {100000, {}, 239999}};
  auto check = [&](const std::string& key) {
    // Every stored point, through the full scan.
    std::vector<SeriesPoint> all;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      Reply r = Get("/api/v1/runs/" + run + "/metric-points?key=" + key + "&limit=10000" +
                    (cursor.empty() ? "" : "&cursor=" + cursor));
      ASSERT_EQ(r.status, 200) << r.raw;
      for (const auto& p : r.body.at("points").as_array()) {
        const auto& v = p.at("value");
        double d = v.is_string() ? (v.as_string() == "NaN"        ? std::nan("")
                                    : v.as_string() == "Infinity" ? INFINITY
                                                                  : -INFINITY)
                                 : D(v);
        all.push_back({p.at("step").as_int64(), d, p.at("timestamp").as_int64()});
      }
      if (r.body.at("next_cursor").is_null()) break;
      cursor = std::string(r.body.at("next_cursor").as_string());
    }
    ASSERT_EQ(all.size(), 240002u);
    for (const auto& q : queries) {
      std::string path = "/api/v1/runs/" + run + "/metrics/" + key +
                         "?max_points=" + std::to_string(q.max_points) +
                         (q.min_step ? "&min_step=" + std::to_string(*q.min_step) : "") +
                         (q.max_step ? "&max_step=" + std::to_string(*q.max_step) : "");
      SCOPED_TRACE(path);
      std::vector<SeriesPoint> range;
      for (const auto& p : all) {
        if ((!q.min_step || p.step >= *q.min_step) && (!q.max_step || p.step <= *q.max_step)) {
          range.push_back(p);
        }
      }
      if (q.max_points <= 300) {
        ASSERT_NE(ChooseBucketGrid(range.front().step, range.back().step, q.max_points).level, 0);
      }
      auto want = Downsample(range, q.max_points);
      Reply r = Get(path);
      ASSERT_EQ(r.status, 200) << r.raw.substr(0, 300);
      EXPECT_EQ(r.body.at("total").as_int64(), static_cast<int64_t>(range.size()));
      const bool downsampled = static_cast<int64_t>(range.size()) > q.max_points;
      EXPECT_EQ(r.body.at("downsampled").as_bool(), downsampled);
      const auto& got = r.body.at("points").as_array();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        const auto& g = got[i];
        ASSERT_EQ(g.at("step").as_int64(), want[i].step) << i;
        EXPECT_TRUE(same(g.at("value"), want[i].value)) << i << " " << json::serialize(g);
        EXPECT_EQ(g.at("timestamp").as_int64(), want[i].ts_ms) << i;
        if (downsampled) {
          EXPECT_TRUE(same(g.at("min"), want[i].min)) << i << " " << json::serialize(g);
          EXPECT_TRUE(same(g.at("max"), want[i].max)) << i << " " << json::serialize(g);
          EXPECT_EQ(g.at("count").as_int64(), want[i].count) << i;
        }
      }
    }
  };
  check("loss");
  // Migration 401 on a database whose points predate it: the rollups are rebuilt from them.
  ASSERT_TRUE(db_->ExecScript("DROP TABLE track_rollups").ok());
  auto migrations = TrackMigrations();
  ASSERT_EQ(migrations.back().version, 401);
  Status st = db_->ExecScript(migrations.back().SqlFor(db_->dialect()));
  ASSERT_TRUE(st.ok()) << st.ToString();
  check("acc");
}

INSTANTIATE_TEST_SUITE_P(Backends, TrackHttpTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, TrackLimitsTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

}  // namespace
}  // namespace atrium::track::testing
