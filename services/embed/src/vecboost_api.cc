// VecBoost's API: POST /api/v1/embed, /api/v1/embed/batch, /api/v1/similarity and
// /api/v1/embed/document (the text comes in the body; VecBoost's server-side file path is not
// offered). Errors use Atrium's own shape.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "api_common.h"
#include "atrium/http/json_error.h"
#include "atrium/http/router.h"

namespace atrium::embed {
namespace {

using http::Request;
using http::Responder;
using http::Response;
using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Status ReadCommon(const api::json::object& body, EmbedCall& call) {
  RETURN_IF_ERROR(api::ReadString(body, "model", call.model));
  RETURN_IF_ERROR(api::ReadBool(body, "normalize", call.normalize));
  RETURN_IF_ERROR(api::ReadSize(body, "dimensions", call.dimensions, 1));
  return api::ReadLongInput(body, /*truncate_default=*/true, call);
}

Result<std::string> RequiredText(const api::json::object& body, std::string_view name) {
  std::string text;
  RETURN_IF_ERROR(api::ReadString(body, name, text));
  if (text.empty()) return InvalidArgument(std::string(name) + ": a non-empty string is required");
  return text;
}

void HandleEmbed(EmbedService& service, Request& req, Responder responder) {
  auto start = Clock::now();
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(Response::FromStatus(body.status()));
  EmbedCall call;
  call.input_field = "text";
  call.input_name = [](size_t) { return std::string("text"); };
  auto text = RequiredText(*body, "text");
  Status s = text.status();
  if (s.ok()) call.texts.push_back(std::move(*text));
  if (s.ok()) s = ReadCommon(*body, call);
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (!s.ok()) return responder.Send(Response::FromStatus(s));
  service.Embed(std::move(call), api::DeadlineFor(service),
                [responder, start](Result<EmbedResult> result) {
                  if (!result.ok()) return responder.Send(Response::FromStatus(result.status()));
                  std::string out = R"({"embedding":)";
                  api::AppendVector(out, result->vectors[0]);
                  fmt::format_to(std::back_inserter(out),
                                 R"(,"dimension":{},"model":{},"tokens":{},)"
                                 R"("processing_time_ms":{:.3f}}})",
                                 result->vectors[0].size(), http::JsonQuote(result->model),
                                 result->prompt_tokens, MillisSince(start));
                  responder.Send(Response::Json(200, std::move(out)));
                });
}

void HandleBatch(EmbedService& service, Request& req, Responder responder) {
  auto start = Clock::now();
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(Response::FromStatus(body.status()));
  EmbedCall call;
  call.input_field = "texts";
  const auto* texts = body->if_contains("texts");
  Status s;
  if (texts == nullptr || !texts->is_array() || texts->as_array().empty()) {
    s = InvalidArgument("texts: a non-empty array of strings is required");
  } else {
    s = api::ReadInputs(*texts, "texts", call);
    if (s.ok() && call.texts.empty()) s = InvalidArgument("texts: must be strings");
  }
  if (s.ok()) s = ReadCommon(*body, call);
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (!s.ok()) return responder.Send(Response::FromStatus(s));
  service.Embed(
      std::move(call), api::DeadlineFor(service), [responder, start](Result<EmbedResult> result) {
        if (!result.ok()) return responder.Send(Response::FromStatus(result.status()));
        std::string out = R"({"embeddings":[)";
        for (size_t i = 0; i < result->vectors.size(); ++i) {
          if (i > 0) out.push_back(',');
          api::AppendVector(out, result->vectors[i]);
        }
        fmt::format_to(std::back_inserter(out),
                       R"(],"count":{},"dimension":{},"model":{},"tokens":{},)"
                       R"("processing_time_ms":{:.3f}}})",
                       result->vectors.size(), result->vectors[0].size(),
                       http::JsonQuote(result->model), result->prompt_tokens, MillisSince(start));
        responder.Send(Response::Json(200, std::move(out)));
      });
}

// {"source", "target"} → {"score"}; {"source", "targets": [...]} → {"scores": [...]}.
void HandleSimilarity(EmbedService& service, Request& req, Responder responder) {
  auto start = Clock::now();
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(Response::FromStatus(body.status()));
  EmbedCall call;
  auto source = RequiredText(*body, "source");
  Status s = source.status();
  bool many = body->contains("targets");
  // Input 0 is the source, the others are the target or targets[i - 1].
  call.input_field = many ? "targets" : "target";
  call.input_name = [many](size_t i) {
    if (i == 0) return std::string("source");
    return many ? fmt::format("targets[{}]", i - 1) : std::string("target");
  };
  size_t limit = service.options().max_client_batch_size;
  if (s.ok()) {
    call.texts.push_back(std::move(*source));
    if (many) {
      const auto& targets = body->at("targets");
      if (!targets.is_array() || targets.as_array().empty()) {
        s = InvalidArgument("targets: a non-empty array of strings is required");
      } else if (targets.as_array().size() + 1 > limit) {
        s = PayloadTooLarge(fmt::format("targets: {} targets exceed the limit of {} per request",
                                        targets.as_array().size(), limit - 1));
      } else {
        s = api::ReadInputs(targets, "targets", call);
        if (s.ok() && !call.token_inputs.empty()) s = InvalidArgument("targets: must be strings");
      }
    } else {
      auto target = RequiredText(*body, "target");
      s = target.status();
      if (s.ok()) call.texts.push_back(std::move(*target));
    }
  }
  if (s.ok()) s = ReadCommon(*body, call);
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (!s.ok()) return responder.Send(Response::FromStatus(s));
  service.Embed(
      std::move(call), api::DeadlineFor(service),
      [responder, start, many](Result<EmbedResult> result) {
        if (!result.ok()) return responder.Send(Response::FromStatus(result.status()));
        std::string out = many ? R"({"scores":[)" : R"({"score":)";
        for (size_t i = 1; i < result->vectors.size(); ++i) {
          if (i > 1) out.push_back(',');
          fmt::format_to(std::back_inserter(out), "{}",
                         static_cast<float>(api::Cosine(result->vectors[0], result->vectors[i])));
        }
        fmt::format_to(std::back_inserter(out), R"({},"model":{},"processing_time_ms":{:.3f}}})",
                       many ? "]" : "", http::JsonQuote(result->model), MillisSince(start));
        responder.Send(Response::Json(200, std::move(out)));
      });
}

struct Chunk {
  size_t start = 0, end = 0;  // byte offsets in the document
  size_t tokens = 0;
};

// {"text", "chunk_size"? (tokens), "overlap"? (tokens), "return_chunk_embeddings"?} →
// {"embedding" (token-weighted mean of the chunks, normalized as asked), "chunks": [{"index",
// "text", "start", "end", "tokens", "embedding"?}], "chunk_count", "dimension", "model"}.
void HandleDocument(EmbedService& service, Request& req, Responder responder) {
  auto start = Clock::now();
  auto body = api::ParseObject(req.body);
  if (!body.ok()) return responder.Send(Response::FromStatus(body.status()));
  EmbedCall call;
  auto text = RequiredText(*body, "text");
  Status s = text.status();
  if (s.ok()) s = ReadCommon(*body, call);
  const ServedModel* model = service.FindModel(call.model);
  if (s.ok() && model == nullptr) s = NotFound("model: '" + call.model + "' is not served here");
  size_t limit = 0;
  size_t chunk_size = 0;
  size_t overlap = 32;
  bool chunk_vectors = true;
  if (s.ok()) {
    const auto& tok = model->model->tokenizer();
    limit = model->model->info().max_input_tokens - tok.NumSpecialTokensToAdd(false);
    chunk_size = std::min<size_t>(limit, 256);
    s = api::ReadSize(*body, "chunk_size", chunk_size, 1);
  }
  // Without an explicit overlap, 32 tokens or half a chunk, whichever is smaller: a default must
  // not make a request that sets neither field fail (small models have chunks under 32 tokens).
  if (s.ok()) overlap = std::min<size_t>(overlap, chunk_size / 2);
  if (s.ok()) s = api::ReadSize(*body, "overlap", overlap);
  if (s.ok()) s = api::ReadBool(*body, "return_chunk_embeddings", chunk_vectors);
  if (s.ok() && chunk_size > limit) {
    s = InvalidArgument(fmt::format("chunk_size: at most {} tokens for this model", limit));
  }
  if (s.ok() && overlap >= chunk_size) s = InvalidArgument("overlap: must be below chunk_size");
  if (s.ok()) s = api::ApplyCaller(req, *body, responder, call);
  if (!s.ok()) return responder.Send(Response::FromStatus(s));

  // Token windows over the document, mapped back to byte ranges of the text.
  infer::Encoding e = model->model->tokenizer().Encode(*text, false, size_t{1} << 30);
  std::vector<Chunk> chunks;
  for (size_t from = 0; from < e.ids.size(); from += chunk_size - overlap) {
    size_t to = std::min(e.ids.size(), from + chunk_size);
    chunks.push_back(Chunk{e.offsets[from].first, e.offsets[to - 1].second, to - from});
    if (to == e.ids.size()) break;
  }
  if (chunks.empty()) {
    return responder.Send(
        Response::FromStatus(InvalidArgument("text: contains no tokens to embed")));
  }
  if (chunks.size() > service.options().max_client_batch_size) {
    return responder.Send(Response::FromStatus(PayloadTooLarge(fmt::format(
        "text: the document makes {} chunks of {} tokens, more than the limit of {} per request "
        "(raise chunk_size or send a shorter text)",
        chunks.size(), chunk_size, service.options().max_client_batch_size))));
  }
  call.input_field = "text";
  call.input_name = [](size_t i) { return fmt::format("text (chunk {})", i); };
  auto doc = std::make_shared<std::string>(std::move(*text));
  for (const auto& c : chunks) call.texts.push_back(doc->substr(c.start, c.end - c.start));
  bool normalize = call.normalize;
  call.normalize = false;  // chunk vectors are averaged first
  service.Embed(
      std::move(call), api::DeadlineFor(service),
      [responder, start, doc, chunks, normalize, chunk_vectors](Result<EmbedResult> result) {
        if (!result.ok()) return responder.Send(Response::FromStatus(result.status()));
        size_t dim = result->vectors[0].size();
        std::vector<double> mean(dim, 0.0);
        double weight = 0;
        for (size_t i = 0; i < chunks.size(); ++i) {
          for (size_t d = 0; d < dim; ++d) {
            mean[d] += static_cast<double>(chunks[i].tokens) * result->vectors[i][d];
          }
          weight += static_cast<double>(chunks[i].tokens);
        }
        auto finish = [normalize](std::vector<float>& v) {
          double norm = 0;
          for (float x : v) norm += static_cast<double>(x) * x;
          if (normalize && norm > 0) {
            for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
          }
        };
        std::vector<float> doc_vec(dim);
        for (size_t d = 0; d < dim; ++d) doc_vec[d] = static_cast<float>(mean[d] / weight);
        finish(doc_vec);
        std::string out = R"({"embedding":)";
        api::AppendVector(out, doc_vec);
        out += R"(,"chunks":[)";
        for (size_t i = 0; i < chunks.size(); ++i) {
          if (i > 0) out.push_back(',');
          fmt::format_to(
              std::back_inserter(out), R"({{"index":{},"text":{},"start":{},"end":{},"tokens":{})",
              i, http::JsonQuote(doc->substr(chunks[i].start, chunks[i].end - chunks[i].start)),
              chunks[i].start, chunks[i].end, chunks[i].tokens);
          if (chunk_vectors) {
            out += R"(,"embedding":)";
            finish(result->vectors[i]);
            api::AppendVector(out, result->vectors[i]);
          }
          out.push_back('}');
        }
        fmt::format_to(std::back_inserter(out),
                       R"(],"chunk_count":{},"dimension":{},"model":{},"tokens":{},)"
                       R"("processing_time_ms":{:.3f}}})",
                       chunks.size(), dim, http::JsonQuote(result->model), result->prompt_tokens,
                       MillisSince(start));
        responder.Send(Response::Json(200, std::move(out)));
      });
}

}  // namespace

Status AddVecBoostRoutes(EmbedService& service, http::Router& router) {
  http::RouteOptions options = api::EmbedRouteOptions(service);
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/embed",
      http::Handler([&service](Request& req, Responder r) { HandleEmbed(service, req, r); }),
      options));
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/embed/batch",
      http::Handler([&service](Request& req, Responder r) { HandleBatch(service, req, r); }),
      options));
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/similarity",
      http::Handler([&service](Request& req, Responder r) { HandleSimilarity(service, req, r); }),
      options));
  return router.Add(
      "POST", "/api/v1/embed/document",
      http::Handler([&service](Request& req, Responder r) { HandleDocument(service, req, r); }),
      options);
}

}  // namespace atrium::embed
