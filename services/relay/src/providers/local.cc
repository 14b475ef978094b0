// `local`: Atrium's own embed engine, reached in process through infer::EmbeddingProvider (the
// relay calls it directly; there is no HTTP request to prepare).
#include "providers.h"

namespace atrium::relay {
namespace {

class LocalAdapter : public ProviderAdapter {
 public:
  std::string_view name() const override { return "local"; }
  ApiFormat format() const override { return ApiFormat::kOpenAI; }
  bool Supports(Operation op) const override { return op == Operation::kEmbeddings; }
  bool in_process() const override { return true; }
  std::vector<std::string> required_credentials() const override { return {}; }
  Status Prepare(const Account& account, Operation, std::string_view, bool, const http::Headers&,
                 http::ClientRequest&) const override {
    return InvalidArgument("account " + account.id + ": local accounts are served in process");
  }
};

}  // namespace

const ProviderAdapter& LocalProvider() {
  static const LocalAdapter kAdapter;
  return kAdapter;
}

}  // namespace atrium::relay
