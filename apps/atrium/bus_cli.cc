#include "bus_cli.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "atrium/bus/embedded_bus.h"
#include "atrium/core/env.h"
#include "atrium/core/status.h"
#include "atrium/http/client.h"

namespace atrium::app {
namespace {

using Clock = std::chrono::steady_clock;

// Splits an SSE byte stream into events (docs/formats/sse.md); comments are skipped.
class SseParser {
 public:
  struct Event {
    std::string id, event, data;
  };
  // Feeds bytes; returns the events completed by them.
  std::vector<Event> Feed(std::string_view chunk) {
    std::vector<Event> out;
    buffer_ += chunk;
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (!current_.data.empty() || !current_.event.empty() || !current_.id.empty()) {
          out.push_back(std::move(current_));
        }
        current_ = {};
        continue;
      }
      if (line[0] == ':') continue;
      size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "id") current_.id = value;
      if (field == "event") current_.event = value;
      if (field == "data") current_.data += (current_.data.empty() ? "" : "\n") + value;
    }
    return out;
  }

 private:
  std::string buffer_;
  Event current_;
};

// The `next_offset` of a {"next_offset":N} event body.
std::optional<uint64_t> NextOffset(std::string_view data) {
  size_t p = data.find("\"next_offset\":");
  if (p == std::string_view::npos) return std::nullopt;
  return std::strtoull(std::string(data.substr(p + 14)).c_str(), nullptr, 10);
}

// Steady-clock nanoseconds (publish-to-ack latencies).
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

}  // namespace

int BusTail(const BusTailOptions& options) {
  http::HttpClient client;
  std::string from = options.from;
  std::string last_id;
  while (true) {
    http::ClientRequest req;
    std::string base = options.url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    req.url = base + "/api/v1/bus/topics/" + options.topic + "/messages?from=" + from;
    req.headers.Set("accept", "text/event-stream");
    if (!last_id.empty()) req.headers.Set("last-event-id", last_id);
    if (!options.key.empty()) req.headers.Set("authorization", "Bearer " + options.key);
    req.read_timeout = std::chrono::minutes(5);  // heartbeats arrive every 15 s
    auto parser = std::make_shared<SseParser>();
    auto status = std::make_shared<int>(0);
    auto error_body = std::make_shared<std::string>();
    auto resync = std::make_shared<std::optional<uint64_t>>();
    req.on_headers = [status](int s, const http::Headers&) { *status = s; };
    req.on_data = [&, parser, status, error_body, resync](std::string_view chunk) {
      if (*status != 200) {
        *error_body += chunk;
        return true;
      }
      for (auto& e : parser->Feed(chunk)) {
        if (e.event == "message" || e.event.empty()) {
          if (!e.id.empty()) last_id = e.id;
          std::fwrite(e.data.data(), 1, e.data.size(), stdout);
          std::fputc('\n', stdout);
          std::fflush(stdout);
        } else if (e.event == "resync") {
          *resync = NextOffset(e.data);
        } else {
          std::fprintf(stderr, "atrium: %s %s\n", e.event.c_str(), e.data.c_str());
        }
      }
      return true;
    };
    auto result = client.SendSync(std::move(req));
    if (!result.ok()) {
      std::fprintf(stderr, "atrium: %s\n", result.status().ToString().c_str());
      return 1;
    }
    if (*status != 200) {
      std::fprintf(stderr, "atrium: HTTP %d %s\n", *status, error_body->c_str());
      return 1;
    }
    if (!resync->has_value()) return 0;  // the server ended the stream (shutdown)
    // Too slow for the server's queue: continue exactly where the server says.
    std::fprintf(stderr, "atrium: resync at offset %llu\n",
                 static_cast<unsigned long long>(**resync));
    from = std::to_string(**resync);
    last_id.clear();
  }
}

