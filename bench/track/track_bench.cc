// bench/track: the experiment tracker's performance goals (specs/track.md), measured through the
// real HTTP API of an in-process server on SQLite or PostgreSQL:
//   - metric ingest (batches of 10,000 points, several runs in parallel)   goal ≥ 1M/s SQLite,
//                                                                           ≥ 300k/s PostgreSQL
//   - history of one key with 1,000,000 points downsampled to 1,000        goal ≤ 20 ms
//     (also the first read of a key, and of a 250,000-point key)
//   - 100 runs × 1 key comparison                                          goal ≤ 100 ms
//   - search over 10,000 runs × 100 params, 2 params + 1 metric filter     goal ≤ 50 ms
// Prints absolute figures and the ratio to each goal. Not a test; see bench/track/run.
//
// Usage: track_bench [--db URL] [--points N] [--threads T] [--runs R]
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/core/env.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/store/database.h"
#include "atrium/store/fs_blob_store.h"
#include "atrium/store/migrations.h"
#include "atrium/track/track_service.h"

namespace {
namespace json = boost::json;
using namespace atrium;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Bench {
  std::string base, token;
  http::HttpClient client{http::ClientOptions{.threads = 4}};

  http::ClientResponse Call(const std::string& method, const std::string& path,
                            std::string body = "") {
    http::ClientRequest req;
    req.method = method;
    req.url = base + path;
    req.body = std::move(body);
    req.max_response_bytes = 256 << 20;
    req.read_timeout = std::chrono::minutes(5);
    req.headers.Set("content-type", "application/json");
    if (!token.empty()) req.headers.Set("authorization", "Bearer " + token);
    auto r = client.SendSync(std::move(req));
    if (!r.ok()) {
      std::fprintf(stderr, "%s %s: %s\n", method.c_str(), path.c_str(),
                   r.status().ToString().c_str());
      std::exit(1);
    }
    if (r->status >= 300) {
      std::fprintf(stderr, "%s %s: %d %s\n", method.c_str(), path.c_str(), r->status,
                   r->body.substr(0, 300).c_str());
      std::exit(1);
    }
    return std::move(*r);
  }
  json::value Json(const std::string& method, const std::string& path, std::string body = "") {
    return json::parse(Call(method, path, std::move(body)).body);
  }
};

std::string Batch(const std::string& key, int64_t first_step, int n) {
  std::string body = "{\"points\":[";
  body.reserve(static_cast<size_t>(n) * 48 + 16);
  char buf[128];
  for (int i = 0; i < n; ++i) {
    int64_t step = first_step + i;
    int len = std::snprintf(buf, sizeof buf, "%s{\"key\":\"%s\",\"step\":%lld,\"value\":%.6f}",
                            i == 0 ? "" : ",", key.c_str(), static_cast<long long>(step),
                            0.5 + 0.4 * std::sin(static_cast<double>(step) * 0.001));
    body.append(buf, static_cast<size_t>(len));
  }
  body += "]}";
  return body;
}

void Report(const char* what, double value, const char* unit, double goal, bool higher_better) {
  double ratio = higher_better ? value / goal : goal / value;
  std::printf("%-58s %12.1f %-8s goal %10.0f  ratio %.2fx %s\n", what, value, unit, goal, ratio,
              ratio >= 1.0 ? "(meets)" : "(misses)");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string db_url;
  int64_t history_points = 1'000'000;
  int threads = 4;
  int search_runs = 10'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--db") db_url = argv[i + 1];
    if (a == "--points") history_points = std::atoll(argv[i + 1]);
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    if (a == "--runs") search_runs = std::atoi(argv[i + 1]);
  }
  testing::TempDir tmp;
  if (db_url.empty()) db_url = "sqlite://" + tmp.path() + "/bench.db";
  auto db_or = store::OpenDatabase(db_url, {.pool_size = 8});
  if (!db_or.ok()) {
    std::fprintf(stderr, "open %s: %s\n", db_url.c_str(), db_or.status().ToString().c_str());
    return 1;
  }
  auto db = std::move(*db_or);
  const bool pg = db->dialect() == store::Dialect::kPostgres;
  if (pg) (void)db->ExecScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  store::MigrationSet set;
  (void)set.Add(store::FoundationMigrations());
  (void)set.Add(auth::AuthMigrations());
  (void)set.Add(track::TrackMigrations());
  store::Migrator migrator(*db, set, Env::Default());
  if (auto n = migrator.Up(); !n.ok()) {
    std::fprintf(stderr, "migrate: %s\n", n.status().ToString().c_str());
    return 1;
  }
  auto logger =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  auth::AuthOptions ao;
  ao.jwt_secret = std::string(40, 'b');
  ao.password_cost = auth::PasswordCost::kTest;
  auto auth =
      std::move(*auth::AuthService::Create(ao, *db, Env::Default(), nullptr, nullptr, logger));
  auto blobs = std::move(*store::FsBlobStore::Create(Env::Default(), tmp.path() + "/blobs"));
  track::TrackOptions to;
  to.max_batch_bytes = 64 << 20;
  // Live updates go through an embedded bus, as in `atrium serve`: ingest pays for publishing.
  auto bus = bus::OpenEmbeddedBus(Env::Default(), {.data_dir = tmp.path() + "/bus"});
  if (!bus.ok()) {
    std::fprintf(stderr, "bus: %s\n", bus.status().ToString().c_str());
    return 1;
  }
  auto tracker = std::move(*track::TrackService::Create(to, *db, *blobs, Env::Default(),
                                                        auth->sql_audit(), bus->get(), logger));
  http::Router router;
  (void)auth->AddRoutes(router);
  (void)tracker->AddRoutes(router);
  http::Server server(
      http::ServerOptions{
          .port = 0, .io_threads = 2, .blocking_threads = 8, .max_body_bytes = 64 << 20},
      std::move(router), logger);
  server.Use(auth->auth_middleware());
  if (!server.Start().ok()) return 1;
  Bench b;
  b.base = "http://127.0.0.1:" + std::to_string(server.port());
  auto reg = b.Json("POST", "/api/v1/auth/register",
                    R"({"email":"bench@example.com","password":"password-123"})");
  b.token = json::value_to<std::string>(reg.at("access_token"));
  std::string project = json::value_to<std::string>(
      b.Json("POST", "/api/v1/projects", R"({"name":"bench"})").at("id"));
  auto new_run = [&](const std::string& extra = "") {
    return json::value_to<std::string>(
        b.Json("POST", "/api/v1/runs", "{\"project_id\":\"" + project + "\"" + extra + "}")
            .at("id"));
  };
  std::printf("track bench on %s (%s), %d client threads\n", pg ? "PostgreSQL" : "SQLite",
              pg ? "server" : db_url.c_str(), threads);

