// The model-facing routes: authentication in the API's own error shape, key policy, scheduling,
// the upstream call with failover, streaming pass-through or translation, usage records.
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cstring>

#include "atrium/auth/crypto.h"
#include "atrium/core/base64.h"
#include "atrium/http/body_stream.h"
#include "atrium/infer/embedding_provider.h"
#include "atrium/relay/provider.h"
#include "atrium/relay/translate.h"
#include "relay_impl.h"
#include "scratch_json.h"

namespace atrium::relay {
namespace json = boost::json;
using http::Request;
using http::Responder;
using http::Response;

namespace {

std::string Str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// The HTTP status of a Status code for the model-facing APIs.
int HttpStatusFor(const Status& s) { return HttpStatusOf(s.code()); }

Response ApiError(ApiFormat format, int status, std::string_view message,
                  std::string_view type = "") {
  Response r = Response::Json(status, ErrorBody(format, status, message, type));
  return r;
}

Response ApiError(ApiFormat format, const Status& s) {
  return ApiError(format, HttpStatusFor(s), s.message());
}

// What the relay reads from a client request body (the body itself is forwarded untouched).
struct RequestInfo {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // OpenAI stream_options.include_usage
  int64_t max_tokens = 0;
  std::string session_hash;
};

// The first 32 hex digits of the SHA-256 of `text`.
std::string ShortHash(std::string_view text) {
  std::string hash = auth::Sha256Hex(text);
  hash.resize(32);
  return hash;
}

// The CRS session hash: the session part of Anthropic metadata.user_id
// ("user_<hash>_account__session_<uuid>"), else a hash of the system prompt and the first user
// message, so one conversation keeps its account.
std::string SessionHash(const json::object& body) {
  if (const auto* md = body.if_contains("metadata"); md != nullptr && md->is_object()) {
    std::string user = Str(md->as_object(), "user_id");
    size_t pos = user.find("session_");
    if (pos != std::string::npos) return ShortHash(std::string_view(user).substr(pos + 8));
  }
  std::string material;
  if (const auto* sys = body.if_contains("system"); sys != nullptr) {
    material += json::serialize(*sys);
  }
  if (const auto* msgs = body.if_contains("messages"); msgs != nullptr && msgs->is_array()) {
    for (const auto& m : msgs->as_array()) {
      if (!m.is_object()) continue;
      std::string role = Str(m.as_object(), "role");
      const auto* content = m.as_object().if_contains("content");
      if (role == "system" || role == "developer") {
        if (content != nullptr) material += json::serialize(*content);
      } else if (role == "user") {
        if (content != nullptr) material += json::serialize(*content);
        break;
      }
    }
  }
  if (material.empty()) return "";
  return ShortHash(material);
}

// `path_model`: the model named by the path (Gemini), which the body then does not carry.
Result<RequestInfo> ReadRequest(std::string_view body, Operation op,
                                const std::string& path_model = "") {
  boost::system::error_code ec;
  ScratchJson scratch;
  json::value v = json::parse(body, ec, scratch.storage());
  if (ec || !v.is_object()) return InvalidArgument("the request body must be a JSON object");
  const auto& o = v.as_object();
  RequestInfo info;
  const auto* model = o.if_contains("model");
  if (!path_model.empty()) {
    info.model = path_model;
  } else if (model == nullptr || !model->is_string() || model->as_string().empty()) {
    if (op != Operation::kEmbeddings) return InvalidArgument("model: a model name is required");
  } else {
    info.model = std::string(model->as_string());
  }
  if (const auto* s = o.if_contains("stream"); s != nullptr && s->is_bool())
    info.stream = s->as_bool();
  if (const auto* so = o.if_contains("stream_options"); so != nullptr && so->is_object()) {
    const auto* iu = so->as_object().if_contains("include_usage");
    info.include_usage = iu != nullptr && iu->is_bool() && iu->as_bool();
  }
  for (const char* k : {"max_tokens", "max_completion_tokens"}) {
    if (const auto* mt = o.if_contains(k); mt != nullptr && mt->is_number()) {
      info.max_tokens = mt->to_number<int64_t>();
    }
  }
  if (op == Operation::kChat) info.session_hash = SessionHash(o);
  return info;
}

bool ModelAllowedForKey(const KeyPolicy& p, std::string_view model) {
  if (p.models.empty()) return true;
  for (const auto& g : p.models) {
    if (GlobMatch(g, model)) return true;
  }
  return false;
}

bool Retryable(int status) { return status == 408 || status == 429 || status >= 500; }

// ---- one relayed request ----
class ProxyCall : public std::enable_shared_from_this<ProxyCall> {
 public:
  ProxyCall(RelayService::Impl& s, Responder responder, ApiFormat client_format, Operation op,
            std::string body, RequestInfo info, auth::Principal principal,
            std::shared_ptr<const KeyPolicy> policy, http::Headers client_headers,
            std::string request_id)
      : s_(s),
        responder_(std::move(responder)),
        client_format_(client_format),
        op_(op),
        body_(std::move(body)),
        info_(std::move(info)),
        principal_(std::move(principal)),
        policy_holder_(std::move(policy)),
        client_headers_(std::move(client_headers)),
        started_(s.env.SteadyNow()),
        cancel_(std::make_shared<http::CancelToken>()) {
    record_.time_micros = s.env.NowMicros();
    record_.request_id = std::move(request_id);
    record_.key_id = policy_.key_id;
    record_.user_id = principal_.user_id;
    record_.workspace_id = principal_.workspace_id;
    record_.client_model = info_.model;
    record_.streamed = info_.stream;
  }

