// The embed service: serves text embeddings from local encoder models over three APIs.
//
//   OpenAI    POST /v1/embeddings
//   TEI       POST /embed, /tokenize, /decode, /similarity   (GET /info: merged into Atrium's)
//   VecBoost  POST /api/v1/embed, /api/v1/embed/batch, /api/v1/similarity,
//             /api/v1/embed/document
//
// Each model has its own ModelScheduler (priority queue + token-budget batcher) sharing one
// ResultCache. Requests are tokenized on the calling thread, cut to the model's input limit
// (`truncate`, either side) or split into overlapping windows that are embedded and mean-pooled
// (`long_input: "chunk"`), then pooled vectors are truncated to `dimensions` (Matryoshka) and
// normalized as asked. Errors come in each API's own shape. docs/embed.md documents the wire
// formats and the configuration keys (embed.*).
//
// Thread-safe. Routes reference the service: it must outlive the HTTP server that serves them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/embed/result_cache.h"
#include "atrium/embed/scheduler.h"
#include "atrium/infer/embedding_model.h"
#include "atrium/infer/embedding_provider.h"

namespace spdlog {
class logger;
}

namespace atrium {
class Config;
class ConfigSchema;
class MetricsRegistry;
namespace http {
class Router;
struct Request;
}  // namespace http
}  // namespace atrium

namespace atrium::embed {

// One served model: a name clients use, more aliases, and where it comes from (a directory or a
// Hugging Face model id).
struct ModelSpec {
  std::string name;
  std::string source;
  std::vector<std::string> aliases;
};

// Parses "name=source" (or just "source": the name is then the id or the directory's base name)
// as written in embed.models. InvalidArgument for an empty entry.
Result<ModelSpec> ParseModelSpec(std::string_view entry);

struct EmbedOptions {
  std::vector<ModelSpec> models;
  bool public_access = false;  // routes need no credentials (else scope "embed")
  SchedulerOptions scheduler;
  CachePolicy cache_policy = CachePolicy::kLru;
  size_t cache_bytes = 64 << 20;
  size_t max_client_batch_size = 4096;  // inputs per request (split internally into batches)
  size_t max_body_bytes = 16 << 20;
  std::chrono::milliseconds request_timeout{30000};
  size_t chunk_overlap_tokens = 32;  // long_input: "chunk" window overlap
  int threads = 0;                   // encoder threads per model; 0 = all cores
  std::string model_cache_dir;       // hub downloads (HF layout)
  // Shared second cache tier (RedisTier when embed.cache.redis is set); null = none.
  std::shared_ptr<SecondTier> second_tier;
  std::chrono::seconds redis_ttl{3600};  // embed.cache.redis_ttl, for the composition root
  bool use_redis = false;                // embed.cache.redis
};

// embed.* configuration keys.
void DefineEmbedConfig(ConfigSchema& schema);
// Options from embed.* (model_cache_dir defaults to <data_dir>/models).
Result<EmbedOptions> EmbedOptionsFromConfig(const Config& config);

// One loaded model with its name, aliases and scheduler.
struct ServedModel {
  std::string name;
  std::vector<std::string> aliases;
  std::string source;
  std::unique_ptr<infer::EmbeddingModel> model;
  std::unique_ptr<ModelScheduler> scheduler;
};

enum class LongInput { kTruncate, kChunk, kError };

// One embedding request in the service's own terms (each API maps onto it).
struct EmbedCall {
  std::string model;                               // name or alias; empty = the first model
  std::vector<std::string> texts;                  // either texts ...
  std::vector<std::vector<int32_t>> token_inputs;  // ... or token ids (used as given)
  std::string prompt_name;                         // config_sentence_transformers prompt
  bool normalize = true;
  size_t dimensions = 0;  // 0 = full size
  LongInput long_input = LongInput::kTruncate;
  bool truncate_left = false;
  std::optional<infer::Pooling> pooling;  // default: the model's
  Priority priority = Priority::kNormal;
  double tier_weight = 1.0;
  std::function<bool()> abandoned;
  // How errors name the inputs, so that each API's messages name its own fields: `input_field`
  // for the list as a whole, `input_name(i)` for input i (default "<input_field>[i]").
  std::string input_field = "input";
  std::function<std::string(size_t)> input_name;
};

struct EmbedResult {
  std::string model;                        // the model's name
  std::vector<std::vector<float>> vectors;  // one per input
  size_t prompt_tokens = 0;                 // tokens run (or served from the cache)
};

class EmbedService final : public infer::EmbeddingProvider {
 public:
  // Loads every model of options.models (downloading hub ids into model_cache_dir) and starts
  // their schedulers. Fails with the first model that cannot be loaded, naming it.
  static Result<std::unique_ptr<EmbedService>> Create(EmbedOptions options,
                                                      MetricsRegistry* metrics,
                                                      std::shared_ptr<spdlog::logger> logger);
  // The same over models already loaded (tests, tools).
  static Result<std::unique_ptr<EmbedService>> CreateWithModels(
      EmbedOptions options, std::vector<ServedModel> models, MetricsRegistry* metrics,
      std::shared_ptr<spdlog::logger> logger);
  ~EmbedService();
  EmbedService(const EmbedService&) = delete;
  EmbedService& operator=(const EmbedService&) = delete;

