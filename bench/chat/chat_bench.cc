// chat_bench: load generator for the chat service (docs/chat.md, spec "Performance goals").
//
// Runs the chat service in process behind a real http::Server (port 0, auth middleware) on
// SQLite or PostgreSQL with the embedded bus, sets up `--users` users in one workspace and
// `--chats` group chats containing all of them, opens `--streams` SSE connections (spread over
// the users), sends `--rate` messages per second for `--seconds` from random members into random
// chats, and reports the send latency, the send→delivered latency over every (message, stream)
// pair, missing deliveries, and then the latency of `--queries` searches over a corpus of
// `--corpus` messages. Prints the spec's targets beside the measurements. Not a test.
// `--idle-streams` more connections stay open during the load, held by users of a second
// workspace (people online elsewhere: they get heartbeats, none of the load's messages), so the
// node holds ~10,000 connections while each message fans out to the 100 members' streams. They
// are opened by a second process (this binary started again in its holder mode, as remote
// clients would be), so each costs the server's process one descriptor, not two.
//
// The corpus is chat-like text: 4-16 words per message drawn from a Zipf-distributed (s = 1)
// vocabulary of 3,000 words (about 130 common English chat words at the top ranks, then
// generated words), so a few words are in many messages and most are rare. Queries are one or
// two words drawn by the same law from rank 20 on (people search for content words), the first
// often shortened to a 4-6 letter prefix; they run newest first (the default), by relevance, and
// newest first within one chat.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
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
  // Connections held open during the run by `idle_users` users of a second workspace (other
  // people online: they receive none of the load's messages, only heartbeats).
  int idle_streams = 0, idle_users = 100;
  // Messages written straight into the tables (and the search index) before the queries, to
  // reach a large corpus quickly: bypasses HTTP and the bus (a storage fixture, not a load).
  int bulk = 0;
  std::string db;  // empty: SQLite in the work dir
  std::string dir = "/tmp/atrium-chat-bench";
  // Holder mode (--hold 1): the process that keeps the idle connections open (HoldStreams).
  bool hold = false;
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
    else if (k == "--idle-streams")
      a.idle_streams = std::stoi(v);
    else if (k == "--idle-users")
      a.idle_users = std::stoi(v);
    else if (k == "--db")
      a.db = v;
    else if (k == "--dir")
      a.dir = v;
    else if (k == "--hold")
      a.hold = v == "1";
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

// The users of a new workspace: the first registers it, the others join by invitation.
struct Workspace {
  std::vector<std::string> tokens, ids;
};

Workspace RegisterWorkspace(Api& api, const std::string& prefix, int users) {
  Workspace w;
  std::string ws;
  for (int i = 0; i < users; ++i) {
    json::object body{{"email", prefix + std::to_string(i) + "@bench.local"},
                      {"password", "password-123"},
                      {"name", prefix + std::to_string(i)}};
    if (i > 0) {
      body["invite_code"] = api.Call("POST", "/api/v1/workspaces/" + ws + "/invites",
                                     json::object{{"role", "member"}}, w.tokens[0])
                                .at("code");
    }
    json::value u = api.Call("POST", "/api/v1/auth/register", body, "");
    if (i == 0) ws = std::string(u.at("workspace").at("id").as_string());
    w.tokens.emplace_back(u.at("access_token").as_string());
    w.ids.emplace_back(u.at("user").at("id").as_string());
  }
  return w;
}

// A Zipf-distributed vocabulary: word(rank) with P(rank) proportional to 1 / (rank + 1).
class Vocabulary {
 public:
  static constexpr int kSize = 3000;