  // Admission (limits, budget) then the first attempt.
  void Start() {
    if (!policy_.key_id.empty()) {
      if (!ModelAllowedForKey(policy_, info_.model)) {
        return Fail(403, "this key may not use model '" + info_.model + "'", "permission_error");
      }
      if (policy_.rpm > 0) {
        auto d = s_.limiter.Acquire(
            "relay:rpm:" + policy_.key_id,
            auth::RateLimit{.limit = policy_.rpm, .period = std::chrono::minutes(1)});
        if (d.ok() && !d->allowed) {
          return Fail(429, "the key's request rate limit (" + std::to_string(policy_.rpm) +
                               "/min) is exceeded");
        }
      }
      if (policy_.tpm > 0) {
        int64_t tokens = std::max<int64_t>(1, static_cast<int64_t>(body_.size()) / 4);
        auto d = s_.limiter.Acquire(
            "relay:tpm:" + policy_.key_id,
            auth::RateLimit{.limit = policy_.tpm, .period = std::chrono::minutes(1)},
            std::min(tokens, policy_.tpm));
        if (d.ok() && !d->allowed) {
          return Fail(429, "the key's token rate limit (" + std::to_string(policy_.tpm) +
                               "/min) is exceeded");
        }
      }
      auto prices = s_.prices();
      Usage worst;
      worst.input_tokens = static_cast<int64_t>(body_.size()) / 2 + 1;
      worst.output_tokens = info_.max_tokens > 0 ? info_.max_tokens : 4096;
      double estimate = prices->Cost(info_.model, worst, policy_.cost_multiplier);
      auto r = s_.ledger.Reserve(policy_.key_id, policy_.budget, estimate);
      if (!r.ok()) return Fail(HttpStatusFor(r.status()), r.status().message());
      reservation_ = std::move(*r);
    }
    Attempt();
  }

 private:
  void Attempt() {
    if (s_.stopping) return Fail(503, "the relay is shutting down");
    PickRequest pick{.workspace_id = principal_.workspace_id,
                     .providers = ProvidersServing(op_, client_format_),
                     .model = info_.model,
                     .session_hash = info_.session_hash,
                     .group = policy_.account_group,
                     .account_id = policy_.account_id,
                     .exclude = &tried_};
    auto lease = s_.scheduler.Pick(pick);
    if (!lease.ok()) {
      if (last_error_status_ != 0) return ForwardLastError();
      if (op_ == Operation::kCountTokens && lease.status().code() == StatusCode::kNotFound) {
        return EstimateCountTokens();
      }
      if (op_ == Operation::kEmbeddings && lease.status().code() == StatusCode::kNotFound &&
          LocalEngineServes(info_.model)) {
        // No account names this model, but Atrium's embed engine serves it: an implicit
        // `local` account (the same keys, quotas and usage as the remote providers).
        record_.provider = "local";
        record_.upstream_model = info_.model;
        ++record_.attempts;
        return LocalEmbeddings();
      }
      int status = HttpStatusFor(lease.status());
      if (lease.status().code() == StatusCode::kUnavailable &&
          client_format_ == ApiFormat::kAnthropic) {
        status = 529;
      }
      if (lease.status().code() == StatusCode::kNotFound) {
        return Fail(404, lease.status().message(),
                    client_format_ == ApiFormat::kOpenAI ? "model_not_found" : "not_found_error");
      }
      return Fail(status, lease.status().message());
    }
    lease_ = std::move(*lease);
    const Account& account = lease_.account();
    oauth_retried_ = false;
    ++record_.attempts;
    record_.account_id = account.id;
    record_.provider = account.provider;
    record_.upstream_model = account.UpstreamModel(info_.model);
    const ProviderAdapter* adapter = FindProvider(account.provider);
    if (adapter == nullptr) {
      ReleaseAndExclude();
      return Attempt();
    }
    if (adapter->in_process()) return LocalEmbeddings();
    if (OAuthNeedsRefresh(account, s_.env.NowMicros(), s_.options.oauth_refresh_margin)) {
      // The access token expires soon (or is missing): refresh first, shared with the other
      // requests on this account.
      auto self = shared_from_this();
      s_.RefreshOAuth(account.id, "", [self](Status st) {
        if (st.ok()) return self->SendUpstream();
        if (self->s_.log) {
          self->s_.log->warn("relay: account {}: {}", self->lease_.account().id, st.message());
        }
        if (st.code() != StatusCode::kUnauthenticated) return self->SendUpstream();  // try as is
        // The refresh token is refused: the account needs new credentials.
        self->s_.scheduler.SetStatus(self->lease_.account().id, std::string(kStatusUnauthorized),
                                     st.message(), 0);
        self->last_error_status_ = 401;
        self->last_error_body_.clear();
        self->last_error_message_ = "the upstream account's OAuth token cannot be refreshed";
        self->last_error_headers_ = http::Headers();
        self->Retry("oauth");
      });
      return;
    }
    SendUpstream();
  }