int BusBench(const BusBenchOptions& options) {
  auto durability = bus::ParseDurability(options.durability);
  if (!durability.ok() ||
      (*durability != bus::Durability::kMemory && *durability != bus::Durability::kSync)) {
    std::fprintf(stderr, "atrium: --durability must be memory or sync\n");
    return 1;
  }
  if (options.publishers < 1 || options.messages < 1 || options.in_flight < 1) {
    std::fprintf(stderr,
                 "atrium: --messages, --publishers and the in-flight window must be >= 1\n");
    return 1;
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "atrium-bus-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("atrium: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  int rc = 0;
  {
    auto opened = bus::OpenEmbeddedBus(Env::Default(), {.data_dir = dir});
    if (!opened.ok()) {
      std::fprintf(stderr, "atrium: %s\n", opened.status().ToString().c_str());
      std::filesystem::remove_all(dir);
      return 1;
    }
    std::unique_ptr<bus::Bus> b = std::move(*opened);
    bus::TopicOptions topic{.durability = *durability, .ring_pow = options.ring_pow};
    if (Status s = b->CreateTopic("bench", topic); !s.ok()) {
      std::fprintf(stderr, "atrium: %s\n", s.ToString().c_str());
      rc = 1;
    }
    const uint64_t batch = std::max<uint64_t>(1, options.batch);
    const uint64_t calls = options.messages / static_cast<uint64_t>(options.publishers) / batch;
    const uint64_t per = calls;  // publish calls per publisher
    const uint64_t total_records = calls * batch * static_cast<uint64_t>(options.publishers);
    const std::string payload(options.payload_bytes, 'x');
    std::vector<std::vector<int64_t>> latencies(options.publishers);
    std::atomic<uint64_t> failures{0};
    std::vector<std::unique_ptr<bus::Subscription>> subs;
    for (int i = 0; rc == 0 && i < options.subscribers; ++i) {
      auto sub = b->Subscribe({.pattern = "bench", .start = bus::StartPosition::Earliest()});
      if (!sub.ok()) {
        std::fprintf(stderr, "atrium: %s\n", sub.status().ToString().c_str());
        rc = 1;
        break;
      }
      subs.push_back(std::move(*sub));
    }
    auto start = Clock::now();
    std::vector<std::thread> threads;
    for (auto& sub : subs) {
      threads.emplace_back([&, s = sub.get()] {
        uint64_t got = 0;
        while (got < total_records) {
          auto d = s->Next(std::chrono::seconds(10));
          if (!d.ok()) {
            std::fprintf(stderr, "atrium: subscriber (after %llu records): %s\n",
                         static_cast<unsigned long long>(got), d.status().ToString().c_str());
            failures.fetch_add(1);
            return;
          }
          if (d->kind == bus::Delivery::Kind::kRecord) ++got;
        }
      });
    }
    // Publish-to-ack latency is sampled (every kLatencyEvery-th publish): two clock reads per
    // publish would cost as much as the WAL's own per-record work.
    constexpr uint64_t kLatencyEvery = 8;
    // One publisher's window, counted with an atomic: acks need no lock unless it sleeps.
    struct Window {
      std::atomic<uint64_t> outstanding{0};
      std::atomic<bool> waiting{false};
      std::mutex mu;  // pairs with cv
      std::condition_variable cv;
      uint64_t low_water = 0;
      std::vector<int64_t>* lat = nullptr;  // sampled: the start, then the latency, in ns
      std::atomic<uint64_t>* failures = nullptr;

      void WaitUntil(uint64_t at_most) {
        if (outstanding.load() <= at_most) return;
        std::unique_lock lock(mu);
        waiting.store(true);
        cv.wait(lock, [&] { return outstanding.load() <= at_most; });
        waiting.store(false);
      }
      // The publisher may wait for the low water mark (in its loop) or for zero (at the end).
      // Acks count down one at a time, so only the ack that reaches either wakes it: the acks
      // that follow, until the publisher runs again, take no lock.
      void Acked(bool ok) {
        if (!ok) failures->fetch_add(1);
        const uint64_t left = outstanding.fetch_sub(1) - 1;
        if ((left == low_water || left == 0) && waiting.load()) {
          std::lock_guard lock(mu);
          cv.notify_one();
        }
      }
    };
    for (int p = 0; rc == 0 && p < options.publishers; ++p) {
      threads.emplace_back([&, p] {
        auto& lat = latencies[p];
        lat.reserve(per / kLatencyEvery + 1);
        Window w;
        w.lat = &lat;
        w.failures = &failures;
        const uint64_t window = uint64_t(options.in_flight);
        // A full window waits until half of it drained: one wakeup per window/2 acks instead of
        // a context switch per ack (what an async client library's publish window does too).
        w.low_water = window / 2;
        for (uint64_t i = 0; i < per; ++i) {
          if (w.outstanding.load() >= window) w.WaitUntil(w.low_water);
          w.outstanding.fetch_add(1);
          // 0, or 1 + the latency slot: the callback stays two words (no allocation per publish).
          uint64_t timed_slot = 0;
          if (i % kLatencyEvery == 0) {
            lat.push_back(NowNs());  // within the reserved capacity: never moves
            timed_slot = lat.size();
          }
          std::vector<bus::Message> msgs;  // each payload copied once
          msgs.reserve(batch);
          for (uint64_t j = 0; j < batch; ++j) msgs.push_back(bus::Message{.payload = payload});
          b->PublishBatchAsync("bench", std::move(msgs),
                               [w = &w, timed_slot](Result<bus::OffsetRange> r) {
                                 if (timed_slot != 0) {
                                   int64_t& v = (*w->lat)[timed_slot - 1];
                                   v = NowNs() - v;
                                 }
                                 w->Acked(r.ok());
                               });
        }
        w.WaitUntil(0);
      });
    }
    for (auto& t : threads) t.join();
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (rc == 0) {
      std::vector<int64_t> all;
      all.reserve(per * options.publishers);
      for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
      std::sort(all.begin(), all.end());
      auto pct = [&](double q) {
        return all.empty() ? 0.0 : all[std::min(all.size() - 1, size_t(q * all.size()))] / 1e3;
      };
      double total = double(total_records);
      std::printf(
          "durability=%s publishers=%d subscribers=%d batch=%llu payload=%zuB messages=%.0f "
          "in_flight=%d ring_pow=%d\n"
          "throughput: %.0f msgs/s\nlatency (publish to ack): p50 %.1f us, p99 %.1f us, "
          "max %.1f us\nfailures: %llu\n",
          options.durability.c_str(), options.publishers, options.subscribers,
          static_cast<unsigned long long>(batch), options.payload_bytes, total, options.in_flight,
          options.ring_pow, total / secs, pct(0.50), pct(0.99), pct(1.0),
          static_cast<unsigned long long>(failures.load()));
      if (failures.load() > 0) rc = 1;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}

}  // namespace atrium::app
