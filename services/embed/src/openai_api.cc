// OpenAI's embeddings API: POST /v1/embeddings, with OpenAI's error shape.
#include <fmt/format.h>

#include "api_common.h"
#include "atrium/http/json_error.h"
#include "atrium/http/router.h"

namespace atrium::embed {
namespace {

using http::Request;
using http::Responder;
using http::Response;

// {"error": {"message", "type", "param", "code"}} as OpenAI sends it.
Response OpenAiError(const Status& s) {
  int status = HttpStatusOf(s.code());
  std::string type = "invalid_request_error";
  std::string code = "null";
  switch (s.code()) {
    case StatusCode::kNotFound:
      code = "\"model_not_found\"";
      break;
    case StatusCode::kResourceExhausted:
      type = "rate_limit_error";
      code = "\"rate_limit_exceeded\"";
      break;
    case StatusCode::kUnavailable:
    case StatusCode::kInternal:
    case StatusCode::kDeadlineExceeded:
      type = "server_error";
      break;
    default:
      break;
  }
  std::string field = api::FieldOf(s);
  return Response::Json(status, fmt::format(R"({{"error":{{"message":{},"type":"{}","param":{},)"
                                            R"("code":{}}}}})",
                                            http::JsonQuote(s.message()), type,
                                            field.empty() ? "null" : http::JsonQuote(field), code));
}

void HandleEmbeddings(EmbedService& service, Request& req, Responder responder) {
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(OpenAiError(body.status()));
  EmbedCall call;
  const auto* input = body->if_contains("input");
  if (input == nullptr || input->is_null()) {
    return responder.Send(OpenAiError(InvalidArgument("input: is required")));
  }
  std::string format = "float";
  std::string user;  // accepted for compatibility (OpenAI's abuse monitoring); not used
  Status s = api::ReadInputs(*input, "input", call);
  if (s.ok()) s = api::ReadString(*body, "model", call.model);
  if (s.ok()) s = api::ReadString(*body, "user", user);
  if (s.ok()) s = api::ReadString(*body, "encoding_format", format);
  if (s.ok()) s = api::ReadSize(*body, "dimensions", call.dimensions, 1);
  if (s.ok()) s = api::ReadBool(*body, "normalize", call.normalize);
  if (s.ok()) s = api::ReadLongInput(*body, /*truncate_default=*/true, call);
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (s.ok() && format != "float" && format != "base64") {
    s = InvalidArgument("encoding_format: expected float or base64, got '" + format + "'");
  }
  if (!s.ok()) return responder.Send(OpenAiError(s));
  bool base64 = format == "base64";
  service.Embed(
      std::move(call), api::DeadlineFor(service), [responder, base64](Result<EmbedResult> result) {
        if (!result.ok()) return responder.Send(OpenAiError(result.status()));
        std::string out = R"({"object":"list","data":[)";
        for (size_t i = 0; i < result->vectors.size(); ++i) {
          if (i > 0) out.push_back(',');
          fmt::format_to(std::back_inserter(out),
                         R"({{"object":"embedding","index":{},"embedding":)", i);
          if (base64) {
            api::AppendBase64Vector(out, result->vectors[i]);
          } else {
            api::AppendVector(out, result->vectors[i]);
          }
          out.push_back('}');
        }
        fmt::format_to(std::back_inserter(out),
                       R"(],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}})",
                       http::JsonQuote(result->model), result->prompt_tokens,
                       result->prompt_tokens);
        responder.Send(Response::Json(200, std::move(out)));
      });
}

}  // namespace

Status AddOpenAiRoutes(EmbedService& service, http::Router& router) {
  return router.Add("POST", "/v1/embeddings", http::Handler([&service](Request& req, Responder r) {
                      HandleEmbeddings(service, req, r);
                    }),
                    api::EmbedRouteOptions(service));
}

}  // namespace atrium::embed
