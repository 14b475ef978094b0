// Hugging Face text-embeddings-inference's API: POST /embed, /tokenize, /decode, /similarity,
// with TEI's error shape {"error", "error_type"} and status codes (413 validation, 422 bad
// request, 424 backend, 429 overloaded). GET /info is merged into Atrium's /info.
#include <fmt/format.h>

#include "api_common.h"
#include "atrium/http/json_error.h"
#include "atrium/http/router.h"

namespace atrium::embed {
namespace {

using http::Request;
using http::Responder;
using http::Response;

Response TeiError(const Status& s) {
  int status = 422;
  std::string type = "Validation";
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kPayloadTooLarge:
      // TEI answers 413 to inputs it cannot take (too long, too many) and 422 to bodies it
      // cannot read.
      status = s.message().starts_with("body:") ? 422 : 413;
      break;
    case StatusCode::kNotFound:
      status = 404;
      break;
    case StatusCode::kResourceExhausted:
      status = 429;
      type = "Overloaded";
      break;
    case StatusCode::kDeadlineExceeded:
      status = 504;
      type = "Overloaded";
      break;
    case StatusCode::kUnavailable:
      status = 503;
      type = "Unhealthy";
      break;
    default:
      status = 424;
      type = "Backend";
      break;
  }
  return Response::Json(status, fmt::format(R"({{"error":{},"error_type":"{}"}})",
                                            http::JsonQuote(s.message()), type));
}

// /tokenize and /decode take at most max_client_batch_size inputs, like /embed.
Status CheckCount(const EmbedService& service, std::string_view field, size_t count) {
  size_t limit = service.options().max_client_batch_size;
  if (count <= limit) return Status::Ok();
  return PayloadTooLarge(
      fmt::format("{}: {} inputs exceed the limit of {} per request", field, count, limit));
}

// The members /embed and /similarity share.
Status ReadEmbedOptions(const api::json::object& body, EmbedCall& call) {
  RETURN_IF_ERROR(api::ReadBool(body, "normalize", call.normalize));
  RETURN_IF_ERROR(api::ReadLongInput(body, /*truncate_default=*/false, call));
  RETURN_IF_ERROR(api::ReadString(body, "prompt_name", call.prompt_name));
  RETURN_IF_ERROR(api::ReadString(body, "model", call.model));
  return api::ReadSize(body, "dimensions", call.dimensions, 1);
}

void HandleEmbed(EmbedService& service, Request& req, Responder responder) {
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(TeiError(body.status()));
  EmbedCall call;
  call.input_field = "inputs";
  const auto* inputs = body->if_contains("inputs");
  Status s = inputs == nullptr ? InvalidArgument("body: inputs is required")
                               : api::ReadInputs(*inputs, "inputs", call);
  if (s.ok()) s = ReadEmbedOptions(*body, call);
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (!s.ok()) return responder.Send(TeiError(s));
  service.Embed(std::move(call), api::DeadlineFor(service),
                [responder](Result<EmbedResult> result) {
                  if (!result.ok()) return responder.Send(TeiError(result.status()));
                  std::string out = "[";
                  for (size_t i = 0; i < result->vectors.size(); ++i) {
                    if (i > 0) out.push_back(',');
                    api::AppendVector(out, result->vectors[i]);
                  }
                  out.push_back(']');
                  Response resp = Response::Json(200, std::move(out));
                  resp.headers.Set("x-total-tokens", std::to_string(result->prompt_tokens));
                  resp.headers.Set("x-model-id", result->model);
                  responder.Send(std::move(resp));
                });
}

void HandleSimilarity(EmbedService& service, Request& req, Responder responder) {
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(TeiError(body.status()));
  const auto* inputs = body->if_contains("inputs");
  if (inputs == nullptr || !inputs->is_object()) {
    return responder.Send(
        TeiError(InvalidArgument("body: inputs must be {\"source_sentence\", \"sentences\"}")));
  }
  const auto& in = inputs->as_object();
  const auto* source = in.if_contains("source_sentence");
  const auto* sentences = in.if_contains("sentences");
  EmbedCall call;
  // Input 0 is the source sentence, the others are inputs.sentences[i - 1].
  call.input_field = "inputs.sentences";
  call.input_name = [](size_t i) {
    return i == 0 ? std::string("inputs.source_sentence")
                  : fmt::format("inputs.sentences[{}]", i - 1);
  };
  Status s;
  size_t limit = service.options().max_client_batch_size;
  if (source == nullptr || !source->is_string()) {
    s = InvalidArgument("inputs.source_sentence: must be a string");
  } else if (sentences == nullptr || !sentences->is_array() || sentences->as_array().empty()) {
    s = InvalidArgument("inputs.sentences: must be a non-empty array of strings");
  } else if (sentences->as_array().size() + 1 > limit) {
    s =
        PayloadTooLarge(fmt::format("inputs.sentences: {} sentences exceed the limit of {} per "
                                    "request (with the source sentence)",
                                    sentences->as_array().size(), limit - 1));
  } else {
    call.texts.emplace_back(source->as_string());
    const auto& list = sentences->as_array();
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) {
        s = InvalidArgument(fmt::format("inputs.sentences[{}]: must be a string", i));
        break;
      }
      call.texts.emplace_back(list[i].as_string());
    }
  }
  if (s.ok()) s = ReadEmbedOptions(*body, call);
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (!s.ok()) return responder.Send(TeiError(s));
  service.Embed(
      std::move(call), api::DeadlineFor(service), [responder](Result<EmbedResult> result) {
        if (!result.ok()) return responder.Send(TeiError(result.status()));
        std::string out = "[";
        for (size_t i = 1; i < result->vectors.size(); ++i) {
          if (i > 1) out.push_back(',');
          fmt::format_to(std::back_inserter(out), "{}",
                         static_cast<float>(api::Cosine(result->vectors[0], result->vectors[i])));
        }
        out.push_back(']');
        responder.Send(Response::Json(200, std::move(out)));
      });
}

