// The three embedding APIs through HTTP, over a deterministic fake model.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstring>
#include <future>

#include "atrium/core/base64.h"
#include "atrium/embed/embed_service.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "fake_model.h"

namespace atrium::embed {
namespace {

namespace json = boost::json;
using testing::FakeModel;

std::vector<float> Floats(const json::value& v) {
  std::vector<float> out;
  for (const auto& x : v.as_array()) out.push_back(static_cast<float>(x.to_number<double>()));
  return out;
}

double Norm(const std::vector<float>& v) {
  double n = 0;
  for (float x : v) n += static_cast<double>(x) * x;
  return std::sqrt(n);
}

std::vector<float> Normalized(std::vector<float> v) {
  double n = Norm(v);
  for (float& x : v) x = static_cast<float>(x / n);
  return v;
}

void ExpectNear(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
}

class EmbedApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = std::make_unique<FakeModel>(8, 32);
    model_ = model.get();
    std::vector<ServedModel> models;
    models.push_back(ServedModel{.name = "fake",
                                 .aliases = {"text-embedding-3-small"},
                                 .source = "memory",
                                 .model = std::move(model),
                                 .scheduler = nullptr});
    EmbedOptions options;
    options.public_access = true;
    options.chunk_overlap_tokens = 4;
    options.max_client_batch_size = 64;
    auto service = EmbedService::CreateWithModels(options, std::move(models), nullptr, nullptr);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    http::Router router;
    ASSERT_TRUE(service_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(http::ServerOptions{.port = 0, .io_threads = 1},
                                             std::move(router));
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    server_.reset();
    service_.reset();
  }

  // POSTs `body`; returns status and parsed JSON.
  std::pair<int, json::value> Post(const std::string& path, const std::string& body,
                                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::ClientRequest req;
    req.method = "POST";
    req.url = "http://127.0.0.1:" + std::to_string(server_->port()) + path;
    req.body = body;
    req.headers.Set("content-type", "application/json");
    for (auto& [k, v] : headers) req.headers.Set(k, v);
    auto resp = client_.SendSync(std::move(req));
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    if (!resp.ok()) return {0, nullptr};
    boost::system::error_code ec;
    json::value v = json::parse(resp->body, ec);
    EXPECT_FALSE(ec) << resp->body;
    return {resp->status, v};
  }

  // The token ids the service feeds the model for `text` (special tokens included).
  std::vector<int32_t> Ids(const std::string& text) {
    return model_->tokenizer().Encode(text, true, 1 << 20).ids;
  }

  FakeModel* model_ = nullptr;
  std::unique_ptr<EmbedService> service_;
  std::unique_ptr<http::Server> server_;
  http::HttpClient client_;
};

TEST_F(EmbedApiTest, OpenAiEmbedsAStringWithUsage) {
  auto [status, v] = Post("/v1/embeddings", R"({"input":"hello world","model":"fake"})");
  ASSERT_EQ(status, 200) << json::serialize(v);
  const auto& o = v.as_object();
  EXPECT_EQ(o.at("object"), "list");
  EXPECT_EQ(o.at("model"), "fake");
  const auto& data = o.at("data").as_array();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].at("object"), "embedding");
  EXPECT_EQ(data[0].at("index"), 0);
  auto expected = Normalized(model_->Expected(Ids("hello world"), infer::Pooling::kMean));
  ExpectNear(Floats(data[0].at("embedding")), expected);
  EXPECT_EQ(o.at("usage").at("prompt_tokens"), 4);  // [CLS] hello world [SEP]
  EXPECT_EQ(o.at("usage").at("total_tokens"), 4);
}

