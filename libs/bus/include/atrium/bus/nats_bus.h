// The scale-out Bus backend: the same `Bus` interface over NATS JetStream (libnats).
//
// Mapping (details and differences from the embedded bus: docs/bus.md, "NATS JetStream backend"):
// - topic `T` is subject `<stream_prefix>.T`, stored in its own stream `<stream_prefix>_<T
// escaped>`
//   (file storage for sync/async/interval topics, memory storage for memory topics);
// - a record's offset is its stream sequence minus one, so offsets start at 0 like the embedded
//   bus and are never reused; its timestamp is the server's;
// - the key travels as the NATS header `Atrium-Key`, headers as NATS headers;
// - publishes complete on the JetStream PubAck (batches use async publish with acks);
// - subscriptions are ordered ephemeral consumers, filters are applied client-side;
// - durable consumers are durable pull consumers with explicit acks (ack wait = ack_timeout);
// - request/reply uses NATS inboxes: the request is published to the topic with `reply_to` set to
//   an inbox, the reply is a NATS request to that inbox (no responders: the requester gave up).
//
// PublishCallbacks run on libnats's PubAck thread: they must not block, nor wait for another
// publish. Thread-safe like every Bus. Subscriptions and consumers keep the connection alive and
// report Cancelled once the bus object is gone.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "atrium/bus/bus.h"
#include "atrium/core/metrics.h"

namespace atrium::bus {

struct NatsBusOptions {
  // Server URL(s), e.g. "nats://127.0.0.1:4222" (comma-separated for a cluster).
  std::string url;
  // One token of [A-Za-z0-9_-]: prefixes subjects ("<prefix>.<topic>") and stream names, so that
  // several buses (or test cases) can share one server without seeing each other's topics.
  std::string stream_prefix = "atrium";
  std::chrono::milliseconds connect_timeout{2000};
  // Wait for JetStream API answers and publish acks; past it the call fails with Unavailable.
  std::chrono::milliseconds api_timeout{5000};
  // Optional; must outlive the bus. Records bus_publish_total, bus_backlog_lag,
  // bus_redelivery_total and bus_consumer_position.
  MetricsRegistry* metrics = nullptr;
};

// Connects to the server and checks that JetStream is enabled. Unavailable when the server cannot
// be reached or has no JetStream; InvalidArgument for a bad prefix or an empty URL.
Result<std::unique_ptr<Bus>> OpenNatsBus(NatsBusOptions options);

}  // namespace atrium::bus
