#include "atrium/embed/embed_service.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api_common.h"
#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/core/metrics.h"
#include "atrium/infer/model_hub.h"

namespace atrium::embed {
namespace {

// Large enough that the tokenizer never truncates: the service cuts inputs itself, on either
// side, keeping the special tokens.
constexpr size_t kNoTruncation = size_t{1} << 30;

// Splits an encoding into its leading special tokens, body and trailing special tokens.
struct Framed {
  std::vector<int32_t> prefix, body, suffix;
};

Framed Frame(const infer::Encoding& e) {
  Framed f;
  size_t n = e.ids.size();
  size_t begin = 0;
  while (begin < n && e.special_tokens_mask[begin] != 0) ++begin;
  size_t end = n;
  while (end > begin && e.special_tokens_mask[end - 1] != 0) --end;
  f.prefix.assign(e.ids.begin(), e.ids.begin() + static_cast<ptrdiff_t>(begin));
  f.body.assign(e.ids.begin() + static_cast<ptrdiff_t>(begin),
                e.ids.begin() + static_cast<ptrdiff_t>(end));
  f.suffix.assign(e.ids.begin() + static_cast<ptrdiff_t>(end), e.ids.end());
  return f;
}

std::vector<int32_t> Join(const Framed& f, size_t from, size_t count) {
  std::vector<int32_t> ids;
  ids.reserve(f.prefix.size() + count + f.suffix.size());
  ids.insert(ids.end(), f.prefix.begin(), f.prefix.end());
  ids.insert(ids.end(), f.body.begin() + static_cast<ptrdiff_t>(from),
             f.body.begin() + static_cast<ptrdiff_t>(from + count));
  ids.insert(ids.end(), f.suffix.begin(), f.suffix.end());
  return ids;
}

// How the sequences sent to the scheduler map back onto the request's inputs.
struct Plan {
  std::vector<std::vector<int32_t>> sequences;
  std::vector<std::pair<size_t, size_t>> windows;  // per input: [first sequence, count)
  size_t tokens = 0;
};

// How errors name input `i` of `call`.
std::string InputName(const EmbedCall& call, size_t i) {
  return call.input_name ? call.input_name(i) : fmt::format("{}[{}]", call.input_field, i);
}

Status AddInput(Plan& plan, std::vector<int32_t> ids, const Framed* framed, size_t max_tokens,
                const EmbedCall& call, size_t overlap, size_t input_index) {
  size_t first = plan.sequences.size();
  if (ids.size() <= max_tokens) {
    plan.tokens += ids.size();
    plan.sequences.push_back(std::move(ids));
    plan.windows.emplace_back(first, 1);
    return Status::Ok();
  }
  std::string field = InputName(call, input_index);
  if (call.long_input == LongInput::kError) {
    return InvalidArgument(
        fmt::format("{}: {} tokens exceed the model's limit of {} (set "
                    "truncate or long_input: \"chunk\")",
                    field, ids.size(), max_tokens));
  }
  Framed raw;
  if (framed == nullptr) {  // token ids given by the client: no special tokens to keep
    raw.body = std::move(ids);
    framed = &raw;
  }
  size_t specials = framed->prefix.size() + framed->suffix.size();
  if (specials >= max_tokens) return InvalidArgument(field + ": the model's limit is too small");
  size_t room = max_tokens - specials;
  if (call.long_input == LongInput::kTruncate) {
    size_t from = call.truncate_left ? framed->body.size() - room : 0;
    plan.sequences.push_back(Join(*framed, from, room));
    plan.tokens += max_tokens;
    plan.windows.emplace_back(first, 1);
    return Status::Ok();
  }
  // Chunk: overlapping windows over the body, each framed by the special tokens.
  size_t step = room > overlap ? room - overlap : room;
  for (size_t from = 0;; from += step) {
    size_t count = std::min(room, framed->body.size() - from);
    plan.sequences.push_back(Join(*framed, from, count));
    plan.tokens += count + specials;
    if (from + count >= framed->body.size()) break;
  }
  plan.windows.emplace_back(first, plan.sequences.size() - first);
  return Status::Ok();
}

// Mean of the windows' vectors (weighted by their token counts), then Matryoshka truncation and
// normalization.
std::vector<float> Finish(const std::vector<CachedVector>& pooled,
                          const std::vector<std::vector<int32_t>>& sequences,
                          std::pair<size_t, size_t> window, const EmbedCall& call) {
  const auto& first = *pooled[window.first];
  std::vector<float> v;
  if (window.second == 1) {
    v = first;
  } else {
    std::vector<double> sum(first.size(), 0.0);
    double weight = 0;
    for (size_t s = window.first; s < window.first + window.second; ++s) {
      double w = static_cast<double>(sequences[s].size());
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += w * (*pooled[s])[i];
      weight += w;
    }
    v.resize(sum.size());
    for (size_t i = 0; i < sum.size(); ++i) v[i] = static_cast<float>(sum[i] / weight);
  }
  if (call.dimensions > 0 && call.dimensions < v.size()) v.resize(call.dimensions);
  if (call.normalize) {
    double norm = 0;
    for (float x : v) norm += static_cast<double>(x) * x;
    norm = std::sqrt(norm);
    if (norm > 0) {
      for (float& x : v) x = static_cast<float>(x / norm);
    }
  }
  return v;
}

// TEI's pooling names.
std::string_view PoolingLabel(infer::Pooling pooling) {
  switch (pooling) {
    case infer::Pooling::kMean:
      return "mean";
    case infer::Pooling::kCls:
      return "cls";
    case infer::Pooling::kLastToken:
      return "last_token";
    case infer::Pooling::kMax:
      return "max";
  }
  return "cls";
}

std::string BaseName(std::string_view source) {
  while (!source.empty() && source.back() == '/') source.remove_suffix(1);
  size_t slash = source.rfind('/');
  return std::string(slash == std::string_view::npos ? source : source.substr(slash + 1));
}

}  // namespace

Result<ModelSpec> ParseModelSpec(std::string_view entry) {
  ModelSpec spec;
  size_t eq = entry.find('=');
  if (eq == std::string_view::npos) {
    spec.source = std::string(entry);
    spec.name = infer::LooksLikeModelId(entry) && !std::filesystem::is_directory(spec.source)
                    ? std::string(entry.substr(0, entry.find('@')))
                    : BaseName(entry);
  } else {
    spec.name = std::string(entry.substr(0, eq));
    spec.source = std::string(entry.substr(eq + 1));
  }
  if (spec.name.empty() || spec.source.empty()) {
    return InvalidArgument("embed.models: expected \"name=dir_or_id\" or \"dir_or_id\", got '" +
                           std::string(entry) + "'");
  }
  // Hub ids are also reachable by their short name: "BAAI/bge-small-en-v1.5" → "bge-small-en-v1.5".
  if (size_t slash = spec.name.find('/'); slash != std::string::npos) {
    spec.aliases.push_back(spec.name.substr(slash + 1));
  }
  return spec;
}

void DefineEmbedConfig(ConfigSchema& schema) {
  schema.DefineStringList("embed.models", {},
                          "Models to serve: \"name=dir_or_hub_id\" or \"dir_or_hub_id\"; the "
                          "first is the default");
  schema.DefineStringList("embed.aliases", {},
                          "Extra model names: \"alias=name\" (e.g. text-embedding-3-small=minilm)");
  schema.DefineBool("embed.public", false,
                    "Serve the embedding APIs without credentials (else API key scope embed)");
  schema.DefineInt("embed.max_concurrent_requests", 512,
                   "Requests queued or running per model; more get 429", {.min = 1});
  schema.DefineInt("embed.max_batch_tokens", 16384, "Tokens per engine batch", {.min = 1});
  schema.DefineInt("embed.max_batch_requests", 256, "Sequences per engine batch", {.min = 1});
  schema.DefineInt("embed.max_wait_us", 2000,
                   "Batching window after a batch (never delays a request on an idle engine)",
                   {.min = 0, .max = 1000000});
  schema.DefineInt("embed.max_client_batch_size", 4096, "Inputs per request (split internally)",
                   {.min = 1});
  schema.DefineString("embed.cache.policy", "lru", "Result cache eviction: lru, lfu or arc",
                      {.one_of = {"lru", "lfu", "arc"}});
  schema.DefineBytes("embed.cache.max_bytes", 64 << 20, "Result cache size (0 disables it)");
  schema.DefineBool(
      "embed.cache.redis", false,
      "Share cached embeddings between replicas in Redis (redis.url) as a second tier");
  schema.DefineDuration("embed.cache.redis_ttl", std::chrono::hours(1),
                        "Expiry of embeddings in the Redis tier", {.min = 1000});
  schema.DefineDuration("embed.request_timeout", std::chrono::seconds(30),
                        "Deadline of one request (504 after it)", {.min = 1});
  schema.DefineInt("embed.threads", 0, "Encoder threads per model (0 = all cores)",
                   {.min = 0, .max = 256});
  schema.DefineString("embed.model_cache", "",
                      "Cache of downloaded hub models (empty = ATRIUM_MODEL_CACHE, "
                      "$HF_HOME/hub, or <data_dir>/models)");
}

Result<EmbedOptions> EmbedOptionsFromConfig(const Config& config) {
  EmbedOptions o;
  for (const auto& entry : config.GetStringList("embed.models")) {
    ASSIGN_OR_RETURN(ModelSpec spec, ParseModelSpec(entry));
    o.models.push_back(std::move(spec));
  }
  for (const auto& entry : config.GetStringList("embed.aliases")) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size()) {
      return InvalidArgument("embed.aliases: expected \"alias=name\", got '" + entry + "'");
    }
    std::string target = entry.substr(eq + 1);
    auto it = std::find_if(o.models.begin(), o.models.end(),
                           [&](const ModelSpec& m) { return m.name == target; });
    if (it == o.models.end()) {
      return InvalidArgument("embed.aliases: '" + target + "' is not a model of embed.models");
    }
    it->aliases.push_back(entry.substr(0, eq));
  }
  o.public_access = config.GetBool("embed.public");
  o.scheduler.max_concurrent_requests =
      static_cast<size_t>(config.GetInt("embed.max_concurrent_requests"));
  o.scheduler.max_batch_tokens = static_cast<size_t>(config.GetInt("embed.max_batch_tokens"));
  o.scheduler.max_batch_requests = static_cast<size_t>(config.GetInt("embed.max_batch_requests"));
  o.scheduler.max_wait = std::chrono::microseconds(config.GetInt("embed.max_wait_us"));
  o.max_client_batch_size = static_cast<size_t>(config.GetInt("embed.max_client_batch_size"));
  ASSIGN_OR_RETURN(o.cache_policy, ParseCachePolicy(config.GetString("embed.cache.policy")));
  o.cache_bytes = config.GetBytes("embed.cache.max_bytes");
  o.use_redis = config.GetBool("embed.cache.redis");
  o.redis_ttl =
      std::chrono::duration_cast<std::chrono::seconds>(config.GetDuration("embed.cache.redis_ttl"));
  o.request_timeout = config.GetDuration("embed.request_timeout");
  o.threads = static_cast<int>(config.GetInt("embed.threads"));
  o.model_cache_dir = config.GetString("embed.model_cache");
  if (o.model_cache_dir.empty()) {
    o.model_cache_dir =
        infer::HubOptionsFromEnvironment(JoinPath(config.GetString("data_dir"), "models"))
            .cache_dir;
  }
  return o;
}

