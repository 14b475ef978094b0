// Translation between the OpenAI chat-completions, Anthropic messages and Gemini generateContent
// APIs, every direction, for requests, responses, streams and errors (Anthropic ⇄ Gemini goes
// through the OpenAI form) (docs/relay.md, "Translation"). The golden files under
// services/relay/test/golden/ are the executable specification.
//
// Mapping summary: system prompts (OpenAI system/developer messages <-> Anthropic `system`),
// multi-part content (text; images as base64 data URLs or plain URLs), tools and tool choice,
// assistant tool calls (<-> tool_use blocks), tool results (<-> tool_result blocks), stop
// reasons (stop/length/tool_calls <-> end_turn|stop_sequence/max_tokens/tool_use) and usage
// (prompt/completion <-> input/output, cache reads/writes).
//
// Pure functions and single-stream objects: thread-safe / thread-compatible respectively.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "atrium/core/status.h"
#include "atrium/relay/sse_parser.h"
#include "atrium/relay/types.h"

namespace atrium::relay {

// A request body in format `from` rewritten for an upstream speaking `to`, with `upstream_model`
// as its model. InvalidArgument (naming the field) for a malformed body. from == to returns the
// body with only the model replaced (see ReplaceTopLevelModel).
Result<std::string> TranslateRequest(ApiFormat from, ApiFormat to, std::string_view body,
                                     std::string_view upstream_model);

// A successful non-streaming response of an upstream speaking `from`, rewritten for a client of
// format `to`. `client_model` is the model name the client asked for.
Result<std::string> TranslateResponse(ApiFormat from, ApiFormat to, std::string_view body,
                                      std::string_view client_model);

// Translates one upstream stream event by event. Feed the parsed upstream events in order;
// each call returns the client-format bytes to send now (possibly empty). Finish() returns the
// closing bytes when the upstream ended normally (OpenAI `[DONE]`, Anthropic `message_stop`) if
// they were not sent yet.
class StreamTranslator {
 public:
  virtual ~StreamTranslator() = default;
  virtual std::string OnEvent(const ParsedSseEvent& event) = 0;
  virtual std::string Finish() = 0;
};

struct StreamTranslatorOptions {
  std::string client_model;
  bool include_usage = false;      // OpenAI clients: stream_options.include_usage
  std::string id_seed;             // used for generated ids (the request id)
  bool gemini_json_array = false;  // Gemini clients: the JSON-array stream instead of SSE
};

// Null when from == to (pass-through needs no translator).
std::unique_ptr<StreamTranslator> MakeStreamTranslator(ApiFormat from, ApiFormat to,
                                                       StreamTranslatorOptions options);

// The error body of API `format` for an HTTP status and message:
//   Anthropic {"type":"error","error":{"type":"overloaded_error","message":...}}
//   OpenAI    {"error":{"message":...,"type":...,"param":null,"code":...}}
// `type` empty: derived from the status (429 rate_limit_error, 529 overloaded_error, ...).
std::string ErrorBody(ApiFormat format, int status, std::string_view message,
                      std::string_view type = "");
// The in-stream error of API `format` (after bytes were sent): Anthropic an `error` event,
// OpenAI a `data: {"error":...}` chunk followed by `data: [DONE]`.
std::string StreamErrorEvent(ApiFormat format, int status, std::string_view message);
// Re-shapes an upstream error body of format `from` for a client of format `to` (keeps the
// message; falls back to the raw text when it is not JSON).
std::string TranslateErrorBody(ApiFormat from, ApiFormat to, int status, std::string_view body);

// `body` (a JSON object) with its top-level "model" string replaced by `model`, every other byte
// unchanged; the body is returned as is when it has no top-level "model" string.
std::string ReplaceTopLevelModel(std::string_view body, std::string_view model);

}  // namespace atrium::relay
