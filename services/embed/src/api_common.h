// What the three embedding APIs share: body parsing, input shapes, the caller's priority, and
// fast JSON rendering of vectors. Private to services/embed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "atrium/core/status.h"
#include "atrium/embed/embed_service.h"
#include "atrium/http/handler.h"

namespace atrium::embed::api {

namespace json = boost::json;

// The body as a JSON object; InvalidArgument ("body: ...") otherwise.
Result<json::object> ParseObject(std::string_view body);

// Optional members; absent or null leaves `out` unchanged. Wrong types: InvalidArgument naming
// the field.
Status ReadBool(const json::object& o, std::string_view name, bool& out);
Status ReadString(const json::object& o, std::string_view name, std::string& out);
Status ReadSize(const json::object& o, std::string_view name, size_t& out, size_t min = 0);

// `value` as text inputs or token-id inputs into `call`: a string, an array of strings, an
// array of token ids, or an array of token-id arrays. `field` names it in errors.
Status ReadInputs(const json::value& value, std::string_view field, EmbedCall& call);

// Priority (field "priority" or header x-priority; "critical" only for admins) and the API key's
// tier weight, plus the client-gone probe.
Status ApplyCaller(const http::Request& request, const json::object& body,
                   const http::Responder& responder, EmbedCall& call);

// long_input ("truncate", "chunk", "error") and truncation_direction ("right"/"left", any case).
Status ReadLongInput(const json::object& o, bool truncate_default, EmbedCall& call);

// Appends `v` as a JSON array of shortest round-trip floats.
void AppendVector(std::string& out, const std::vector<float>& v);
// Appends the little-endian float32 bytes of `v`, base64 encoded, as a JSON string.
void AppendBase64Vector(std::string& out, const std::vector<float>& v);

// Field name a message of the form "field: ..." starts with ("" when none).
std::string FieldOf(const Status& status);

double Cosine(const std::vector<float>& a, const std::vector<float>& b);

// The deadline of a request that starts now.
std::chrono::steady_clock::time_point DeadlineFor(const EmbedService& service);

// Route options for the embedding routes (scope, body limit, blocking pool for tokenization).
http::RouteOptions EmbedRouteOptions(const EmbedService& service);

}  // namespace atrium::embed::api

namespace atrium::embed {
Status AddOpenAiRoutes(EmbedService& service, http::Router& router);
Status AddTeiRoutes(EmbedService& service, http::Router& router);
Status AddVecBoostRoutes(EmbedService& service, http::Router& router);
}  // namespace atrium::embed