Response HandleTokenize(EmbedService& service, Request& req) {
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return TeiError(body.status());
  EmbedCall call;
  const auto* inputs = body->if_contains("inputs");
  bool add_special = true;
  Status s = inputs == nullptr ? InvalidArgument("body: inputs is required")
                               : api::ReadInputs(*inputs, "inputs", call);
  if (s.ok() && call.texts.empty()) s = InvalidArgument("inputs: must be strings");
  if (s.ok()) s = CheckCount(service, "inputs", call.texts.size());
  if (s.ok()) s = api::ReadBool(*body, "add_special_tokens", add_special);
  if (s.ok()) s = api::ReadString(*body, "prompt_name", call.prompt_name);
  if (s.ok()) s = api::ReadString(*body, "model", call.model);
  if (!s.ok()) return TeiError(s);
  const ServedModel* model = service.FindModel(call.model);
  if (model == nullptr) return TeiError(NotFound("model: '" + call.model + "' is not served here"));
  std::string prompt;
  if (!call.prompt_name.empty()) {
    const auto& prompts = model->model->info().prompts;
    auto it = prompts.find(call.prompt_name);
    if (it == prompts.end()) {
      return TeiError(
          InvalidArgument("prompt_name: the model has no prompt '" + call.prompt_name + "'"));
    }
    prompt = it->second;
  }
  const auto& tok = model->model->tokenizer();
  std::string out = "[";
  for (size_t i = 0; i < call.texts.size(); ++i) {
    std::string text = prompt + call.texts[i];
    infer::Encoding e = tok.Encode(text, add_special, size_t{1} << 30);
    if (i > 0) out.push_back(',');
    out.push_back('[');
    for (size_t t = 0; t < e.ids.size(); ++t) {
      if (t > 0) out.push_back(',');
      bool special = e.special_tokens_mask[t] != 0;
      auto [start, stop] = e.offsets[t];
      std::string piece;
      if (special || start >= stop || stop > text.size()) {
        piece = std::string(tok.IdToToken(e.ids[t]).value_or(""));
      } else {
        piece = text.substr(start, stop - start);
      }
      if (special) {
        fmt::format_to(std::back_inserter(out),
                       R"({{"id":{},"text":{},"special":true,"start":null,"stop":null}})", e.ids[t],
                       http::JsonQuote(piece));
      } else {
        fmt::format_to(std::back_inserter(out),
                       R"({{"id":{},"text":{},"special":false,"start":{},"stop":{}}})", e.ids[t],
                       http::JsonQuote(piece), start, stop);
      }
    }
    out.push_back(']');
  }
  out.push_back(']');
  return Response::Json(200, std::move(out));
}

Response HandleDecode(EmbedService& service, Request& req) {
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return TeiError(body.status());
  EmbedCall call;
  const auto* ids = body->if_contains("ids");
  bool skip_special = true;
  Status s = ids == nullptr ? InvalidArgument("body: ids is required")
                            : api::ReadInputs(*ids, "ids", call);
  if (s.ok() && call.token_inputs.empty()) s = InvalidArgument("ids: must be token ids");
  if (s.ok()) s = CheckCount(service, "ids", call.token_inputs.size());
  if (s.ok()) s = api::ReadBool(*body, "skip_special_tokens", skip_special);
  if (s.ok()) s = api::ReadString(*body, "model", call.model);
  if (!s.ok()) return TeiError(s);
  const ServedModel* model = service.FindModel(call.model);
  if (model == nullptr) return TeiError(NotFound("model: '" + call.model + "' is not served here"));
  std::string out = "[";
  for (size_t i = 0; i < call.token_inputs.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += http::JsonQuote(model->model->tokenizer().Decode(call.token_inputs[i], skip_special));
  }
  out.push_back(']');
  return Response::Json(200, std::move(out));
}

}  // namespace

Status AddTeiRoutes(EmbedService& service, http::Router& router) {
  http::RouteOptions options = api::EmbedRouteOptions(service);
  RETURN_IF_ERROR(router.Add("POST", "/embed", http::Handler([&service](Request& req, Responder r) {
                               HandleEmbed(service, req, r);
                             }),
                             options));
  RETURN_IF_ERROR(router.Add(
      "POST", "/similarity",
      http::Handler([&service](Request& req, Responder r) { HandleSimilarity(service, req, r); }),
      options));
  RETURN_IF_ERROR(router.Add("POST", "/tokenize", http::SyncHandler([&service](Request& req) {
                               return HandleTokenize(service, req);
                             }),
                             options));
  return router.Add(
      "POST", "/decode",
      http::SyncHandler([&service](Request& req) { return HandleDecode(service, req); }), options);
}

}  // namespace atrium::embed