TEST_F(EmbedApiTest, OpenAiAcceptsListsTokenIdsAliasesAndBase64) {
  auto [s1, list] =
      Post("/v1/embeddings",
           R"({"input":["the cat","a dog","hello"],"model":"text-embedding-3-small"})");
  ASSERT_EQ(s1, 200);
  ASSERT_EQ(list.at("data").as_array().size(), 3u);
  EXPECT_EQ(list.at("data").as_array()[2].at("index"), 2);
  EXPECT_EQ(list.at("model"), "fake");

  auto ids = Ids("the cat");
  std::string id_list;
  for (int32_t id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  auto [s2, by_ids] = Post("/v1/embeddings", R"({"input":[)" + id_list + R"(]})");
  ASSERT_EQ(s2, 200) << json::serialize(by_ids);
  ExpectNear(Floats(by_ids.at("data").as_array()[0].at("embedding")),
             Floats(list.at("data").as_array()[0].at("embedding")));

  auto [s3, b64] = Post("/v1/embeddings", R"({"input":"the cat","encoding_format":"base64"})");
  ASSERT_EQ(s3, 200);
  auto bytes = Base64Decode(std::string(b64.at("data").as_array()[0].at("embedding").as_string()));
  ASSERT_TRUE(bytes.has_value());
  std::vector<float> decoded(bytes->size() / sizeof(float));
  std::memcpy(decoded.data(), bytes->data(), bytes->size());
  ExpectNear(decoded, Floats(list.at("data").as_array()[0].at("embedding")));
}

TEST_F(EmbedApiTest, OpenAiDimensionsTruncateThenNormalize) {
  auto [status, v] = Post("/v1/embeddings", R"({"input":"hello world","dimensions":3})");
  ASSERT_EQ(status, 200);
  auto got = Floats(v.at("data").as_array()[0].at("embedding"));
  auto full = model_->Expected(Ids("hello world"), infer::Pooling::kMean);
  full.resize(3);
  ExpectNear(got, Normalized(full));
  auto [too_many, err] = Post("/v1/embeddings", R"({"input":"hello","dimensions":9})");
  EXPECT_EQ(too_many, 400);
  EXPECT_EQ(err.at("error").at("param"), "dimensions");
}

TEST_F(EmbedApiTest, OpenAiErrorsNameTheParameter) {
  auto [s1, e1] = Post("/v1/embeddings", R"({"model":"fake"})");
  EXPECT_EQ(s1, 400);
  EXPECT_EQ(e1.at("error").at("type"), "invalid_request_error");
  EXPECT_EQ(e1.at("error").at("param"), "input");
  auto [s2, e2] = Post("/v1/embeddings", R"({"input":"x","encoding_format":"int8"})");
  EXPECT_EQ(s2, 400);
  EXPECT_EQ(e2.at("error").at("param"), "encoding_format");
  auto [s3, e3] = Post("/v1/embeddings", R"({"input":"x","model":"gpt-4"})");
  EXPECT_EQ(s3, 404);
  EXPECT_EQ(e3.at("error").at("code"), "model_not_found");
  auto [s4, e4] = Post("/v1/embeddings", R"({"input":[1,2,999999]})");
  EXPECT_EQ(s4, 400);
  EXPECT_NE(std::string(e4.at("error").at("message").as_string()).find("999999"),
            std::string::npos);
  auto [s5, e5] = Post("/v1/embeddings", R"({"input":""})");
  EXPECT_EQ(s5, 400);
  auto [s6, e6] = Post("/v1/embeddings", "{not json");
  EXPECT_EQ(s6, 400);
  EXPECT_EQ(e6.at("error").at("param"), "body");
  auto [s7, e7] = Post("/v1/embeddings", R"({"input":"x"})", {{"x-priority", "urgent"}});
  EXPECT_EQ(s7, 400);
  EXPECT_EQ(e7.at("error").at("param"), "priority");
}

TEST_F(EmbedApiTest, LongInputsAreTruncatedRefusedOrChunked) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += i % 2 ? "cat " : "dog ";  // 52 tokens with specials
  auto [s1, truncated] = Post("/v1/embeddings", R"({"input":")" + text + R"("})");
  ASSERT_EQ(s1, 200);
  EXPECT_EQ(truncated.at("usage").at("prompt_tokens"), 32);
  auto [s2, refused] = Post("/v1/embeddings", R"({"input":")" + text + R"(","truncate":false})");
  EXPECT_EQ(s2, 400);
  EXPECT_NE(std::string(refused.at("error").at("message").as_string()).find("52 tokens"),
            std::string::npos);
  auto [s3, chunked] =
      Post("/v1/embeddings", R"({"input":")" + text + R"(","long_input":"chunk"})");
  ASSERT_EQ(s3, 200);
  // Windows of 30 body tokens overlapping by 4: 50 tokens → 2 windows.
  EXPECT_EQ(chunked.at("usage").at("prompt_tokens"), 32 + 26);
  auto a = Floats(truncated.at("data").as_array()[0].at("embedding"));
  auto b = Floats(chunked.at("data").as_array()[0].at("embedding"));
  EXPECT_NEAR(Norm(b), 1.0, 1e-5);
  EXPECT_NE(a, b);
  // Left truncation keeps the end of the text.
  auto [s4, left] =
      Post("/v1/embeddings", R"({"input":")" + text + R"(","truncation_direction":"left"})");
  ASSERT_EQ(s4, 200);
  auto ids = Ids(text);
  std::vector<int32_t> tail = {ids.front()};
  tail.insert(tail.end(), ids.end() - 31, ids.end());
  ExpectNear(Floats(left.at("data").as_array()[0].at("embedding")),
             Normalized(model_->Expected(tail, infer::Pooling::kMean)));
}

