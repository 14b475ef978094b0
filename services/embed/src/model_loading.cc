// Loading the configured models (kept apart from the serving code so that tests of the service
// can run on models built in memory).
#include <spdlog/spdlog.h>

#include "atrium/embed/embed_service.h"
#include "atrium/infer/model_hub.h"

namespace atrium::embed {

Result<std::unique_ptr<EmbedService>> EmbedService::Create(EmbedOptions options,
                                                           MetricsRegistry* metrics,
                                                           std::shared_ptr<spdlog::logger> logger) {
  std::vector<ServedModel> models;
  infer::HubOptions hub = infer::HubOptionsFromEnvironment(options.model_cache_dir);
  hub.cache_dir = options.model_cache_dir;
  if (logger) hub.log = [logger](std::string_view line) { logger->info("{}", line); };
  for (const auto& spec : options.models) {
    auto dir = infer::ResolveModel(spec.source, hub);
    if (!dir.ok()) return dir.status().WithContext("embed model " + spec.name);
    auto model = infer::EmbeddingModel::Load(*dir, {.threads = options.threads});
    if (!model.ok())
      return model.status().WithContext("embed model " + spec.name + " (" + *dir + ")");
    if (logger) {
      const auto& info = (*model)->info();
      logger->info(
          "loaded embedding model {} from {}: {} layers, hidden {}, {} weights, pooling {}",
          spec.name, *dir, info.num_layers, info.hidden_size, info.weights_dtype,
          infer::PoolingName(info.pooling));
    }
    models.push_back(ServedModel{.name = spec.name,
                                 .aliases = spec.aliases,
                                 .source = spec.source,
                                 .model = std::move(*model),
                                 .scheduler = nullptr});
  }
  return CreateWithModels(std::move(options), std::move(models), metrics, std::move(logger));
}

}  // namespace atrium::embed