  // Adds the three APIs' routes. `openai_route` = false leaves POST /v1/embeddings to another
  // module (the relay, which then reaches these models through EmbeddingProvider).
  Status AddRoutes(http::Router& router, bool openai_route = true);
  // TEI's /info members ("model_id":...,"max_input_length":...) without braces, for the
  // server's /info document.
  std::string InfoJsonMembers() const;

  // Lets small requests (bodies up to kInlineBodyBytes) run on the HTTP I/O thread instead of
  // the blocking pool: one thread hop less, which on a VM is a vCPU wake-up (~1 ms of a lone
  // request's latency after an idle pause). `cached_auth` answers, without blocking, whether the
  // request's credential is valid and in memory; the routes need it only when they are not
  // public. The caller must also know the rest of the middleware chain does not block (a local
  // rate limiter, not Redis), and the service itself refuses when its cache has a second tier.
  // Call before AddRoutes.
  static constexpr size_t kInlineBodyBytes = 2048;
  void SetInlineAdmission(std::function<bool(const http::Request&)> cached_auth);
  // Whether `request` may run on the I/O thread (see SetInlineAdmission).
  bool AdmitsInline(const http::Request& request) const;

  // Embeds asynchronously; `done` runs once on a scheduler thread (or this one).
  // InvalidArgument (bad input, named by field), NotFound (model), ResourceExhausted (queue full),
  // DeadlineExceeded, Cancelled.
  void Embed(EmbedCall call, std::chrono::steady_clock::time_point deadline,
             std::function<void(Result<EmbedResult>)> done);

  // infer::EmbeddingProvider (normal priority, the service's deadline).
  void Embed(infer::EmbeddingRequest request,
             std::function<void(Result<infer::EmbeddingResponse>)> done) override;
  std::vector<std::string> ModelNames() const override;

  // The model named `name` (or alias; empty = the first); null when unknown.
  const ServedModel* FindModel(std::string_view name) const;
  const std::vector<ServedModel>& models() const { return models_; }
  const EmbedOptions& options() const { return options_; }
  ResultCache& cache() { return *cache_; }

 private:
  EmbedService(EmbedOptions options, std::vector<ServedModel> models,
               std::unique_ptr<ResultCache> cache, std::shared_ptr<spdlog::logger> logger);

  EmbedOptions options_;
  std::unique_ptr<ResultCache> cache_;  // before models_: the schedulers use it until they stop
  std::vector<ServedModel> models_;
  std::shared_ptr<spdlog::logger> logger_;
  std::function<bool(const http::Request&)> inline_auth_;  // unset: never inline
};

}  // namespace atrium::embed
