// The provider adapters of this build (one file each); registry.cc lists them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "atrium/relay/provider.h"

namespace atrium::relay {

const ProviderAdapter& AnthropicProvider();
const ProviderAdapter& OpenAIProvider();
const ProviderAdapter& OpenAICompatibleProvider();
const ProviderAdapter& AzureOpenAIProvider();
const ProviderAdapter& LocalProvider();
const ProviderAdapter& GeminiProvider();
const ProviderAdapter& BedrockProvider();

// bedrock.cc, exposed for its tests.
// The Bedrock model id of a client (or alias-mapped) model name: the built-in table for Anthropic
// names ("claude-3-5-sonnet" → "anthropic.claude-3-5-sonnet-20240620-v1:0"), anything else as is.
std::string BedrockModelId(std::string_view model);
// An Anthropic Messages body as Bedrock's InvokeModel wants it: without `model` and `stream`,
// with "anthropic_version":"bedrock-2023-05-31" and the client's anthropic-beta flags as
// "anthropic_beta". InvalidArgument when the body is not a JSON object.
Result<std::string> BedrockRequestBody(std::string_view anthropic_body,
                                       const http::Headers& client_headers);
// The decoder of InvokeModelWithResponseStream bodies: AWS event-stream `chunk` events to
// Anthropic SSE events; exceptions to an Anthropic `error` event with the status they stand for.
std::unique_ptr<UpstreamStreamDecoder> MakeBedrockStreamDecoder();

}  // namespace atrium::relay
