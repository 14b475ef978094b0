// The bus over HTTP: topic admin, publish (single and batch), SSE subscribe with exact
// `Last-Event-ID` resume, durable consumers with acks. Wire shapes and scopes: docs/bus.md
// ("HTTP"); SSE framing: docs/formats/sse.md.
//
//   POST /api/v1/bus/topics                          admin          create → 201 (200 if it
//   existed) GET  /api/v1/bus/topics                          admin          list GET
//   /api/v1/bus/topics/{topic}                  admin          stats POST
//   /api/v1/bus/topics/{topic}/messages         bus:publish    → 200 {"offsets":[...]} GET
//   /api/v1/bus/topics/{topic}/messages         bus:subscribe  SSE (?from=, ?consumer=) POST
//   /api/v1/bus/consumers/{name}/ack            bus:subscribe  → 204
//
// Publishing never parks a thread on durability: the handler hands the batch to
// Bus::PublishBatchAsync and answers from its callback. Each SSE stream has one reader thread that
// pulls from the subscription (or consumer) and stops when the client goes away; a client too slow
// for the stream's queue gets a final `resync` event carrying the offset to resume from, never a
// silent gap.
//
// Thread-safe. The BusHttpApi must outlive the http::Server its routes are registered on (stop
// the server first), and the Bus must outlive the BusHttpApi.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "atrium/bus/bus.h"
#include "atrium/core/status.h"

namespace atrium {
class MetricsRegistry;
}

namespace atrium::http {
class Router;
}

namespace atrium::bus {

// API-key scopes of the bus routes (topic admin uses "admin").
inline constexpr const char* kBusPublishScope = "bus:publish";
inline constexpr const char* kBusSubscribeScope = "bus:subscribe";
inline constexpr const char* kBusAdminScope = "admin";

struct BusHttpOptions {
  // Largest request body of the publish route.
  size_t max_publish_body_bytes = size_t{8} << 20;
  // Most messages in one publish request.
  size_t max_batch_messages = 10000;
  // Bytes an SSE stream may queue for a slow client before it is ended with `resync`.
  size_t sse_max_queued_bytes = size_t{1} << 20;
  std::chrono::milliseconds sse_heartbeat{15000};
  // How long a reader thread waits in Subscription::Next before it re-checks its stream (client
  // gone, pending acks). Bounds the latency of consumer acks and of noticing a disconnect.
  std::chrono::milliseconds reader_poll{50};
  // Optional; must outlive the BusHttpApi. Counts `bus_sse_resync_total{topic}` (streams ended
  // because the client was too slow) and `bus_sse_streams` (open streams).
  MetricsRegistry* metrics = nullptr;
};

class BusHttpApi {
 public:
  BusHttpApi(Bus& bus, BusHttpOptions options = {});
  // Ends every open stream and joins the reader threads.
  ~BusHttpApi();
  BusHttpApi(const BusHttpApi&) = delete;
  BusHttpApi& operator=(const BusHttpApi&) = delete;

  // Registers the routes above. Errors only for duplicate routes.
  Status AddRoutes(http::Router& router);

  // Open SSE streams (for tests and metrics).
  size_t open_streams() const;

  class State;  // shared with the handlers and reader threads

 private:
  std::shared_ptr<State> state_;
};

}  // namespace atrium::bus
