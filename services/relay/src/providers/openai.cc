// OpenAI (api.openai.com/v1), OpenAI-compatible servers (vLLM, Ollama, DeepSeek...: base_url
// includes the version path, e.g. http://host:8000/v1) and Azure OpenAI (deployments addressed
// by the upstream model, `api-key` header, api-version query).
#include "providers.h"

namespace atrium::relay {
namespace {

std::string_view PathOf(Operation op) {
  return op == Operation::kEmbeddings ? "/embeddings" : "/chat/completions";
}

class OpenAIAdapter : public ProviderAdapter {
 public:
  OpenAIAdapter(std::string_view name, std::string_view default_base)
      : name_(name), default_base_(default_base) {}
  std::string_view name() const override { return name_; }
  ApiFormat format() const override { return ApiFormat::kOpenAI; }
  bool Supports(Operation op) const override { return op != Operation::kCountTokens; }
  std::vector<std::string> required_credentials() const override {
    return default_base_.empty() ? std::vector<std::string>{} : std::vector<std::string>{"api_key"};
  }
  Status Prepare(const Account& account, Operation op, std::string_view, bool stream,
                 const http::Headers&, http::ClientRequest& out) const override {
    std::string base = account.base_url.empty() ? default_base_ : account.base_url;
    if (base.empty()) return InvalidArgument("account " + account.id + ": base_url is required");
    out.url = JoinUrl(base, PathOf(op));
    if (auto key = account.credentials.find("api_key");
        key != account.credentials.end() && !key->second.empty()) {
      out.headers.Set("authorization", "Bearer " + key->second);
    }
    if (auto org = account.credentials.find("organization"); org != account.credentials.end()) {
      out.headers.Set("openai-organization", org->second);
    }
    out.headers.Set("accept", stream ? "text/event-stream" : "application/json");
    return Status::Ok();
  }

 private:
  std::string name_;
  std::string default_base_;
};

class AzureOpenAIAdapter : public ProviderAdapter {
 public:
  std::string_view name() const override { return "azure-openai"; }
  ApiFormat format() const override { return ApiFormat::kOpenAI; }
  bool Supports(Operation op) const override { return op != Operation::kCountTokens; }
  Status Prepare(const Account& account, Operation op, std::string_view upstream_model, bool stream,
                 const http::Headers&, http::ClientRequest& out) const override {
    if (account.base_url.empty()) {
      return InvalidArgument("account " + account.id +
                             ": base_url (https://<resource>.openai.azure.com) is required");
    }
    auto version = account.credentials.find("api_version");
    std::string api_version = version == account.credentials.end() ? "2024-10-21" : version->second;
    out.url =
        JoinUrl(account.base_url, "/openai/deployments/" + std::string(upstream_model) +
                                      std::string(PathOf(op)) + "?api-version=" + api_version);
    auto key = account.credentials.find("api_key");
    if (key == account.credentials.end()) {
      return InvalidArgument("account " + account.id + ": credentials.api_key is required");
    }
    out.headers.Set("api-key", key->second);
    out.headers.Set("accept", stream ? "text/event-stream" : "application/json");
    return Status::Ok();
  }
};

}  // namespace

const ProviderAdapter& OpenAIProvider() {
  static const OpenAIAdapter kAdapter("openai", "https://api.openai.com/v1");
  return kAdapter;
}

const ProviderAdapter& OpenAICompatibleProvider() {
  static const OpenAIAdapter kAdapter("openai-compatible", "");
  return kAdapter;
}

const ProviderAdapter& AzureOpenAIProvider() {
  static const AzureOpenAIAdapter kAdapter;
  return kAdapter;
}

}  // namespace atrium::relay
