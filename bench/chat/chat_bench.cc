// chat_bench: load generator for the chat service (docs/chat.md, spec "Performance goals").
//
// Runs the chat service in process behind a real http::Server (port 0, auth middleware) on
// SQLite or PostgreSQL with the embedded bus, sets up `--users` users in one workspace and
// `--chats` group chats containing all of them, opens `--streams` SSE connections (spread over
// the users), sends `--rate` messages per second for `--seconds` from random members into random
// chats, and reports the send latency, the send→delivered latency over every (message, stream)
// pair, missing deliveries, and then the latency of `--queries` searches over a corpus of
// `--corpus` messages. Prints the spec's targets beside the measurements. Not a test.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/chat/chat_service.h"
#include "atrium/core/env.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/store/database.h"
#include "atrium/store/migrations.h"

namespace {

namespace json = boost::json;
using namespace atrium;
using Clock = std::chrono::steady_clock;

struct Args {
  int users = 100, chats = 5, streams = 200, rate = 200, seconds = 10, corpus = 20000,
      queries = 300;
  // Messages written straight into the tables (and the search index) before the queries, to
  // reach a large corpus quickly: bypasses HTTP and the bus (a storage fixture, not a load).
  int bulk = 0;
  std::string db;  // empty: SQLite in the work dir
  std::string dir = "/tmp/atrium-chat-bench";
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--users")
      a.users = std::stoi(v);
    else if (k == "--chats")
      a.chats = std::stoi(v);
    else if (k == "--streams")
      a.streams = std::stoi(v);
    else if (k == "--rate")
      a.rate = std::stoi(v);
    else if (k == "--seconds")
      a.seconds = std::stoi(v);
    else if (k == "--corpus")
      a.corpus = std::stoi(v);
    else if (k == "--bulk")
      a.bulk = std::stoi(v);
    else if (k == "--queries")
      a.queries = std::stoi(v);
    else if (k == "--db")
      a.db = v;
    else if (k == "--dir")
      a.dir = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

void Die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "chat_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

class Api {
 public:
  Api(http::HttpClient& client, std::string base) : client_(client), base_(std::move(base)) {}
  json::value Call(const std::string& method, const std::string& path, const json::value& body,
                   const std::string& token, int* status = nullptr) {
    http::ClientRequest req{.method = method, .url = base_ + path};
    if (!body.is_null()) {
      req.body = json::serialize(body);
      req.headers.Set("content-type", "application/json");
    }
    if (!token.empty()) req.headers.Set("authorization", "Bearer " + token);
    auto r = client_.SendSync(std::move(req));
    if (!r.ok()) Die(r.status(), path.c_str());
    if (status != nullptr) *status = r->status;
    boost::system::error_code ec;
    return json::parse(r->body, ec);
  }
  const std::string& base() const { return base_; }

