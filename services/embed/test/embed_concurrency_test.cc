// Hundreds of concurrent HTTP requests against the embed service running the real encoder (a
// tiny random BERT): the batcher mixes their sequences of different lengths into shared engine
// batches, and every answer must still equal the answer to the same input sent alone.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "atrium/core/metrics.h"
#include "atrium/core/testing.h"
#include "atrium/embed/embed_service.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/infer/embedding_model.h"
#include "tiny_bert.h"

namespace atrium::embed {
namespace {

namespace json = boost::json;

constexpr int kRequests = 300;
constexpr double kTolerance = 1e-6;

// Sentences of 1 to 40 words (3 to 42 tokens with [CLS] and [SEP]), so that batches mix lengths.
std::vector<std::string> Sentences() {
  std::vector<std::string> words;
  for (const auto& w : testing::TinyBertWords()) {
    if (!w.starts_with("##")) words.push_back(w);
  }
  std::vector<std::string> out;
  for (size_t n : {1, 2, 3, 5, 8, 11, 13, 17, 21, 26, 30, 34, 40}) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += (i ? " " : "") + words[(i * 7 + n) % words.size()];
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<float> Floats(const json::value& v) {
  std::vector<float> out;
  for (const auto& x : v.as_array()) out.push_back(static_cast<float>(x.to_number<double>()));
  return out;
}

class EmbedConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteTinyBert(tmp_.path() + "/tiny");
    // One encoder thread: the suite shares its cores with the other tests.
    auto model = infer::EmbeddingModel::Load(tmp_.path() + "/tiny", {.threads = 1});
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    std::vector<ServedModel> models;
    models.push_back(ServedModel{.name = "tiny",
                                 .aliases = {},
                                 .source = tmp_.path() + "/tiny",
                                 .model = std::move(*model),
                                 .scheduler = nullptr});
    EmbedOptions options;
    options.public_access = true;
    options.cache_bytes = 0;  // every request must reach the engine, not the result cache
    options.scheduler.max_concurrent_requests = kRequests;
    options.scheduler.max_batch_requests = 64;
    auto service = EmbedService::CreateWithModels(options, std::move(models), &metrics_, nullptr);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    http::Router router;
    ASSERT_TRUE(service_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{.port = 0, .io_threads = 2, .blocking_threads = 4}, std::move(router));
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    server_.reset();
    service_.reset();
  }

  http::ClientRequest Request(const std::string& path, std::string body) const {
    http::ClientRequest req;
    req.method = "POST";
    req.url = "http://127.0.0.1:" + std::to_string(server_->port()) + path;
    req.body = std::move(body);
    req.headers.Set("content-type", "application/json");
    return req;
  }

  atrium::testing::TempDir tmp_;
  MetricsRegistry metrics_;
  std::unique_ptr<EmbedService> service_;
  std::unique_ptr<http::Server> server_;
};

TEST_F(EmbedConcurrencyTest, HundredsOfConcurrentRequestsMatchTheSameInputsSentAlone) {
  const std::vector<std::string> sentences = Sentences();
  http::HttpClient client(http::ClientOptions{.threads = 2, .max_idle_per_origin = 64});

  // The reference: each sentence alone, one request at a time (a batch of one sequence).
  std::vector<std::vector<float>> alone;
  for (const auto& s : sentences) {
    json::object body;
    body["input"] = s;
    body["model"] = "tiny";
    auto r = client.SendSync(Request("/v1/embeddings", json::serialize(body)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->status, 200) << r->body;
    alone.push_back(Floats(json::parse(r->body).at("data").at(0).at("embedding")));
    ASSERT_EQ(alone.back().size(), static_cast<size_t>(testing::kTinyHidden));
  }
  uint64_t batches_before = 0;
  {
    std::string text = metrics_.ExpositionText();
    std::string key = "embed_batch_size_count{model=\"tiny\"} ";
    size_t at = text.find(key);
    ASSERT_NE(at, std::string::npos);
    batches_before = std::stoull(text.substr(at + key.size()));
  }

  // Then all at once: request i asks for 1 to 4 sentences, through the OpenAI and TEI APIs.
  struct Sent {
    std::vector<size_t> which;
    bool tei;
    std::promise<Result<http::ClientResponse>> answer;
  };
  std::vector<std::unique_ptr<Sent>> sent;
  size_t sequences = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto s = std::make_unique<Sent>();
    s->tei = i % 3 == 2;
    for (int k = 0; k <= i % 4; ++k) {
      s->which.push_back(static_cast<size_t>(i * 5 + k * 3) % sentences.size());
    }
    sequences += s->which.size();
    sent.push_back(std::move(s));
  }
  for (auto& s : sent) {
    json::array inputs;
    for (size_t w : s->which) inputs.emplace_back(sentences[w]);
    json::object body;
    body[s->tei ? "inputs" : "input"] = std::move(inputs);
    Sent* raw = s.get();
    client.Send(Request(s->tei ? "/embed" : "/v1/embeddings", json::serialize(body)),
                [raw](Result<http::ClientResponse> r) { raw->answer.set_value(std::move(r)); });
  }

  size_t checked = 0;
  for (size_t i = 0; i < sent.size(); ++i) {
    auto r = sent[i]->answer.get_future().get();
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.status().ToString();
    ASSERT_EQ(r->status, 200) << "request " << i << ": " << r->body;
    json::value v = json::parse(r->body);
    const json::array& vectors = sent[i]->tei ? v.as_array() : v.at("data").as_array();
    ASSERT_EQ(vectors.size(), sent[i]->which.size()) << "request " << i;
    for (size_t k = 0; k < vectors.size(); ++k) {
      std::vector<float> got = Floats(sent[i]->tei ? vectors[k] : vectors[k].at("embedding"));
      const std::vector<float>& want = alone[sent[i]->which[k]];
      ASSERT_EQ(got.size(), want.size());
      for (size_t d = 0; d < got.size(); ++d) {
        ASSERT_NEAR(got[d], want[d], kTolerance)
            << "request " << i << " input " << k << " dimension " << d;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, sequences);

  // The sequences really were batched together: fewer engine batches than sequences.
  std::string text = metrics_.ExpositionText();
  std::string key = "embed_batch_size_count{model=\"tiny\"} ";
  size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  uint64_t batches = std::stoull(text.substr(at + key.size())) - batches_before;
  EXPECT_LT(batches, sequences) << text;
  EXPECT_EQ(service_->models().front().scheduler->jobs_in_flight(), 0u);
}

}  // namespace
}  // namespace atrium::embed
