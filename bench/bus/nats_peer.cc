// The bus benchmark's NATS JetStream peer: P publisher threads, each on its own connection,
// publish N messages in total to one file-backed stream with asynchronous publishes (at most
// `in_flight` unacknowledged per publisher) and wait for every PubAck. Prints the same
// "throughput: X msgs/s" line as `atrium bus bench` so bench/bus/run can compare them.
//
//   nats_peer URL MESSAGES PAYLOAD_BYTES PUBLISHERS IN_FLIGHT
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

bool Check(natsStatus s, const char* what) {
  if (s == NATS_OK) return true;
  std::fprintf(stderr, "nats_peer: %s: %s\n", what, natsStatus_GetText(s));
  return false;
}

std::atomic<int64_t> g_failures{0};

void OnAck(jsCtx*, natsMsg* msg, jsPubAck*, jsPubAckErr* err, void*) {
  if (err != nullptr) g_failures.fetch_add(1);
  natsMsg_Destroy(msg);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: nats_peer URL MESSAGES PAYLOAD_BYTES PUBLISHERS IN_FLIGHT\n");
    return 2;
  }
  const std::string url = argv[1];
  const int64_t messages = std::atoll(argv[2]);
  const int payload = std::atoi(argv[3]);
  const int publishers = std::atoi(argv[4]);
  const int in_flight = std::atoi(argv[5]);

  // The stream, file storage (JetStream's durable default).
  natsConnection* admin = nullptr;
  jsCtx* admin_js = nullptr;
  if (!Check(natsConnection_ConnectTo(&admin, url.c_str()), "connect") ||
      !Check(natsConnection_JetStream(&admin_js, admin, nullptr), "jetstream")) {
    return 1;
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "BENCH";
  const char* subjects[] = {"bench.>"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  js_DeleteStream(admin_js, "BENCH", nullptr, &jerr);
  if (!Check(js_AddStream(&info, admin_js, &cfg, nullptr, &jerr), "add stream")) return 1;
  jsStreamInfo_Destroy(info);

  std::string data(static_cast<size_t>(payload), 'x');
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p) {
    int64_t share = messages / publishers + (p < messages % publishers ? 1 : 0);
    threads.emplace_back([&, p, share] {
      natsConnection* nc = nullptr;
      jsCtx* js = nullptr;
      jsOptions opts;
      jsOptions_Init(&opts);
      opts.PublishAsync.MaxPending = in_flight;
      opts.PublishAsync.AckHandler = OnAck;
      if (!Check(natsConnection_ConnectTo(&nc, url.c_str()), "connect") ||
          !Check(natsConnection_JetStream(&js, nc, &opts), "jetstream")) {
        g_failures.fetch_add(share);
        return;
      }
      std::string subject = "bench." + std::to_string(p);
      for (int64_t i = 0; i < share; ++i) {
        if (js_PublishAsync(js, subject.c_str(), data.data(), payload, nullptr) != NATS_OK) {
          g_failures.fetch_add(1);
        }
      }
      jsPubOptions wait;
      jsPubOptions_Init(&wait);
      wait.MaxWait = 60000;
      Check(js_PublishAsyncComplete(js, &wait), "publish complete");
      jsCtx_Destroy(js);
      natsConnection_Destroy(nc);
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("throughput: %.0f msgs/s\n", static_cast<double>(messages) / secs);
  std::printf("failures: %lld\n", static_cast<long long>(g_failures.load()));
  js_DeleteStream(admin_js, "BENCH", nullptr, &jerr);
  jsCtx_Destroy(admin_js);
  natsConnection_Destroy(admin);
  nats_Close();
  return g_failures.load() == 0 ? 0 : 1;
}