  // Sends the attempt to the leased account (with its newest credentials).
  void SendUpstream() {
    if (s_.stopping) return Fail(503, "the relay is shutting down");
    auto fresh = s_.scheduler.Find(lease_.account().id);
    const Account& account = fresh ? *fresh : lease_.account();
    const ProviderAdapter* adapter = FindProvider(account.provider);
    adapter_ = adapter;
    sent_token_.clear();
    if (auto t = account.credentials.find("access_token"); t != account.credentials.end()) {
      sent_token_ = t->second;
    }
    upstream_format_ = adapter->format();
    std::string_view source = body_;
    std::string marked;
    if (client_format_ == ApiFormat::kGemini && upstream_format_ != ApiFormat::kGemini &&
        info_.stream) {
      // Gemini carries "stream" in its path; the translator reads this marker instead.
      marked = body_;
      size_t brace = marked.find('{');
      if (brace != std::string::npos) marked.insert(brace + 1, "\"stream\":true,");
      source = marked;
    }
    auto body = TranslateRequest(client_format_, upstream_format_, source, record_.upstream_model);
    if (!body.ok()) return Fail(400, body.status().message());
    http::ClientRequest req;
    req.method = "POST";
    req.body = std::move(*body);
    req.headers.Set("content-type", "application/json");
    Status st =
        adapter->Prepare(account, op_, record_.upstream_model, info_.stream, client_headers_, req);
    if (st.ok()) st = adapter->Sign(account, s_.env.NowMicros(), req);
    if (!st.ok()) {
      if (s_.log) s_.log->error("relay: {}", st.message());
      ReleaseAndExclude();
      return Attempt();
    }
    req.proxy = account.proxy;
    req.connect_timeout = s_.options.connect_timeout;
    req.read_timeout = s_.options.read_timeout;
    req.max_response_bytes = s_.options.max_response_bytes;
    req.cancel = cancel_;
    upstream_status_ = 0;
    upstream_headers_ = http::Headers();
    error_body_.clear();
    streaming_ = false;
    attempt_started_ = s_.env.SteadyNow();
    auto self = shared_from_this();
    req.on_headers = [self](int status, const http::Headers& headers) {
      self->upstream_status_ = status;
      self->upstream_headers_ = headers;
      self->streaming_ = status >= 200 && status < 300 && self->info_.stream;
      self->decoder_.reset();
      if (self->streaming_) {
        self->decoder_ = self->adapter_->MakeStreamDecoder();
        self->parser_ = SseParser();
        self->tracker_ = std::make_unique<StreamUsageTracker>(self->upstream_format_);
        self->translator_ = MakeStreamTranslator(
            self->upstream_format_, self->client_format_,
            StreamTranslatorOptions{.client_model = self->info_.model,
                                    .include_usage = self->info_.include_usage,
                                    .id_seed = self->record_.request_id,
                                    .gemini_json_array = self->json_array_stream_});
      }
    };
    req.on_data = [self](std::string_view chunk) { return self->OnData(chunk); };
    s_.client->Send(std::move(req),
                    [self](Result<http::ClientResponse> r) { self->OnDone(std::move(r)); });
  }

