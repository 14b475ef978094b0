// Google Gemini API (generativelanguage.googleapis.com/v1beta): the model and the method are in
// the path (`models/{model}:generateContent`, `:streamGenerateContent[?alt=sse]`,
// `:countTokens`), the key in `x-goog-api-key`. Gemini clients pass through to Gemini accounts;
// translation to and from the other formats is not in this build.
#include "providers.h"

namespace atrium::relay {
namespace {

class GeminiAdapter : public ProviderAdapter {
 public:
  std::string_view name() const override { return "gemini"; }
  ApiFormat format() const override { return ApiFormat::kGemini; }
  bool Supports(Operation op) const override { return op != Operation::kEmbeddings; }
  Status Prepare(const Account& account, Operation op, std::string_view upstream_model, bool stream,
                 const http::Headers& client_headers, http::ClientRequest& out) const override {
    std::string base =
        account.base_url.empty() ? "https://generativelanguage.googleapis.com" : account.base_url;
    std::string method(client_headers.GetOr(kGeminiMethodHeader, ""));
    if (method.empty()) {
      method = op == Operation::kCountTokens ? "countTokens"
               : stream                      ? "streamGenerateContent?alt=sse"
                                             : "generateContent";
    }
    out.url = JoinUrl(base, "/v1beta/models/" + std::string(upstream_model) + ":" + method);
    auto key = account.credentials.find("api_key");
    if (key == account.credentials.end() || key->second.empty()) {
      return InvalidArgument("account " + account.id + ": credentials.api_key is required");
    }
    out.headers.Set("x-goog-api-key", key->second);
    return Status::Ok();
  }
};

}  // namespace

const ProviderAdapter& GeminiProvider() {
  static const GeminiAdapter kAdapter;
  return kAdapter;
}

}  // namespace atrium::relay