TEST_F(EmbedApiTest, TeiEmbedAndItsErrors) {
  auto [s1, v] = Post("/embed", R"({"inputs":["hello world","the cat"],"normalize":false})");
  ASSERT_EQ(s1, 200) << json::serialize(v);
  ASSERT_EQ(v.as_array().size(), 2u);
  ExpectNear(Floats(v.as_array()[0]), model_->Expected(Ids("hello world"), infer::Pooling::kMean));
  std::string text;
  for (int i = 0; i < 40; ++i) text += "cat ";
  // TEI does not truncate unless asked, and answers 413 with error_type Validation.
  auto [s2, e2] = Post("/embed", R"({"inputs":")" + text + R"("})");
  EXPECT_EQ(s2, 413);
  EXPECT_EQ(e2.at("error_type"), "Validation");
  auto [s3, ok] = Post("/embed", R"({"inputs":")" + text + R"(","truncate":true})");
  EXPECT_EQ(s3, 200);
  auto [s4, e4] = Post("/embed", R"({"input":"x"})");
  EXPECT_EQ(s4, 422);
  EXPECT_TRUE(e4.as_object().contains("error"));
}

TEST_F(EmbedApiTest, TeiPromptNamesPrependTheirText) {
  auto [s1, with_prompt] = Post("/embed", R"({"inputs":"cat","prompt_name":"query"})");
  auto [s2, plain] = Post("/embed", R"({"inputs":"the cat"})");
  ASSERT_EQ(s1, 200);
  ASSERT_EQ(s2, 200);
  ExpectNear(Floats(with_prompt.as_array()[0]), Floats(plain.as_array()[0]));
  auto [s3, bad] = Post("/embed", R"({"inputs":"cat","prompt_name":"passage"})");
  EXPECT_EQ(s3, 413);
}

TEST_F(EmbedApiTest, TeiTokenizeDecodeAndSimilarity) {
  auto [s1, tokens] = Post("/tokenize", R"({"inputs":"hello cats"})");
  ASSERT_EQ(s1, 200) << json::serialize(tokens);
  const auto& seq = tokens.as_array()[0].as_array();
  ASSERT_EQ(seq.size(), 5u);  // [CLS] hello cat ##s [SEP]
  EXPECT_EQ(seq[0].at("special"), true);
  EXPECT_EQ(seq[0].at("text"), "[CLS]");
  EXPECT_EQ(seq[1].at("text"), "hello");
  EXPECT_EQ(seq[1].at("start"), 0);
  EXPECT_EQ(seq[1].at("stop"), 5);
  EXPECT_EQ(seq[3].at("text"), "s");

  auto ids = Ids("the cat sat");
  std::string list;
  for (int32_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  auto [s2, decoded] = Post("/decode", R"({"ids":[)" + list + R"(]})");
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(decoded.as_array()[0], "the cat sat");

  auto [s3, sims] = Post(
      "/similarity",
      R"({"inputs":{"source_sentence":"the cat sat","sentences":["the cat sat","blue dog"]}})");
  ASSERT_EQ(s3, 200) << json::serialize(sims);
  ASSERT_EQ(sims.as_array().size(), 2u);
  EXPECT_NEAR(sims.as_array()[0].to_number<double>(), 1.0, 1e-5);
  EXPECT_LT(sims.as_array()[1].to_number<double>(), 0.9999);
}

TEST_F(EmbedApiTest, VecBoostEmbedBatchAndSimilarity) {
  auto [s1, one] = Post("/api/v1/embed", R"({"text":"hello world"})");
  ASSERT_EQ(s1, 200) << json::serialize(one);
  EXPECT_EQ(one.at("dimension"), 8);
  EXPECT_NEAR(Norm(Floats(one.at("embedding"))), 1.0, 1e-5);
  EXPECT_TRUE(one.as_object().contains("processing_time_ms"));

  auto [s2, batch] = Post("/api/v1/embed/batch", R"({"texts":["hello world","red dog"]})");
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(batch.at("count"), 2);
  ExpectNear(Floats(batch.at("embeddings").as_array()[0]), Floats(one.at("embedding")));

  auto [s3, sim] = Post("/api/v1/similarity", R"({"source":"red dog","target":"red dog"})");
  ASSERT_EQ(s3, 200);
  EXPECT_NEAR(sim.at("score").to_number<double>(), 1.0, 1e-5);
  auto [s4, sims] =
      Post("/api/v1/similarity", R"({"source":"red dog","targets":["red dog","blue cat"]})");
  ASSERT_EQ(s4, 200);
  EXPECT_EQ(sims.at("scores").as_array().size(), 2u);

  auto [s5, err] = Post("/api/v1/embed", R"({"text":""})");
  EXPECT_EQ(s5, 400);
  EXPECT_NE(std::string(err.at("error").at("message").as_string()).find("text"), std::string::npos);
  auto [s6, err2] = Post("/api/v1/embed/batch", R"({"texts":[]})");
  EXPECT_EQ(s6, 400);
}

TEST_F(EmbedApiTest, VecBoostDocumentsAreChunkedWithOverlap) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += i % 2 ? "red cat. " : "blue dog, ";
  auto [status, v] =
      Post("/api/v1/embed/document", R"({"text":")" + text + R"(","chunk_size":10,"overlap":2})");
  ASSERT_EQ(status, 200) << json::serialize(v);
  const auto& chunks = v.at("chunks").as_array();
  ASSERT_GT(chunks.size(), 3u);
  EXPECT_EQ(v.at("chunk_count"), chunks.size());
  EXPECT_EQ(chunks[0].at("start"), 0);
  EXPECT_EQ(chunks[0].at("tokens"), 10);
  // Consecutive chunks overlap: the next starts before the previous ends.
  EXPECT_LT(chunks[1].at("start").as_int64(), chunks[0].at("end").as_int64());
  EXPECT_NEAR(Norm(Floats(v.at("embedding"))), 1.0, 1e-5);
  EXPECT_TRUE(chunks[0].as_object().contains("embedding"));
  auto [bad, err] = Post("/api/v1/embed/document", R"({"text":"x","chunk_size":10,"overlap":10})");
  EXPECT_EQ(bad, 400);
}

