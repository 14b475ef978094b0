// The one place that lists the provider adapters.
#include <array>

#include "providers.h"

namespace atrium::relay {
namespace {

const std::array<const ProviderAdapter*, 7>& Registered() {
  static const std::array<const ProviderAdapter*, 7> kAll = {
      &AnthropicProvider(), &OpenAIProvider(), &OpenAICompatibleProvider(), &AzureOpenAIProvider(),
      &GeminiProvider(),    &LocalProvider(),  &BedrockProvider()};
  return kAll;
}

}  // namespace

const ProviderAdapter* FindProvider(std::string_view provider) {
  for (const auto* a : Registered()) {
    if (a->name() == provider) return a;
  }
  return nullptr;
}

std::span<const std::string_view> ProvidersServing(Operation op, ApiFormat client) {
  // Worked out once per (operation, format): the registry is fixed, and this runs per request.
  using List = std::vector<std::string_view>;
  static const auto kTable = [] {
    constexpr int kOps = static_cast<int>(Operation::kEmbeddings) + 1;
    constexpr int kFormats = static_cast<int>(ApiFormat::kGemini) + 1;
    std::array<std::array<List, kFormats>, kOps> table;
    for (int o = 0; o < kOps; ++o) {
      for (int f = 0; f < kFormats; ++f) {
        for (const auto* a : Registered()) {
          if (!a->Supports(static_cast<Operation>(o))) continue;
          // Chat translates between every format; token counting stays within one API.
          if (static_cast<Operation>(o) == Operation::kCountTokens &&
              a->format() != static_cast<ApiFormat>(f)) {
            continue;
          }
          table[o][f].push_back(a->name());
        }
      }
    }
    return table;
  }();
  return kTable[static_cast<int>(op)][static_cast<int>(client)];
}

std::string JoinUrl(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string url;
  url.reserve(base.size() + path.size());
  url.append(base).append(path);
  return url;
}

}  // namespace atrium::relay
