// The provider adapters of this build (one file each); registry.cc lists them.
#pragma once

#include "atrium/relay/provider.h"

namespace atrium::relay {

const ProviderAdapter& AnthropicProvider();
const ProviderAdapter& OpenAIProvider();
const ProviderAdapter& OpenAICompatibleProvider();
const ProviderAdapter& AzureOpenAIProvider();
const ProviderAdapter& LocalProvider();
const ProviderAdapter& GeminiProvider();

}  // namespace atrium::relay