  Vocabulary() {
    static const char* kCommon[] = {
        "the",      "to",      "i",        "you",      "a",        "and",      "is",
        "it",       "that",    "we",       "for",      "on",       "in",       "this",
        "of",       "be",      "can",      "do",       "have",     "with",     "not",
        "are",      "just",    "so",       "but",      "what",     "at",       "if",
        "will",     "me",      "my",       "was",      "ok",       "yes",      "no",
        "think",    "know",    "get",      "like",     "now",      "need",     "today",
        "tomorrow", "meeting", "deploy",   "release",  "build",    "test",     "fix",
        "bug",      "review",  "merge",    "branch",   "issue",    "ticket",   "customer",
        "team",     "call",    "time",     "week",     "please",   "thanks",   "sure",
        "lunch",    "coffee",  "server",   "database", "latency",  "error",    "log",
        "update",   "check",   "looks",    "good",     "done",     "working",  "broken",
        "again",    "still",   "here",     "there",    "about",    "after",    "before",
        "should",   "would",   "could",    "maybe",    "later",    "soon",     "morning",
        "friday",   "monday",  "budget",   "invoice",  "roadmap",  "incident", "pager",
        "kernel",   "cluster", "gradient", "tensor",   "rollback", "holiday",  "design",
        "draft",    "doc",     "slides",   "demo",     "launch",   "metrics",  "dashboard",
        "alert",    "queue",   "cache",    "config",   "staging",  "prod",     "migration",
        "schema",   "client",  "api",      "endpoint", "timeout",  "retry",    "network"};
    static const char* kSyllables[] = {"ka",  "lo",  "mi",  "ren", "tor", "vel", "sa",  "quin",
                                       "dra", "po",  "lem", "zu",  "fi",  "gar", "nol", "ber",
                                       "chi", "mon", "tas", "ul",  "vi",  "rop", "sen", "dal",
                                       "ex",  "kri", "wen", "yor", "bas", "hel", "nu",  "ost"};
    std::set<std::string> seen;
    for (const char* w : kCommon) {
      if (seen.insert(w).second) words_.emplace_back(w);
    }
    std::mt19937 r(1234);
    const int n = sizeof(kSyllables) / sizeof(kSyllables[0]);
    while (static_cast<int>(words_.size()) < kSize) {
      std::string w;
      for (int k = 0, len = 2 + static_cast<int>(r() % 2); k < len; ++k) w += kSyllables[r() % n];
      if (seen.insert(w).second) words_.push_back(std::move(w));
    }
    double sum = 0;
    for (int i = 0; i < kSize; ++i) cdf_.push_back(sum += 1.0 / (i + 1));
    for (double& c : cdf_) c /= sum;
  }
  // A word by the Zipf law over ranks [min_rank, kSize).
  const std::string& Draw(std::mt19937& r, int min_rank = 0) const {
    std::uniform_real_distribution<double> u(min_rank == 0 ? 0.0 : cdf_[min_rank - 1], 1.0);
    size_t i = std::lower_bound(cdf_.begin(), cdf_.end(), u(r)) - cdf_.begin();
    return words_[std::min<size_t>(i, kSize - 1)];
  }
  // A chat message of 4-16 words.
  std::string Message(std::mt19937& r) const {
    std::string text;
    for (int k = 0, n = 4 + static_cast<int>(r() % 13); k < n; ++k) {
      text += (k == 0 ? "" : " ") + Draw(r);
    }
    return text;
  }
  // One or two content words, the first often a 4-6 letter prefix (the index matches prefixes).
  std::string Query(std::mt19937& r) const {
    std::string q = Draw(r, 20);
    if (q.size() > 6 && r() % 2 == 0) q.resize(4 + r() % 3);
    if (r() % 2 == 0) q += "+" + Draw(r, 20);
    return q;
  }
  size_t size() const { return words_.size(); }

 private:
  std::vector<std::string> words_;
  std::vector<double> cdf_;
};

// Raises the soft descriptor limit to the hard one; returns the limit in force.
unsigned long long RaiseFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &lim);
  }
  return static_cast<unsigned long long>(lim.rlim_cur);
}

// Holder mode: reads "<base url> <tokens file> <count>" on stdin, opens `count` SSE streams
// (round robin over the tokens, one a line), reads and drops what they send, answers
// "held <opened> <failed>" on stdout once every stream is open or has failed (at most 120 s),
// and closes them and exits when stdin closes.
int HoldStreams() {
  RaiseFileLimit();
  char line[4096];
  if (std::fgets(line, sizeof line, stdin) == nullptr) return 1;
  char base[2048], path[2048];
  int count = 0;
  if (std::sscanf(line, "%2047s %2047s %d", base, path, &count) != 3) return 1;
  std::vector<std::string> tokens;
  std::ifstream in(path);
  for (std::string t; std::getline(in, t);) {
    if (!t.empty()) tokens.push_back(t);
  }
  if (tokens.empty()) return 1;
  http::HttpClient client(http::ClientOptions{.threads = 2, .max_idle_per_origin = 8});
  auto cancel = std::make_shared<http::CancelToken>();
  std::atomic<int> opened{0}, ended{0};
  for (int s = 0; s < count; ++s) {
    http::ClientRequest req{.url = std::string(base) + "/api/v1/events"};
    req.headers.Set("authorization", "Bearer " + tokens[s % tokens.size()]);
    req.read_timeout = std::chrono::minutes(30);
    req.cancel = cancel;
    req.on_headers = [&opened](int status, const http::Headers&) {
      if (status == 200) ++opened;
    };
    req.on_data = [](std::string_view) { return true; };
    client.Send(std::move(req), [&ended](Result<http::ClientResponse>) { ++ended; });
  }
  for (int i = 0; i < 2400 && opened + ended < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::printf("held %d %d\n", opened.load(), ended.load());
  std::fflush(stdout);
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
  }
  cancel->Cancel();
  return 0;
}