  bool OnData(std::string_view chunk) {
    if (!streaming_) {
      if (error_body_.size() + chunk.size() > s_.options.max_response_bytes) return false;
      error_body_.append(chunk);  // a non-streaming body (success or error), kept whole
      return true;
    }
    std::string decoded;
    if (decoder_ != nullptr) {
      // A provider whose stream is not SSE (bedrock): decoded into SSE of its format first.
      decoded = decoder_->Feed(chunk);
      if (decoder_->error() && !decoder_->delivered() && stream_ == nullptr) {
        return false;  // failed before any event: OnDone fails over like an HTTP error
      }
      if (decoded.empty()) return !decoder_->error();
      chunk = decoded;
    }
    if (stream_ == nullptr) OpenClientStream();
    if (UpstreamJsonArray()) {
      // Gemini's JSON-array stream: relayed as is; its usage is read from the whole array.
      if (error_body_.size() + chunk.size() <= s_.options.max_response_bytes) {
        error_body_.append(chunk);
      }
    }
    std::string out;
    for (auto& ev : parser_.Feed(UpstreamJsonArray() ? std::string_view() : chunk)) {
      tracker_->OnEvent(ev);
      if (translator_) out += translator_->OnEvent(ev);
    }
    std::string_view to_send = translator_ ? std::string_view(out) : chunk;
    bool more = decoder_ == nullptr || !decoder_->error();  // a decoded failure ends the stream
    if (to_send.empty()) return more;
    auto w = stream_->Write(std::string(to_send));
    if (w == http::BodyStream::WriteResult::kOk) return more;
    client_gone_ = true;  // closed by the client, or too slow to keep up
    return false;
  }

  void OpenClientStream() {
    ttfb_ms_ = ElapsedMs(started_);
    stream_ = std::make_shared<http::BodyStream>(s_.options.stream_queue_bytes);
    std::weak_ptr<http::CancelToken> weak = cancel_;
    auto stream = stream_;
    stream_->OnClose([weak, stream] {
      if (stream->close_reason() == http::BodyStream::CloseReason::kClientGone ||
          stream->close_reason() == http::BodyStream::CloseReason::kServerShutdown) {
        if (auto token = weak.lock()) token->Cancel();
      }
    });
    Response r;
    r.status = 200;
    r.headers.Set("content-type", json_array_stream_ ? "application/json" : "text/event-stream");
    r.headers.Set("cache-control", "no-cache");
    r.headers.Set("x-accel-buffering", "no");
    if (upstream_format_ == client_format_) {
      for (const char* h : {"request-id", "x-request-id", "openai-processing-ms"}) {
        if (auto v = upstream_headers_.Get(h)) r.headers.Set(std::string("upstream-") + h, *v);
      }
    }
    r.stream = stream_;
    responder_.Send(std::move(r));
  }

  void OnDone(Result<http::ClientResponse> r) {
    const std::string account_id = lease_ ? lease_.account().id : "";
    if (streaming_ && decoder_ != nullptr && decoder_->error()) return OnDecodedStreamError();
    if (!r.ok()) {
      bool cancelled = r.status().code() == StatusCode::kCancelled;
      if (stream_ != nullptr) {
        // Bytes already reached the client: no failover; end with the API's error event.
        if (cancelled || client_gone_ || stream_->closed()) {
          stream_->Close();  // no-op when the client closed it; ends a too-slow client's stream
          return FinishStream("client disconnected", /*client_gone=*/true);
        }
        s_.scheduler.ReportTransportError(account_id);
        FinishStream("upstream failed mid-stream: " + r.status().message(), false);
        stream_->Close(StreamErrorEvent(client_format_, 502,
                                        "upstream stream failed: " + r.status().message()));
        return;
      }
      if (cancelled && cancel_->cancelled()) return Fail(499, "request cancelled");
      s_.scheduler.ReportTransportError(account_id);
      last_error_status_ = r.status().code() == StatusCode::kDeadlineExceeded ? 504 : 502;
      last_error_body_.clear();
      last_error_message_ = "upstream " + account_id + ": " + r.status().message();
      return Retry(r.status().code() == StatusCode::kDeadlineExceeded ? "timeout" : "connect");
    }
    int status = r->status;
    if (status >= 200 && status < 300) {
      if (streaming_) {
        if (stream_ == nullptr) OpenClientStream();
        if (translator_) {
          std::string tail;
          if (tracker_->completed()) tail = translator_->Finish();
          if (!tail.empty()) (void)stream_->Write(std::move(tail));
        }
        s_.scheduler.ReportSuccess(account_id, ttfb_ms_);
        std::string err = tracker_->error();
        if (err.empty() && !tracker_->completed() && !UpstreamJsonArray()) {
          err = "upstream stream ended early";
        }
        FinishStream(err, false);  // the record is out before the client sees the end
        stream_->Close();
        return;
      }
      ttfb_ms_ = ElapsedMs(started_);
      s_.scheduler.ReportSuccess(account_id, ElapsedMs(attempt_started_));
      std::string stop;
      record_.usage = UsageFromResponse(upstream_format_, error_body_, &stop);
      record_.stop_reason = stop;
      if (!record_.usage.reported && adapter_ != nullptr) {
        if (auto u = adapter_->UsageFromHeaders(upstream_headers_)) record_.usage = *u;
      }
      // The same API on both sides: the body goes back as it came, without a copy.
      auto translated =
          upstream_format_ == client_format_
              ? Result<std::string>(std::move(error_body_))
              : TranslateResponse(upstream_format_, client_format_, error_body_, info_.model);
      if (!translated.ok()) {
        return Fail(502,
                    "the upstream response cannot be translated: " + translated.status().message());
      }
      Response resp = Response::Json(status, std::move(*translated));
      if (auto ct = upstream_headers_.Get("content-type");
          ct && upstream_format_ == client_format_) {
        resp.headers.Set("content-type", *ct);
      }
      record_.status = status;
      Finish("");  // the record is out (and the budget updated) before the client has the answer
      responder_.Send(std::move(resp));
      return;
    }
    // An HTTP error before any byte reached the client.
    if (status == 401 && !oauth_retried_ && lease_ && CanRefreshOAuth(lease_.account())) {
      // An OAuth access token refused (revoked or expired early): refresh once and send again
      // to the same account before calling it unauthorized.
      oauth_retried_ = true;
      auto self = shared_from_this();
      s_.RefreshOAuth(account_id, sent_token_, [self, status](Status st) {
        if (st.ok()) return self->SendUpstream();
        if (self->s_.log) {
          self->s_.log->warn("relay: account {}: {}", self->lease_.account().id, st.message());
        }
        self->UpstreamHttpError(status);
      });
      return;
    }
    UpstreamHttpError(status);
  }

