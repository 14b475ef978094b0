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

std::vector<std::string> ProvidersServing(Operation op, ApiFormat client) {
  std::vector<std::string> out;
  for (const auto* a : Registered()) {
    if (!a->Supports(op)) continue;
    // Chat translates between every format; token counting stays within one API.
    if (op == Operation::kCountTokens && a->format() != client) continue;
    out.emplace_back(a->name());
  }
  return out;
}

std::string JoinUrl(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base) + std::string(path);
}

}  // namespace atrium::relay
