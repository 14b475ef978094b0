// EmbeddingProvider: the narrow interface through which other services (the relay's `local`
// provider) use the embed service's models without depending on services/embed. apps/atrium binds
// it to the EmbedService when both services run.
//
// Thread-safe: Embed may be called from any thread; `done` runs once, on an arbitrary thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::infer {

struct EmbeddingRequest {
  std::string model;               // a served model's name or alias; empty = the default model
  std::vector<std::string> texts;  // non-empty strings
  size_t dimensions = 0;           // 0 = the model's full size (else Matryoshka truncation)
  bool normalize = true;
};

struct EmbeddingResponse {
  std::string model;                        // the served model's name
  std::vector<std::vector<float>> vectors;  // one per text
  size_t prompt_tokens = 0;
};

class EmbeddingProvider {
 public:
  virtual ~EmbeddingProvider() = default;
  // NotFound for an unknown model; InvalidArgument for bad input (message names the field);
  // ResourceExhausted when the queue is full; DeadlineExceeded after the service's timeout.
  virtual void Embed(EmbeddingRequest request,
                     std::function<void(Result<EmbeddingResponse>)> done) = 0;
  // Names (and aliases) of the models served.
  virtual std::vector<std::string> ModelNames() const = 0;
};

}  // namespace atrium::infer