  // A failure a stream decoder found inside a 2xx stream (bedrock's exception events, a corrupt
  // frame). Before any event: handled like the HTTP error it stands for (failover included);
  // after: the decoder already ended the client's stream with the API's error event.
  void OnDecodedStreamError() {
    const std::string account_id = lease_ ? lease_.account().id : "";
    const UpstreamStreamError failure = *decoder_->error();
    if (stream_ == nullptr) {
      streaming_ = false;
      error_body_ = ErrorBody(upstream_format_, failure.status, failure.message);
      return UpstreamHttpError(failure.status);
    }
    s_.scheduler.ReportHttpError(account_id, failure.status, upstream_headers_);
    std::string err = tracker_->error().empty() ? failure.message : tracker_->error();
    FinishStream("upstream failed mid-stream: " + err, client_gone_);
    stream_->Close();
  }

  void UpstreamHttpError(int status) {
    const std::string account_id = lease_ ? lease_.account().id : "";
    s_.scheduler.ReportHttpError(account_id, status, upstream_headers_);
    last_error_status_ = status;
    last_error_body_ = adapter_ == nullptr ? std::move(error_body_)
                                           : adapter_->NormalizeErrorBody(status, upstream_headers_,
                                                                          std::move(error_body_));
    last_error_message_.clear();
    last_error_format_ = upstream_format_;
    last_error_headers_ = upstream_headers_;
    if (Retryable(status)) return Retry(std::to_string(status));
    return ForwardLastError();
  }

  // Gives the leased account back; the next attempt of this request skips it. (Only attempts
  // after the first read the set: the first costs no copy of the account's id.)
  void ReleaseAndExclude() {
    if (lease_) tried_.insert(lease_.account().id);
    lease_.Release();
  }

  void Retry(const std::string& reason) {
    ReleaseAndExclude();
    if (record_.attempts >= s_.options.max_attempts || s_.stopping) return ForwardLastError();
    if (s_.failovers_total != nullptr) s_.failovers_total->WithLabels({reason}).Inc();
    Attempt();
  }

  // Answers with the last upstream error in the client's API shape.
  void ForwardLastError() {
    int status = last_error_status_ == 0 ? 502 : last_error_status_;
    if (client_format_ == ApiFormat::kOpenAI && status == 529) status = 503;
    std::string body;
    if (!last_error_body_.empty()) {
      body = last_error_format_ == client_format_
                 ? last_error_body_
                 : TranslateErrorBody(last_error_format_, client_format_, status, last_error_body_);
    } else {
      body = ErrorBody(client_format_, status,
                       last_error_message_.empty() ? "upstream error" : last_error_message_);
    }
    Response r = Response::Json(status, std::move(body));
    for (const char* h : {"retry-after"}) {
      if (auto v = last_error_headers_.Get(h)) r.headers.Set(h, *v);
    }
    record_.status = status;
    Finish("upstream error " + std::to_string(status));
    responder_.Send(std::move(r));
  }

  void EstimateCountTokens() {
    record_.status = 200;
    int64_t tokens = EstimateTokens(static_cast<int64_t>(body_.size()));
    Finish("");
    responder_.Send(Response::Json(200, "{\"input_tokens\":" + std::to_string(tokens) + "}"));
  }