EmbedService::EmbedService(EmbedOptions options, std::vector<ServedModel> models,
                           std::unique_ptr<ResultCache> cache,
                           std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      cache_(std::move(cache)),
      models_(std::move(models)),
      logger_(std::move(logger)) {}

EmbedService::~EmbedService() {
  for (auto& m : models_) m.scheduler.reset();  // stop workers before models go
}

Result<std::unique_ptr<EmbedService>> EmbedService::CreateWithModels(
    EmbedOptions options, std::vector<ServedModel> models, MetricsRegistry* metrics,
    std::shared_ptr<spdlog::logger> logger) {
  std::vector<std::string> names;
  for (const auto& m : models) {
    names.push_back(m.name);
    names.insert(names.end(), m.aliases.begin(), m.aliases.end());
  }
  std::sort(names.begin(), names.end());
  if (auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end()) {
    return InvalidArgument("embed.models: the name '" + *dup + "' is used twice");
  }
  auto cache = std::make_unique<ResultCache>(options.cache_policy, options.cache_bytes, metrics);
  cache->SetSecondTier(options.second_tier);
  for (auto& m : models) {
    m.scheduler =
        std::make_unique<ModelScheduler>(m.name, *m.model, options.scheduler, cache.get(), metrics);
  }
  return std::unique_ptr<EmbedService>(
      new EmbedService(std::move(options), std::move(models), std::move(cache), std::move(logger)));
}

const ServedModel* EmbedService::FindModel(std::string_view name) const {
  if (models_.empty()) return nullptr;
  if (name.empty()) return &models_.front();
  for (const auto& m : models_) {
    if (m.name == name) return &m;
    if (std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end()) return &m;
  }
  return nullptr;
}

void EmbedService::Embed(EmbedCall call, std::chrono::steady_clock::time_point deadline,
                         std::function<void(Result<EmbedResult>)> done) {
  const ServedModel* served = FindModel(call.model);
  if (served == nullptr) {
    done(models_.empty() ? NotFound("no embedding model is loaded (embed.models)")
                         : NotFound("model: '" + call.model + "' is not served here"));
    return;
  }
  const infer::ModelInfo& info = served->model->info();
  size_t inputs = call.texts.empty() ? call.token_inputs.size() : call.texts.size();
  if (inputs == 0) {
    done(InvalidArgument(call.input_field + ": at least one input is required"));
    return;
  }
  if (inputs > options_.max_client_batch_size) {
    done(PayloadTooLarge(fmt::format("{}: {} inputs exceed the limit of {} per request",
                                     call.input_field, inputs, options_.max_client_batch_size)));
    return;
  }
  if (call.dimensions > static_cast<size_t>(info.hidden_size)) {
    done(InvalidArgument(fmt::format("dimensions: {} exceeds the model's {} dimensions",
                                     call.dimensions, info.hidden_size)));
    return;
  }
  std::string prompt;
  std::string prompt_name = call.prompt_name.empty() ? info.default_prompt_name : call.prompt_name;
  if (!prompt_name.empty()) {
    auto it = info.prompts.find(prompt_name);
    if (it == info.prompts.end()) {
      done(InvalidArgument("prompt_name: the model has no prompt '" + prompt_name + "'"));
      return;
    }
    prompt = it->second;
  }

  Plan plan;
  const auto& tok = served->model->tokenizer();
  size_t vocab = static_cast<size_t>(info.vocab_size);
  for (size_t i = 0; i < inputs; ++i) {
    Status s;
    if (!call.texts.empty()) {
      if (call.texts[i].empty()) {
        done(InvalidArgument(InputName(call, i) + ": empty strings cannot be embedded"));
        return;
      }
      infer::Encoding e =
          tok.Encode(prompt.empty() ? call.texts[i] : prompt + call.texts[i], true, kNoTruncation);
      Framed framed = Frame(e);
      s = AddInput(plan, std::move(e.ids), &framed, info.max_input_tokens, call,
                   options_.chunk_overlap_tokens, i);
    } else {
      auto& ids = call.token_inputs[i];
      if (ids.empty()) {
        done(InvalidArgument(InputName(call, i) + ": empty token lists cannot be embedded"));
        return;
      }
      for (int32_t id : ids) {
        if (id < 0 || static_cast<size_t>(id) >= vocab) {
          done(InvalidArgument(fmt::format("{}: token id {} is outside the vocabulary (0..{})",
                                           InputName(call, i), id, vocab - 1)));
          return;
        }
      }
      s = AddInput(plan, std::move(ids), nullptr, info.max_input_tokens, call,
                   options_.chunk_overlap_tokens, i);
    }
    if (!s.ok()) {
      done(s);
      return;
    }
  }

  auto shared_plan = std::make_shared<Plan>(std::move(plan));
  EmbedJob job;
  job.inputs = shared_plan->sequences;  // the scheduler owns its copy
  job.pooling = call.pooling.value_or(info.pooling);
  job.priority = call.priority;
  job.tier_weight = call.tier_weight;
  job.deadline = deadline;
  job.abandoned = call.abandoned;
  auto shared_call = std::make_shared<EmbedCall>(std::move(call));
  std::string model_name = served->name;
  job.done = [shared_plan, shared_call, model_name,
              done](Result<std::vector<CachedVector>> pooled) {
    if (!pooled.ok()) {
      done(pooled.status());
      return;
    }
    EmbedResult result;
    result.model = model_name;
    result.prompt_tokens = shared_plan->tokens;
    result.vectors.reserve(shared_plan->windows.size());
    for (const auto& window : shared_plan->windows) {
      result.vectors.push_back(Finish(*pooled, shared_plan->sequences, window, *shared_call));
    }
    done(std::move(result));
  };
  Status submitted = served->scheduler->Submit(std::move(job));
  if (!submitted.ok()) done(submitted);
}

Status EmbedService::AddRoutes(http::Router& router, bool openai_route) {
  if (openai_route) RETURN_IF_ERROR(AddOpenAiRoutes(*this, router));
  RETURN_IF_ERROR(AddTeiRoutes(*this, router));
  return AddVecBoostRoutes(*this, router);
}

void EmbedService::Embed(infer::EmbeddingRequest request,
                         std::function<void(Result<infer::EmbeddingResponse>)> done) {
  EmbedCall call;
  call.model = std::move(request.model);
  call.texts = std::move(request.texts);
  call.dimensions = request.dimensions;
  call.normalize = request.normalize;
  Embed(std::move(call), std::chrono::steady_clock::now() + options_.request_timeout,
        [done = std::move(done)](Result<EmbedResult> result) {
          if (!result.ok()) return done(result.status());
          done(infer::EmbeddingResponse{.model = std::move(result->model),
                                        .vectors = std::move(result->vectors),
                                        .prompt_tokens = result->prompt_tokens});
        });
}

std::vector<std::string> EmbedService::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& m : models_) {
    names.push_back(m.name);
    names.insert(names.end(), m.aliases.begin(), m.aliases.end());
  }
  return names;
}

