// OpenAI chat ⇄ Gemini generateContent, used by translate.cc (which composes Anthropic ⇄ Gemini
// through the OpenAI form). Pure functions; translators are single-stream objects.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "atrium/relay/translate.h"

namespace atrium::relay {

// The Gemini body has no model (it is in the URL path).
Result<std::string> OpenAIToGeminiRequest(std::string_view body);
// A Gemini request (with the relay's "stream" marker for streaming methods) as OpenAI chat.
Result<std::string> GeminiToOpenAIRequest(std::string_view body, std::string_view model);
Result<std::string> GeminiToOpenAIResponse(std::string_view body, std::string_view model);
Result<std::string> OpenAIToGeminiResponse(std::string_view body, std::string_view model);
std::unique_ptr<StreamTranslator> MakeGeminiToOpenAIStream(StreamTranslatorOptions options);
std::unique_ptr<StreamTranslator> MakeOpenAIToGeminiStream(StreamTranslatorOptions options);

}  // namespace atrium::relay
