// ScratchJson: memory for a JSON document parsed, read and dropped within one function.
#pragma once

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/storage_ptr.hpp>

namespace atrium::relay {

// The relay parses small JSON documents on its request path (a request body for its model, a
// response or a stream event for its usage, a usage record for the aggregator) and keeps a few
// fields of each. Parsing into this scratch space (4 KiB in the object, on the caller's stack;
// a larger document spills to the heap) saves an allocation per JSON node. A value parsed with
// storage() must not outlive the ScratchJson.
class ScratchJson {
 public:
  ScratchJson() = default;
  ScratchJson(const ScratchJson&) = delete;
  ScratchJson& operator=(const ScratchJson&) = delete;

  boost::json::storage_ptr storage() { return boost::json::storage_ptr(&resource_); }

 private:
  unsigned char buffer_[4096];
  boost::json::monotonic_resource resource_{buffer_, sizeof(buffer_)};
};

}  // namespace atrium::relay