TEST_F(EmbedApiTest, TooManyInputsInOneRequestAre413) {
  std::string inputs;
  for (int i = 0; i < 65; ++i) inputs += std::string(i ? "," : "") + "\"cat\"";
  auto [status, v] = Post("/v1/embeddings", R"({"input":[)" + inputs + "]}");
  EXPECT_EQ(status, 413);
}

TEST_F(EmbedApiTest, InfoMembersDescribeTheDefaultModel) {
  std::string members = service_->InfoJsonMembers();
  boost::system::error_code ec;
  auto v = json::parse("{" + members + "}", ec);
  ASSERT_FALSE(ec) << members;
  EXPECT_EQ(v.at("model_id"), "fake");
  EXPECT_EQ(v.at("max_input_length"), 32);
  EXPECT_EQ(v.at("model_type").at("embedding").at("pooling"), "mean");
}

}  // namespace
}  // namespace atrium::embed

namespace atrium::embed {
namespace {

TEST(EmbeddingProviderTest, TheServiceServesOtherModulesThroughTheInterface) {
  std::vector<ServedModel> models;
  models.push_back(ServedModel{.name = "fake",
                               .aliases = {"alias"},
                               .source = "memory",
                               .model = std::make_unique<testing::FakeModel>(8, 32),
                               .scheduler = nullptr});
  auto service = EmbedService::CreateWithModels({}, std::move(models), nullptr, nullptr);
  ASSERT_TRUE(service.ok());
  infer::EmbeddingProvider& provider = **service;
  EXPECT_EQ(provider.ModelNames(), (std::vector<std::string>{"fake", "alias"}));
  std::promise<Result<infer::EmbeddingResponse>> promise;
  provider.Embed({.model = "alias", .texts = {"the cat", "a dog"}, .dimensions = 4},
                 [&](Result<infer::EmbeddingResponse> r) { promise.set_value(std::move(r)); });
  auto r = promise.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "fake");
  ASSERT_EQ(r->vectors.size(), 2u);
  EXPECT_EQ(r->vectors[0].size(), 4u);
  EXPECT_EQ(r->prompt_tokens, 8u);
  std::promise<Result<infer::EmbeddingResponse>> missing;
  provider.Embed({.model = "nope", .texts = {"x"}},
                 [&](Result<infer::EmbeddingResponse> r) { missing.set_value(std::move(r)); });
  EXPECT_EQ(missing.get_future().get().status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace atrium::embed