// The holder process (HoldStreams), started before this process opens anything so that it
// inherits no descriptor but the two pipes.
class Holder {
 public:
  bool Start() {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    char exe[] = "/proc/self/exe";
    char flag[] = "--hold";
    char one[] = "1";
    char* argv[] = {exe, flag, one, nullptr};
    int rc = posix_spawn(&pid_, exe, &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(to_child[0]);
    ::close(from_child[1]);
    if (rc != 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      return false;
    }
    to_ = ::fdopen(to_child[1], "w");
    from_ = ::fdopen(from_child[0], "r");
    return to_ != nullptr && from_ != nullptr;
  }
  // Opens `count` streams; returns {opened, failed} once the holder reports.
  std::pair<int, int> Open(const std::string& base, const std::string& tokens_file, int count) {
    std::fprintf(to_, "%s %s %d\n", base.c_str(), tokens_file.c_str(), count);
    std::fflush(to_);
    char line[256];
    int opened = 0, failed = count;
    if (std::fgets(line, sizeof line, from_) != nullptr) {
      (void)std::sscanf(line, "held %d %d", &opened, &failed);
    }
    return {opened, failed};
  }
  // Closes the streams (the holder exits).
  void Stop() {
    if (to_ != nullptr) std::fclose(to_);
    to_ = nullptr;
    if (from_ != nullptr) std::fclose(from_);
    from_ = nullptr;
    if (pid_ > 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = 0;
    }
  }
  ~Holder() { Stop(); }

 private:
  pid_t pid_ = 0;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
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
  if (args.hold) return HoldStreams();
  Holder holder;
  if (args.idle_streams > 0 && !holder.Start()) {
    std::fprintf(stderr, "chat_bench: cannot start the holder process\n");
    return 1;
  }
  Env& env = Env::Default();
  // The load's streams have both ends in this process (two descriptors each), the idle ones one.
  std::printf("open file limit %llu\n", RaiseFileLimit());
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

  // Few idle pooled connections: descriptors go to the streams (two per stream in one process).
  http::HttpClient client(http::ClientOptions{.threads = 2, .max_idle_per_origin = 64});
  Api api(client, "http://127.0.0.1:" + std::to_string(server.port()));

  // ---- set-up: users, chats ----
  std::printf("setting up %d users, %d chats of %d members (%s)...\n", args.users, args.chats,
              args.users, db->dialect() == store::Dialect::kPostgres ? "postgres" : "sqlite");
  Workspace main_ws = RegisterWorkspace(api, "u", args.users);
  const std::vector<std::string>& tokens = main_ws.tokens;
  const std::vector<std::string>& ids = main_ws.ids;
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
  // ---- idle connections: a second workspace's users, online but not in the load's chats ----
  int idle_opened = 0, idle_failed = 0;
  if (args.idle_streams > 0) {
    const std::vector<std::string> idle_tokens =
        RegisterWorkspace(api, "idle", std::max(1, std::min(args.idle_users, args.idle_streams)))
            .tokens;
    const std::string tokens_file = args.dir + "/idle-tokens";
    {
      std::ofstream out(tokens_file);
      for (const auto& t : idle_tokens) out << t << "\n";
    }
    std::tie(idle_opened, idle_failed) =
        holder.Open(api.base(), tokens_file, args.idle_streams);  // waits until they are open
  }
  for (int i = 0; i < 2400 && opened < args.streams; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::printf("%d SSE streams open (+ %d idle of %d held by a second process; %d failed)\n",
              opened.load(), idle_opened, args.idle_streams, idle_failed);

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
  std::printf(
      "connections:        %zu SSE streams open on the server at the end of the load"
      " (%d + %d idle opened)\n",
      chat->open_streams(), opened.load(), idle_opened);
  cancel->Cancel();
  holder.Stop();

  // ---- search over a corpus ----
  const Vocabulary vocabulary;
  std::printf("\nloading a search corpus of %d messages (Zipf over %zu words)...\n", args.corpus,
              vocabulary.size());
  std::atomic<int> next{0};
  std::vector<std::thread> loaders;
  for (int w = 0; w < 8; ++w) {
    loaders.emplace_back([&, w] {
      std::mt19937 r(w);
      for (int i; (i = next++) < args.corpus;) {
        std::string text = vocabulary.Message(r);
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
          std::string text = vocabulary.Message(r);
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
  // Newest first (the default), by relevance, and newest first within one chat.
  struct SearchCase {
    const char* label;
    std::string extra;
    bool one_chat;
  };
  const SearchCase cases[] = {{"search (newest):   ", "", false},
                              {"search (relevance):", "&order=relevance", false},
                              {"search (one chat): ", "", true}};
  std::mt19937 qrng(99);
  for (const auto& sc : cases) {
    std::vector<double> search_ms;
    double results = 0;
    for (int i = 0; i < args.queries; ++i) {
      std::string path = "/api/v1/search/messages?limit=20&q=" + vocabulary.Query(qrng) + sc.extra;
      if (sc.one_chat) path += "&chat_id=" + chats[qrng() % chats.size()];
      auto t0 = Clock::now();
      int status = 0;
      json::value r = api.Call("GET", path, nullptr, tokens[qrng() % tokens.size()], &status);
      search_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (status != 200) {
        ++errors;
      } else {
        results += static_cast<double>(r.at("results").as_array().size());
      }
    }
    std::printf(
        "%s p50 %7.2f ms  p99 %7.2f ms   (goal p99 <= 50 ms over 1M messages) %.1f hits/query\n",
        sc.label, Percentile(search_ms, 0.5), Percentile(search_ms, 0.99),
        results / std::max(1, args.queries));
  }
  std::printf("search corpus: %d + %d bulk + the load's messages\n", args.corpus, args.bulk);
  server.Shutdown();
  chat->Stop();
  return errors.load() == 0 ? 0 : 1;
}