  bool LocalEngineServes(const std::string& model) const {
    infer::EmbeddingProvider* provider = s_.embeddings.load();
    if (provider == nullptr) return false;
    if (model.empty()) return true;  // the engine's default model
    auto names = provider->ModelNames();
    return std::find(names.begin(), names.end(), model) != names.end();
  }

  void LocalEmbeddings() {
    infer::EmbeddingProvider* provider = s_.embeddings.load();
    if (provider == nullptr) {
      lease_.Release();
      return Fail(503, "the local embedding engine is not running (service embed)");
    }
    boost::system::error_code ec;
    json::value v = json::parse(body_, ec);
    const json::object empty;
    const json::object& o = !ec && v.is_object() ? v.as_object() : empty;
    infer::EmbeddingRequest req;
    req.model = record_.upstream_model;
    const auto* input = o.if_contains("input");
    if (input != nullptr && input->is_string()) {
      req.texts.emplace_back(input->as_string());
    } else if (input != nullptr && input->is_array()) {
      for (const auto& e : input->as_array()) {
        if (!e.is_string())
          return Fail(400, "input: token arrays are not supported by local models");
        req.texts.emplace_back(e.as_string());
      }
    }
    if (req.texts.empty()) return Fail(400, "input: a string or a list of strings is required");
    if (const auto* dims = o.if_contains("dimensions"); dims != nullptr && dims->is_number()) {
      req.dimensions = dims->to_number<size_t>();
    }
    bool base64 = Str(o, "encoding_format") == "base64";
    auto self = shared_from_this();
    provider->Embed(std::move(req), [self, base64](Result<infer::EmbeddingResponse> r) {
      self->OnLocalEmbeddings(std::move(r), base64);
    });
  }

  void OnLocalEmbeddings(Result<infer::EmbeddingResponse> r, bool base64) {
    ttfb_ms_ = ElapsedMs(started_);
    if (!r.ok()) return Fail(HttpStatusFor(r.status()), r.status().message());
    json::array data;
    for (size_t i = 0; i < r->vectors.size(); ++i) {
      json::value embedding;
      if (base64) {
        std::string bytes(r->vectors[i].size() * sizeof(float), '\0');
        std::memcpy(bytes.data(), r->vectors[i].data(), bytes.size());
        embedding = json::string(Base64Encode(bytes));
      } else {
        json::array values;
        values.reserve(r->vectors[i].size());
        for (float f : r->vectors[i]) values.emplace_back(static_cast<double>(f));
        embedding = std::move(values);
      }
      data.push_back(
          json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
    }
    auto tokens = static_cast<int64_t>(r->prompt_tokens);
    record_.usage.input_tokens = tokens;
    record_.usage.reported = true;
    record_.status = 200;
    Finish("");
    responder_.Send(Response::Json(
        200, json::serialize(json::object{
                 {"object", "list"},
                 {"data", std::move(data)},
                 {"model", r->model},
                 {"usage", json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}})));
  }

  void Fail(int status, const std::string& message, std::string_view type = "") {
    record_.status = status;
    Finish(message);
    responder_.Send(ApiError(client_format_, status, message, type));
  }

  void FinishStream(const std::string& error, bool client_gone) {
    record_.status = 200;
    record_.usage = tracker_->usage();
    if (UpstreamJsonArray()) {
      std::string stop;
      record_.usage = UsageFromResponse(ApiFormat::kGemini, error_body_, &stop);
      record_.stop_reason = stop;
    }
    if (!record_.usage.reported) {
      // The upstream never reported usage (an OpenAI stream without include_usage, or one cut
      // before its usage chunk): the prompt is estimated from the request.
      record_.usage.input_tokens = EstimateTokens(static_cast<int64_t>(body_.size()));
    }
    if (!UpstreamJsonArray()) record_.stop_reason = tracker_->stop_reason();
    if (client_gone && error.empty()) return Finish("client disconnected");
    Finish(error);
  }

  // Bills, releases and publishes the usage record. Runs once per call.
  void Finish(const std::string& error) {
    if (finished_) return;
    finished_ = true;
    lease_.Release();
    record_.error = error;
    record_.latency_ms = ElapsedMs(started_);
    record_.ttfb_ms = ttfb_ms_;
    auto prices = s_.prices();
    const ModelPrice* price = prices->Find(record_.upstream_model);
    if (price == nullptr) price = prices->Find(info_.model);
    record_.cost = PriceTable::CostAt(price, record_.usage, policy_.cost_multiplier);
    s_.ledger.Commit(reservation_, record_.cost);
    if (!policy_.key_id.empty() && policy_.budget.any() && record_.cost > 0) {
      s_.CheckBudgetEvents(principal_.workspace_id, policy_.key_id, policy_.budget);
    }
    if (s_.requests_total != nullptr) {
      s_.requests_total
          ->WithLabels({record_.provider.empty() ? "none" : record_.provider,
                        error.empty() ? "ok" : "error"})
          .Inc();
    }
    s_.PublishUsage(record_);
  }

  int64_t ElapsedMs(std::chrono::steady_clock::time_point since) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(s_.env.SteadyNow() - since)
        .count();
  }