 private:
  http::HttpClient& client_;
  std::string base_;
};

// Counts deliveries of one SSE stream and records their latency.
struct StreamStats {
  std::mutex mu;
  std::string buf;
  std::vector<double> latencies_ms;  // guarded by mu
  uint64_t delivered = 0;
  bool measuring = true;
};

}  // namespace

int main(int argc, char** argv) {
  Args args = Parse(argc, argv);
  Env& env = Env::Default();
  // Client and server share this process: two descriptors per SSE stream.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &lim);
  }
  std::printf("open file limit %llu\n", static_cast<unsigned long long>(lim.rlim_cur));
  std::string cmd = "rm -rf '" + args.dir + "' && mkdir -p '" + args.dir + "'";
  if (std::system(cmd.c_str()) != 0) return 1;
  std::string url = args.db.empty() ? "sqlite://" + args.dir + "/chat.db" : args.db;
  auto db_or = store::OpenDatabase(url, {.pool_size = 8});
  Die(db_or.status(), "database");
  auto db = std::move(*db_or);
  if (db->dialect() == store::Dialect::kPostgres) {
    Die(db->ExecScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public"), "reset schema");
  }
  store::MigrationSet set;
  Die(set.Add(store::FoundationMigrations()), "migrations");
  Die(set.Add(auth::AuthMigrations()), "migrations");
  Die(set.Add(chat::ChatMigrations()), "migrations");
  store::Migrator migrator(*db, set, env);
  Die(migrator.Up().status(), "migrate");
  auto bus_or = bus::OpenEmbeddedBus(env, {.data_dir = args.dir + "/bus"});
  Die(bus_or.status(), "bus");
  auto bus = std::move(*bus_or);
  auth::AuthOptions ao;
  ao.jwt_secret = std::string(40, 'b');
  ao.password_cost = auth::PasswordCost::kTest;
  ao.rate_limits = {{"auth", *auth::ParseRateLimit("1000000/1m")},
                    {"login", *auth::ParseRateLimit("1000000/1m")},
                    {"api", *auth::ParseRateLimit("1000000/1m")}};
  auto auth_or = auth::AuthService::Create(ao, *db, env);
  Die(auth_or.status(), "auth");
  auto auth = std::move(*auth_or);
  MetricsRegistry metrics;
  auth::AuthService* a = auth.get();
  chat::ChatOptions co;
  co.stream_queue_bytes = 4 << 20;
  auto chat_or = chat::ChatService::Create(
      co, *db, *bus, env, [a](const http::Request& r) { return a->Authenticate(r); }, &metrics);
  Die(chat_or.status(), "chat");
  auto chat = std::move(*chat_or);
  http::Router router;
  Die(auth->AddRoutes(router), "routes");
  Die(chat->AddRoutes(router), "routes");
  http::Server server(
      http::ServerOptions{
          .port = 0, .io_threads = 2, .blocking_threads = 16, .max_connections = 20000},
      std::move(router));
  server.Use(auth->auth_middleware());
  server.Use(auth->rate_limit_middleware());
  Die(server.Start(), "server");

  http::HttpClient client(http::ClientOptions{.threads = 2, .max_idle_per_origin = 256});
  Api api(client, "http://127.0.0.1:" + std::to_string(server.port()));

  // ---- set-up: users, chats ----
  std::printf("setting up %d users, %d chats of %d members (%s)...\n", args.users, args.chats,
              args.users, db->dialect() == store::Dialect::kPostgres ? "postgres" : "sqlite");
  std::vector<std::string> tokens, ids;
  json::value owner = api.Call(
      "POST", "/api/v1/auth/register",
      json::object{{"email", "owner@bench.local"}, {"password", "password-123"}, {"name", "owner"}},
      "");
  std::string ws(owner.at("workspace").at("id").as_string());
  tokens.emplace_back(owner.at("access_token").as_string());
  ids.emplace_back(owner.at("user").at("id").as_string());
  for (int i = 1; i < args.users; ++i) {
    json::value inv = api.Call("POST", "/api/v1/workspaces/" + ws + "/invites",
                               json::object{{"role", "member"}}, tokens[0]);
    json::value u = api.Call("POST", "/api/v1/auth/register",
                             json::object{{"email", "u" + std::to_string(i) + "@bench.local"},
                                          {"password", "password-123"},
                                          {"name", "user" + std::to_string(i)},
                                          {"invite_code", inv.at("code")}},
                             "");
    tokens.emplace_back(u.at("access_token").as_string());
    ids.emplace_back(u.at("user").at("id").as_string());
  }
  std::vector<std::string> chats;
  for (int c = 0; c < args.chats; ++c) {
    json::array members;
    for (size_t i = 1; i < ids.size(); ++i) members.emplace_back(ids[i]);
    json::value r = api.Call(
        "POST", "/api/v1/chats",
        json::object{{"type", "group"}, {"name", "room" + std::to_string(c)}, {"members", members}},
        tokens[0]);
    chats.emplace_back(r.at("id").as_string());
  }

  // ---- SSE streams ----
  std::vector<std::unique_ptr<StreamStats>> stats;
  std::atomic<int> opened{0};
  auto cancel = std::make_shared<http::CancelToken>();
  for (int s = 0; s < args.streams; ++s) {
    stats.push_back(std::make_unique<StreamStats>());
    StreamStats* st = stats.back().get();
    http::ClientRequest req{.url = api.base() + "/api/v1/events"};
    req.headers.Set("authorization", "Bearer " + tokens[s % tokens.size()]);
    req.read_timeout = std::chrono::minutes(10);
    req.cancel = cancel;
    req.on_headers = [&opened](int, const http::Headers&) { ++opened; };
    req.on_data = [st](std::string_view chunk) {
      int64_t now = NowNs();
      std::lock_guard lock(st->mu);
      st->buf += chunk;
      size_t end;
      while ((end = st->buf.find("\n\n")) != std::string::npos) {
        std::string_view ev(st->buf.data(), end);
        if (ev.find("event: message.created") != std::string_view::npos) {
          size_t t = ev.find("t=");
          if (t != std::string_view::npos) {
            int64_t sent = std::strtoll(ev.data() + t + 2, nullptr, 10);
            ++st->delivered;
            if (st->measuring) st->latencies_ms.push_back(static_cast<double>(now - sent) / 1e6);
          }
        }
        st->buf.erase(0, end + 2);
      }
      return true;
    };
    client.Send(std::move(req), [](Result<http::ClientResponse>) {});
  }
  for (int i = 0; i < 600 && opened < args.streams; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::printf("%d SSE streams open\n", opened.load());

  // ---- paced sends ----
  std::vector<double> send_ms;
  std::mutex send_mu;
  std::atomic<int> in_flight{0}, errors{0};
  std::mt19937 rng(42);
  const int total = args.rate * args.seconds;
  auto start = Clock::now();
  for (int i = 0; i < total; ++i) {
    auto due = start + std::chrono::microseconds(static_cast<int64_t>(1e6 * i / args.rate));
    std::this_thread::sleep_until(due);
    int u = static_cast<int>(rng() % tokens.size());
    const std::string& c = chats[rng() % chats.size()];
    int64_t t0 = NowNs();
    http::ClientRequest req{.method = "POST",
                            .url = api.base() + "/api/v1/chats/" + c + "/messages"};
    req.headers.Set("authorization", "Bearer " + tokens[u]);
    req.headers.Set("content-type", "application/json");
    req.body = json::serialize(json::object{
        {"content", "t=" + std::to_string(t0) + " load message number " + std::to_string(i)}});
    ++in_flight;
    client.Send(std::move(req), [&, t0](Result<http::ClientResponse> r) {
      double ms = static_cast<double>(NowNs() - t0) / 1e6;
      if (!r.ok() || r->status != 201) ++errors;
      {
        std::lock_guard lock(send_mu);
        send_ms.push_back(ms);
      }
      --in_flight;
    });
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (int i = 0; i < 200 && in_flight > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // Let deliveries drain.
  uint64_t expected = static_cast<uint64_t>(total) * static_cast<uint64_t>(opened.load());
  for (int i = 0; i < 100; ++i) {
    uint64_t got = 0;
    for (auto& s : stats) {
      std::lock_guard lock(s->mu);
      got += s->delivered;
    }
    if (got >= expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::vector<double> delivered_ms;
  uint64_t delivered = 0;
  for (auto& s : stats) {
    std::lock_guard lock(s->mu);
    s->measuring = false;
    delivered += s->delivered;
    delivered_ms.insert(delivered_ms.end(), s->latencies_ms.begin(), s->latencies_ms.end());
  }
  std::printf("\nsent %d messages in %.1f s (%.0f/s target %d/s), %d errors\n", total, elapsed,
              total / elapsed, args.rate, errors.load());
  std::printf("send latency:       p50 %7.2f ms  p99 %7.2f ms   (goal p99 <= 20 ms)\n",
              Percentile(send_ms, 0.5), Percentile(send_ms, 0.99));
  std::printf(
      "send->delivered:    p50 %7.2f ms  p99 %7.2f ms   (goal p99 <= 50 ms) over %zu deliveries\n",
      Percentile(delivered_ms, 0.5), Percentile(delivered_ms, 0.99), delivered_ms.size());
  std::printf("deliveries:         %llu of %llu expected, resyncs %llu\n",
              static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(expected),
              static_cast<unsigned long long>(chat->resyncs()));
  cancel->Cancel();

  // ---- search over a corpus ----
  static const char* kWords[] = {"deploy",  "release", "budget",   "kernel",  "database", "meeting",
                                 "invoice", "latency", "rollback", "cluster", "gradient", "tensor",
                                 "coffee",  "holiday", "review",   "roadmap", "incident", "pager"};
  const int kWordCount = sizeof(kWords) / sizeof(kWords[0]);
  std::printf("\nloading a search corpus of %d messages...\n", args.corpus);
  std::atomic<int> next{0};
  std::vector<std::thread> loaders;
  for (int w = 0; w < 8; ++w) {
    loaders.emplace_back([&, w] {
      std::mt19937 r(w);
      for (int i; (i = next++) < args.corpus;) {
        std::string text;
        for (int k = 0; k < 8; ++k) text += std::string(kWords[r() % kWordCount]) + " ";
        text += "n" + std::to_string(i);
        api.Call("POST", "/api/v1/chats/" + chats[i % chats.size()] + "/messages",
                 json::object{{"content", text}}, tokens[i % tokens.size()]);
      }
    });
  }
  for (auto& t : loaders) t.join();
  for (int i = 0; i < 600 && chat->indexer_state().lag_records > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (args.bulk > 0) {
    std::printf("bulk-loading %d more messages straight into the tables...\n", args.bulk);
    const bool postgres = db->dialect() == store::Dialect::kPostgres;
    auto bulk_start = Clock::now();
    std::map<std::string, int64_t> last_seq;
    for (const auto& c : chats) {
      auto rows = db->Query("SELECT last_seq FROM chat_chats WHERE id = ?", {c});
      Die(rows.status(), "last_seq");
      last_seq[c] = (*rows)[0].Int(0);
    }
    std::mt19937 r(7);
    const int64_t now_us = env.NowMicros();
    constexpr int kBatch = 5000;
    for (int done = 0; done < args.bulk; done += kBatch) {
      Die(db->Transaction([&](store::Transaction& tx) -> Status {
        for (int i = done; i < std::min(args.bulk, done + kBatch); ++i) {
          std::string text;
          for (int k = 0; k < 8; ++k) text += std::string(kWords[r() % kWordCount]) + " ";
          text += "b" + std::to_string(i);
          const std::string& c = chats[i % chats.size()];
          ASSIGN_OR_RETURN(
              store::Rows ins,
              tx.Query("INSERT INTO chat_messages (chat_id, seq, sender_id, content, reply_to,"
                       " attachments, mentions, idempotency_key, reply_count, created_at)"
                       " VALUES (?, ?, ?, ?, NULL, '[]', '[]', NULL, 0, ?) RETURNING id",
                       {c, ++last_seq[c], ids[i % ids.size()], text, now_us - args.bulk + i}));
          RETURN_IF_ERROR(tx.Exec(postgres
                                      ? "INSERT INTO chat_search (message_id, tsv) VALUES"
                                        " (?, to_tsvector('simple', ?))"
                                      : "INSERT INTO chat_search (rowid, content) VALUES (?, ?)",
                                  {ins[0].Int(0), text})
                              .status());
        }
        return Status::Ok();
      }),
          "bulk load");
    }
    for (const auto& [c, seq] : last_seq) {
      Die(db->Exec("UPDATE chat_chats SET last_seq = ? WHERE id = ?", {seq, c}).status(),
          "last_seq");
    }
    if (postgres) Die(db->ExecScript("ANALYZE"), "analyze");
    std::printf("bulk-loaded in %.1f s\n",
                std::chrono::duration<double>(Clock::now() - bulk_start).count());
  }
  std::vector<double> search_ms;
  for (int i = 0; i < args.queries; ++i) {
    std::string q = std::string(kWords[rng() % kWordCount]).substr(0, 4 + rng() % 3) + "+" +
                    kWords[rng() % kWordCount];
    auto t0 = Clock::now();
    int status = 0;
    api.Call("GET", "/api/v1/search/messages?limit=20&q=" + q, nullptr,
             tokens[rng() % tokens.size()], &status);
    search_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (status != 200) ++errors;
  }
  std::printf(
      "search latency:     p50 %7.2f ms  p99 %7.2f ms   (goal p99 <= 50 ms over 1M messages; "
      "corpus here %d + %d bulk + load)\n",
      Percentile(search_ms, 0.5), Percentile(search_ms, 0.99), args.corpus, args.bulk);
  server.Shutdown();
  chat->Stop();
  return errors.load() == 0 ? 0 : 1;
}