void EmbedService::SetInlineAdmission(std::function<bool(const http::Request&)> cached_auth) {
  inline_auth_ = std::move(cached_auth);
}

bool EmbedService::AdmitsInline(const http::Request& request) const {
  // A second cache tier (Redis) is a network round trip per lookup: never on the I/O thread.
  if (!inline_auth_ || options_.second_tier != nullptr) return false;
  if (request.body.size() > kInlineBodyBytes) return false;  // tokenization stays short
  return options_.public_access || inline_auth_(request);
}

std::string EmbedService::InfoJsonMembers() const {
  if (models_.empty()) return "";
  const ServedModel& m = models_.front();
  const auto& info = m.model->info();
  std::string models;
  for (const auto& each : models_) {
    models += fmt::format("{}\"{}\"", models.empty() ? "" : ",", each.name);
  }
  return fmt::format(
      R"("model_id":"{}","model_sha":null,"model_dtype":"float32","model_type":{{"embedding":)"
      R"({{"pooling":"{}"}}}},"max_concurrent_requests":{},"max_input_length":{},)"
      R"("max_batch_tokens":{},"max_batch_requests":{},"max_client_batch_size":{},)"
      R"("tokenization_workers":null,"embedding_models":[{}])",
      m.name, PoolingLabel(info.pooling), options_.scheduler.max_concurrent_requests,
      info.max_input_tokens, options_.scheduler.max_batch_tokens,
      options_.scheduler.max_batch_requests, options_.max_client_batch_size, models);
}

}  // namespace atrium::embed