  // ---- ingest: T runs in parallel, batches of 10,000 points ----
  {
    constexpr int kBatch = 10'000;
    const int batches_per_thread = pg ? 10 : 25;
    std::vector<std::string> runs;
    for (int t = 0; t < threads; ++t) runs.push_back(new_run());
    // Bodies are built before the clock starts: the client's JSON writing is not the server's.
    std::vector<std::vector<std::string>> bodies(threads);
    for (int t = 0; t < threads; ++t) {
      for (int i = 0; i < batches_per_thread; ++i) {
        bodies[t].push_back(
            Batch(i % 2 == 0 ? "loss" : "acc", static_cast<int64_t>(i) * kBatch, kBatch));
      }
    }
    auto start = Clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (auto& body : bodies[t])
          b.Call("POST", "/api/v1/runs/" + runs[t] + "/metrics", std::move(body));
      });
    }
    for (auto& w : workers) w.join();
    double secs = Ms(Clock::now() - start) / 1000;
    double rate = static_cast<double>(threads) * batches_per_thread * kBatch / secs;
    Report(pg ? "ingest, PostgreSQL (points/s)" : "ingest, SQLite (points/s)", rate, "pts/s",
           pg ? 300'000 : 1'000'000, true);
  }

  // ---- history: 1M points of one key downsampled to 1,000 ----
  std::string hist_run = new_run();
  {
    constexpr int kBatch = 50'000;
    for (int64_t s = 0; s < history_points; s += kBatch) {
      int n = static_cast<int>(std::min<int64_t>(kBatch, history_points - s));
      b.Call("POST", "/api/v1/runs/" + hist_run + "/metrics", Batch("val_loss", s, n));
    }
    // First reads (nothing in the series cache): a long series comes from the rollups kept at
    // ingest; one of 250,000 steps is still loaded point by point (too short for the rollups
    // at 1,000 points, see ChooseBucketGrid) and cached.
    std::string cold_run = new_run();
    for (int64_t s = 0; s < history_points; s += kBatch) {
      int n = static_cast<int>(std::min<int64_t>(kBatch, history_points - s));
      b.Call("POST", "/api/v1/runs/" + cold_run + "/metrics", Batch("cold", s, n));
    }
    for (int64_t s = 0; s < 250'000; s += kBatch) {
      b.Call("POST", "/api/v1/runs/" + cold_run + "/metrics", Batch("mid", s, kBatch));
    }
    auto t0 = Clock::now();
    auto cold = b.Json("GET", "/api/v1/runs/" + cold_run + "/metrics/cold?max_points=1000");
    double cold_ms = Ms(Clock::now() - t0);
    t0 = Clock::now();
    b.Json("GET", "/api/v1/runs/" + cold_run + "/metrics/mid?max_points=1000");
    double mid_ms = Ms(Clock::now() - t0);
    std::vector<double> warm;
    for (int i = 0; i < 20; ++i) {
      auto t = Clock::now();
      auto r = b.Json("GET", "/api/v1/runs/" + hist_run + "/metrics/val_loss?max_points=1000");
      warm.push_back(Ms(Clock::now() - t));
      if (r.at("points").as_array().size() > 1000) return 1;
    }
    std::sort(warm.begin(), warm.end());
    std::printf(
        "  (history total %lld points; first read of an uncached key %.1f ms; of an uncached "
        "250k-point key %.1f ms)\n",
        static_cast<long long>(cold.at("total").as_int64()), cold_ms, mid_ms);
    Report("history 1M -> 1,000 points, median over 20 (ms)", warm[warm.size() / 2], "ms", 20,
           false);
  }

  // ---- comparison: 100 runs x 1 key ----
  {
    std::vector<std::string> runs;
    json::array ids;
    for (int i = 0; i < 100; ++i) {
      runs.push_back(new_run());
      b.Call("POST", "/api/v1/runs/" + runs.back() + "/metrics", Batch("loss", 0, 2000));
      ids.emplace_back(runs.back());
    }
    std::string body = json::serialize(
        json::object{{"run_ids", ids}, {"keys", json::array{"loss"}}, {"max_points", 500}});
    b.Call("POST", "/api/v1/metrics/compare", body);  // warm-up
    std::vector<double> t;
    for (int i = 0; i < 10; ++i) {
      auto s = Clock::now();
      b.Call("POST", "/api/v1/metrics/compare", body);
      t.push_back(Ms(Clock::now() - s));
    }
    std::sort(t.begin(), t.end());
    Report("compare 100 runs x 1 key (2,000 points each), median (ms)", t[t.size() / 2], "ms", 100,
           false);
  }

  // ---- search: R runs x 100 params, filter on 2 params + 1 metric ----
  {
    std::string sproject = json::value_to<std::string>(
        b.Json("POST", "/api/v1/projects", R"({"name":"search"})").at("id"));
    // Set-up through SQL (creating 10,000 runs over HTTP measures nothing of interest).
    int64_t now = Env::Default().NowMicros();
    std::vector<int64_t> key_ids;
    for (int k = 0; k < 100; ++k) {
      std::string name = "p" + std::to_string(k);
      (void)db->Exec("INSERT INTO track_keys(name) VALUES (?) ON CONFLICT (name) DO NOTHING",
                     {name});
      key_ids.push_back((*db->Query("SELECT id FROM track_keys WHERE name = ?", {name}))[0].Int(0));
    }
    (void)db->Exec("INSERT INTO track_keys(name) VALUES ('score') ON CONFLICT (name) DO NOTHING");
    int64_t score_key = (*db->Query("SELECT id FROM track_keys WHERE name = 'score'"))[0].Int(0);
    std::string ws = json::value_to<std::string>(reg.at("workspace").at("id"));
    std::string user = json::value_to<std::string>(reg.at("user").at("id"));
    auto setup_start = Clock::now();
    for (int base = 0; base < search_runs; base += 500) {
      Status st = db->Transaction([&](store::Transaction& tx) -> Status {
        for (int i = base; i < std::min(search_runs, base + 500); ++i) {
          ASSIGN_OR_RETURN(auto rows,
                           tx.Query("INSERT INTO track_runs(workspace_id, project_id, name, "
                                    "status, created_by, start_time, heartbeat_at) VALUES "
                                    "(?, ?, ?, 'finished', ?, ?, ?) RETURNING id",
                                    {ws, std::stoll(sproject), "run-" + std::to_string(i), user,
                                     now + i, now + i}));
          int64_t run = rows[0].Int(0);
          std::string sql = "INSERT INTO track_params(run_id, key_id, num, txt) VALUES ";
          store::Params params;
          for (int k = 0; k < 100; ++k) {
            double v = static_cast<double>((i * 7919 + k * 104729) % 10000) / 10000.0;
            sql += k == 0 ? "(?,?,?,?)" : ",(?,?,?,?)";
            params.insert(params.end(), {run, key_ids[k], v, std::to_string(v)});
          }
          RETURN_IF_ERROR(tx.Exec(sql, params).status());
          double score = static_cast<double>((i * 31) % 1000) / 1000.0;
          RETURN_IF_ERROR(
              tx.Exec("INSERT INTO track_summary(run_id, key_id, last_step, last_value, "
                      "last_ts, min_value, max_value, count, version) VALUES (?, ?, 0, "
                      "?, 0, ?, ?, 1, 1)",
                      {run, score_key, score, score, score})
                  .status());
        }
        return Status::Ok();
      });
      if (!st.ok()) {
        std::fprintf(stderr, "search set-up: %s\n", st.ToString().c_str());
        return 1;
      }
    }
    if (pg) (void)db->ExecScript("ANALYZE");
    std::printf("  (search set-up: %d runs x 100 params in %.1f s)\n", search_runs,
                Ms(Clock::now() - setup_start) / 1000);
    std::string body = json::serialize(
        json::object{{"project_id", sproject},
                     {"filter", "params.p3 > 0.5 and params.p42 < 0.3 and metrics.score >= 0.9"},
                     {"order_by", "metrics.score desc"},
                     {"limit", 50}});
    auto first = b.Json("POST", "/api/v1/runs/search", body);
    std::vector<double> t;
    for (int i = 0; i < 10; ++i) {
      auto s = Clock::now();
      b.Call("POST", "/api/v1/runs/search", body);
      t.push_back(Ms(Clock::now() - s));
    }
    std::sort(t.begin(), t.end());
    std::printf("  (first page: %zu runs)\n", first.at("runs").as_array().size());
    Report("search 10k runs x 100 params, 2 params + 1 metric, median (ms)", t[t.size() / 2], "ms",
           50, false);
  }
  server.Shutdown();
  return 0;
}