  RelayService::Impl& s_;
  Responder responder_;
  const ApiFormat client_format_;
  const Operation op_;
  const std::string body_;
  const RequestInfo info_;
  const auth::Principal principal_;
  const std::shared_ptr<const KeyPolicy> policy_holder_;  // shared with the policy cache
  const KeyPolicy& policy_ = *policy_holder_;
  const http::Headers client_headers_;
  const std::chrono::steady_clock::time_point started_;
  std::shared_ptr<http::CancelToken> cancel_;
  BudgetLedger::Reservation reservation_;
  UsageRecord record_;
  std::set<std::string> tried_;
  AccountLease lease_;
  ApiFormat upstream_format_ = ApiFormat::kAnthropic;
  std::chrono::steady_clock::time_point attempt_started_;
  // The current attempt (callbacks of one attempt run one at a time, in order).
  int upstream_status_ = 0;
  http::Headers upstream_headers_;
  std::string error_body_;
  bool streaming_ = false;
  // Whether the upstream sends Gemini's JSON-array stream (a Gemini client asked for it and the
  // account is Gemini: pass-through).
  bool UpstreamJsonArray() const {
    return json_array_stream_ && upstream_format_ == ApiFormat::kGemini;
  }
  // Gemini `streamGenerateContent` without alt=sse: a JSON array streamed in pieces.
  const bool json_array_stream_ =
      client_format_ == ApiFormat::kGemini && info_.stream &&
      client_headers_.GetOr(kGeminiMethodHeader, "") == "streamGenerateContent";
  const ProviderAdapter* adapter_ = nullptr;        // the current attempt's
  std::unique_ptr<UpstreamStreamDecoder> decoder_;  // non-SSE upstream streams (bedrock)
  SseParser parser_;
  std::unique_ptr<StreamUsageTracker> tracker_;
  std::unique_ptr<StreamTranslator> translator_;
  std::shared_ptr<http::BodyStream> stream_;
  bool client_gone_ = false;
  int64_t ttfb_ms_ = 0;
  // The last upstream failure, answered when no attempt is left.
  int last_error_status_ = 0;
  std::string last_error_body_;
  std::string last_error_message_;
  std::string sent_token_;      // the OAuth access token of the attempt in flight
  bool oauth_retried_ = false;  // a 401 already led to a refresh and a resend
  ApiFormat last_error_format_ = ApiFormat::kAnthropic;
  http::Headers last_error_headers_;
  bool finished_ = false;
};

// Authenticates (in the API's error shape) and starts a ProxyCall.
void HandleProxy(RelayService::Impl& s, ApiFormat format, Operation op, Request& req,
                 Responder responder) {
  // On the I/O thread PrepareInline has left the principal here; on the pool it is read now.
  auto* prepared = std::any_cast<auth::Principal>(&req.principal);
  auto principal =
      prepared != nullptr ? Result<auth::Principal>(std::move(*prepared)) : s.authenticate(req);
  if (!principal.ok()) {
    Response r = ApiError(format, 401, principal.status().message(),
                          format == ApiFormat::kGemini ? "" : "authentication_error");
    return responder.Send(std::move(r));
  }
  // Embeddings also take `embed` keys: with the relay enabled it owns /v1/embeddings.
  bool allowed =
      principal->Allows("relay") || (op == Operation::kEmbeddings && principal->Allows("embed"));
  if (!allowed) {
    return responder.Send(ApiError(format, 403, "this key lacks the relay scope",
                                   format == ApiFormat::kAnthropic ? "permission_error" : ""));
  }
  std::string path_model;
  if (format == ApiFormat::kGemini) {
    // {target} = "<model>:<method>"; the method (and alt=sse) travel to the adapter.
    std::string target(req.Param("target"));
    size_t colon = target.rfind(':');
    std::string method = colon == std::string::npos ? "" : target.substr(colon + 1);
    path_model = target.substr(0, colon);
    if (method == "countTokens") {
      op = Operation::kCountTokens;
    } else if (method != "generateContent" && method != "streamGenerateContent") {
      return responder.Send(ApiError(format, 404, "unknown method '" + method + "'", "NOT_FOUND"));
    }
    bool sse = req.Query("alt").value_or("") == "sse";
    req.headers.Set(kGeminiMethodHeader,
                    method == "streamGenerateContent" && sse ? method + "?alt=sse" : method);
  } else {
    req.headers.Remove(kGeminiMethodHeader);
  }
  auto info = ReadRequest(req.body, op, path_model);
  if (!info.ok()) return responder.Send(ApiError(format, info.status()));
  if (format == ApiFormat::kGemini) {
    info->stream = req.Param("target").ends_with(":streamGenerateContent");
    info->session_hash.clear();
  }
  auto policy = s.PolicyFor(*principal);
  if (!policy.ok()) return responder.Send(ApiError(format, policy.status()));
  auto call = std::make_shared<ProxyCall>(
      s, std::move(responder), format, op, std::move(req.body), std::move(*info),
      std::move(*principal), std::move(*policy), std::move(req.headers), req.request_id);
  call->Start();
}

// GET /v1/models: the models the workspace's accounts serve (allow-list names without
// wildcards and alias names; local models), in the OpenAI shape, or Anthropic's when the client
// sends anthropic-version.
Response ListModels(RelayService::Impl& s, Request& req) {
  bool anthropic = req.headers.Has("anthropic-version");
  ApiFormat format = anthropic ? ApiFormat::kAnthropic : ApiFormat::kOpenAI;
  auto principal = s.authenticate(req);
  if (!principal.ok()) return ApiError(format, 401, principal.status().message());
  if (!principal->Allows("relay")) return ApiError(format, 403, "this key lacks the relay scope");
  std::map<std::string, std::string> models;  // id -> owner
  for (const auto& a : s.scheduler.accounts()) {
    if (a->workspace_id != principal->workspace_id) continue;
    for (const auto& m : a->models) {
      if (m.find_first_of("*?") == std::string::npos) models.emplace(m, a->provider);
    }
    for (const auto& [alias, target] : a->model_aliases) models.emplace(alias, a->provider);
    if (a->provider == "local") {
      if (auto* p = s.embeddings.load(); p != nullptr) {
        for (const auto& m : p->ModelNames()) models.emplace(m, "atrium");
      }
    }
  }
  json::array data;
  for (const auto& [id, owner] : models) {
    if (anthropic) {
      data.push_back(json::object{{"type", "model"},
                                  {"id", id},
                                  {"display_name", id},
                                  {"created_at", "1970-01-01T00:00:00Z"}});
    } else {
      data.push_back(
          json::object{{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", owner}});
    }
  }
  if (anthropic) {
    json::object out{
        {"data", data},
        {"has_more", false},
        {"first_id", models.empty() ? json::value(nullptr) : json::value(models.begin()->first)},
        {"last_id", models.empty() ? json::value(nullptr) : json::value(models.rbegin()->first)}};
    return Response::Json(200, json::serialize(out));
  }
  return Response::Json(200, json::serialize(json::object{{"object", "list"}, {"data", data}}));
}

}  // namespace

Status RelayService::Impl::AddProxyRoutes(http::Router& router) {
  // Blocking: authentication and the key policy may read the database; the upstream call itself
  // is asynchronous, so a worker is held only for that part. When everything is cached (the
  // common case) the request stays on its I/O thread.
  http::RouteOptions opts{.max_body_bytes = options.max_request_bytes,
                          .blocking = true,
                          .run_inline = [this](Request& req) { return PrepareInline(req); }};
  auto route = [this](ApiFormat format, Operation op) {
    return http::Handler([this, format, op](Request& req, Responder responder) {
      HandleProxy(*this, format, op, req, std::move(responder));
    });
  };
  for (const char* prefix : {"", "/api", "/claude"}) {
    std::string base = std::string(prefix) + "/v1/messages";
    RETURN_IF_ERROR(router.Add("POST", base, route(ApiFormat::kAnthropic, Operation::kChat), opts));
    RETURN_IF_ERROR(router.Add("POST", base + "/count_tokens",
                               route(ApiFormat::kAnthropic, Operation::kCountTokens), opts));
  }
  for (const char* prefix : {"", "/openai"}) {
    RETURN_IF_ERROR(router.Add("POST", std::string(prefix) + "/v1/chat/completions",
                               route(ApiFormat::kOpenAI, Operation::kChat), opts));
  }
  for (const char* prefix : {"", "/gemini"}) {
    RETURN_IF_ERROR(router.Add("POST", std::string(prefix) + "/v1beta/models/{target}",
                               route(ApiFormat::kGemini, Operation::kChat), opts));
  }
  RETURN_IF_ERROR(router.Add("POST", "/v1/embeddings",
                             route(ApiFormat::kOpenAI, Operation::kEmbeddings), opts));
  RETURN_IF_ERROR(router.Add("POST", "/openai/v1/embeddings",
                             route(ApiFormat::kOpenAI, Operation::kEmbeddings), opts));
  return router.Add("GET", "/v1/models",
                    http::SyncHandler([this](Request& req) { return ListModels(*this, req); }),
                    http::RouteOptions{.blocking = true});
}

}  // namespace atrium::relay
