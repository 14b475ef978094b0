#include "atrium/bus/bus.h"

namespace atrium::bus {

std::future<Result<OffsetRange>> Bus::PublishBatchFuture(std::string_view topic,
                                                         std::vector<Message> messages) {
  auto promise = std::make_shared<std::promise<Result<OffsetRange>>>();
  auto future = promise->get_future();
  PublishBatchAsync(topic, std::move(messages),
                    [promise](Result<OffsetRange> r) { promise->set_value(std::move(r)); });
  return future;
}

Result<OffsetRange> Bus::PublishBatch(std::string_view topic, std::vector<Message> messages) {
  return PublishBatchFuture(topic, std::move(messages)).get();
}

Result<uint64_t> Bus::Publish(std::string_view topic, Message message) {
  std::vector<Message> batch;
  batch.push_back(std::move(message));
  ASSIGN_OR_RETURN(OffsetRange r, PublishBatch(topic, std::move(batch)));
  return r.first;
}

}  // namespace atrium::bus
