// The three embedding APIs through HTTP, over a deterministic fake model.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <future>
#include <thread>

#include "atrium/core/base64.h"
#include "atrium/core/metrics.h"
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

// One refused request: where it goes, what it sends, the status and the field the error names.
struct BadInput {
  const char* path;
  std::string body;
  int status;
  std::string field;
};

std::string Repeated(const std::string& item, int n, const std::string& separator = ",") {
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? separator : "") + item;
  return out;
}

class EmbedApiTest : public ::testing::Test {
 protected:
  // The service's options; fixtures for overload behaviour change the queue and the deadline.
  virtual EmbedOptions Options() const {
    EmbedOptions options;
    options.public_access = true;
    options.chunk_overlap_tokens = 4;
    options.max_client_batch_size = 64;
    return options;
  }

  void SetUp() override {
    auto model = std::make_unique<FakeModel>(8, 32);
    model_ = model.get();
    std::vector<ServedModel> models;
    models.push_back(ServedModel{.name = "fake",
                                 .aliases = {"text-embedding-3-small"},
                                 .source = "memory",
                                 .model = std::move(model),
                                 .scheduler = nullptr});
    auto service = EmbedService::CreateWithModels(Options(), std::move(models), &metrics_, nullptr);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    BeforeRoutes(*service_);
    http::Router router;
    ASSERT_TRUE(service_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(http::ServerOptions{.port = 0, .io_threads = 1},
                                             std::move(router));
    ASSERT_TRUE(server_->Start().ok());
  }

  // Runs between the service's creation and AddRoutes.
  virtual void BeforeRoutes(EmbedService& service) { (void)service; }

  void TearDown() override {
    server_.reset();
    service_.reset();
  }

  http::ClientRequest Request(const std::string& path, const std::string& body,
                              const std::vector<std::pair<std::string, std::string>>& headers) {
    http::ClientRequest req;
    req.method = "POST";
    req.url = "http://127.0.0.1:" + std::to_string(server_->port()) + path;
    req.body = body;
    req.headers.Set("content-type", "application/json");
    for (const auto& [k, v] : headers) req.headers.Set(k, v);
    return req;
  }

  static std::pair<int, json::value> Parsed(const Result<http::ClientResponse>& resp) {
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    if (!resp.ok()) return {0, nullptr};
    boost::system::error_code ec;
    json::value v = json::parse(resp->body, ec);
    EXPECT_FALSE(ec) << resp->body;
    return {resp->status, v};
  }

  // POSTs `body`; returns status and parsed JSON.
  std::pair<int, json::value> Post(const std::string& path, const std::string& body,
                                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Parsed(client_.SendSync(Request(path, body, headers)));
  }

  // POSTs `body` without waiting for the answer.
  std::future<std::pair<int, json::value>> PostAsync(const std::string& path,
                                                     const std::string& body) {
    auto promise = std::make_shared<std::promise<std::pair<int, json::value>>>();
    auto future = promise->get_future();
    client_.Send(Request(path, body, {}), [promise](Result<http::ClientResponse> resp) {
      promise->set_value(Parsed(resp));
    });
    return future;
  }

  size_t JobsInFlight() const { return service_->models().front().scheduler->jobs_in_flight(); }

  // Sends every case and checks its status and, through `check_shape`, its error body; then
  // checks that nothing was lost or left behind: no request reached the engine or stayed queued,
  // and the service still answers.
  void ExpectRefusals(const std::vector<BadInput>& cases,
                      const std::function<void(const BadInput&, const json::value&)>& check_shape) {
    for (const BadInput& c : cases) {
      SCOPED_TRACE(std::string(c.path) + " " + c.body.substr(0, 120));
      auto [status, v] = Post(c.path, c.body);
      EXPECT_EQ(status, c.status) << json::serialize(v);
      if (status != c.status || !v.is_object()) continue;
      SCOPED_TRACE(json::serialize(v));
      check_shape(c, v);
    }
    EXPECT_TRUE(model_->calls().empty());
    EXPECT_EQ(JobsInFlight(), 0u);
    auto [ok, v] = Post("/v1/embeddings", R"({"input":"the cat"})");
    EXPECT_EQ(ok, 200) << json::serialize(v);
  }

  // The token ids the service feeds the model for `text` (special tokens included).
  std::vector<int32_t> Ids(const std::string& text) {
    return model_->tokenizer().Encode(text, true, 1 << 20).ids;
  }

  MetricsRegistry metrics_;  // before service_: the schedulers hold its metrics
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
  // The defaults fit a model whose chunks are shorter than the default overlap of 32 tokens.
  auto [defaults, v2] = Post("/api/v1/embed/document", R"({"text":")" + text + R"("})");
  EXPECT_EQ(defaults, 200) << json::serialize(v2);
}

TEST_F(EmbedApiTest, TooManyInputsInOneRequestAre413) {
  std::string inputs;
  for (int i = 0; i < 65; ++i) inputs += std::string(i ? "," : "") + "\"cat\"";
  auto [status, v] = Post("/v1/embeddings", R"({"input":[)" + inputs + "]}");
  EXPECT_EQ(status, 413);
}

// ---- Bad input: every API refuses it with a 4xx in its own error shape, naming the field, and
// nothing reaches the engine or stays queued.

TEST_F(EmbedApiTest, OpenAiRefusesBadInputNamingTheParameter) {
  std::vector<BadInput> cases = {
      {"/v1/embeddings", R"({"input":[]})", 400, "input"},
      {"/v1/embeddings", R"({"input":5})", 400, "input"},
      {"/v1/embeddings", R"({"input":{"text":"x"}})", 400, "input"},
      {"/v1/embeddings", R"({"input":[true]})", 400, "input"},
      {"/v1/embeddings", R"({"input":["a",1]})", 400, "input"},
      {"/v1/embeddings", R"({"input":["a",""]})", 400, "input"},
      {"/v1/embeddings", R"({"input":[1.5]})", 400, "input"},
      {"/v1/embeddings", R"({"input":[-1]})", 400, "input"},
      {"/v1/embeddings", R"({"input":[[5,6],[]]})", 400, "input"},
      {"/v1/embeddings", R"({"input":[[5,6],7]})", 400, "input"},
      {"/v1/embeddings", R"({"input":null})", 400, "input"},
      {"/v1/embeddings", R"({"input":"x","model":5})", 400, "model"},
      {"/v1/embeddings", R"({"input":"x","dimensions":0})", 400, "dimensions"},
      {"/v1/embeddings", R"({"input":"x","dimensions":"4"})", 400, "dimensions"},
      {"/v1/embeddings", R"({"input":"x","dimensions":2.5})", 400, "dimensions"},
      {"/v1/embeddings", R"({"input":"x","encoding_format":5})", 400, "encoding_format"},
      {"/v1/embeddings", R"({"input":"x","normalize":"yes"})", 400, "normalize"},
      {"/v1/embeddings", R"({"input":"x","user":42})", 400, "user"},
      {"/v1/embeddings", R"({"input":"x","long_input":"split"})", 400, "long_input"},
      {"/v1/embeddings", R"({"input":"x","truncation_direction":"up"})", 400,
       "truncation_direction"},
      {"/v1/embeddings", R"({"input":"x","priority":7})", 400, "priority"},
      {"/v1/embeddings", R"({"input":"x","model":"nope"})", 404, "model"},
      {"/v1/embeddings", R"([{"input":"x"}])", 400, "body"},
      {"/v1/embeddings", "", 400, "body"},
      {"/v1/embeddings", R"({"input":[)" + Repeated(R"("cat")", 65) + "]}", 413, "input"},
  };
  ExpectRefusals(cases, [](const BadInput& c, const json::value& v) {
    // {"error": {"message", "type", "param", "code"}}, as the OpenAI SDKs read it.
    const auto& e = v.at("error").as_object();
    EXPECT_EQ(e.at("param"), json::value(c.field));
    EXPECT_EQ(e.at("type"), "invalid_request_error");
    EXPECT_EQ(e.at("code"), c.status == 404 ? json::value("model_not_found") : json::value());
    EXPECT_NE(std::string(e.at("message").as_string()).find(c.field), std::string::npos);
  });
}

TEST_F(EmbedApiTest, TeiRefusesBadInputNamingTheField) {
  std::string sentences = Repeated(R"("cat")", 64);
  std::vector<BadInput> cases = {
      // TEI answers 422 to a body it cannot read and 413 to inputs it will not take.
      {"/embed", R"({})", 422, "inputs"},
      {"/embed", "{not json", 422, "body"},
      {"/embed", R"({"inputs":[]})", 413, "inputs"},
      {"/embed", R"({"inputs":5})", 413, "inputs"},
      {"/embed", R"({"inputs":["a",2]})", 413, "inputs[1]"},
      {"/embed", R"({"inputs":["a",""]})", 413, "inputs[1]"},
      {"/embed", R"({"inputs":[[5],[]]})", 413, "inputs[1]"},
      {"/embed", R"({"inputs":"x","normalize":"no"})", 413, "normalize"},
      {"/embed", R"({"inputs":"x","truncate":1})", 413, "truncate"},
      {"/embed", R"({"inputs":"x","truncation_direction":"Up"})", 413, "truncation_direction"},
      {"/embed", R"({"inputs":"x","prompt_name":3})", 413, "prompt_name"},
      {"/embed", R"({"inputs":"x","dimensions":-2})", 413, "dimensions"},
      {"/embed", R"({"inputs":"x","model":"nope"})", 404, "model"},
      {"/embed", R"({"inputs":[)" + Repeated(R"("cat")", 65) + "]}", 413, "inputs"},
      {"/tokenize", R"({})", 422, "inputs"},
      {"/tokenize", R"({"inputs":[]})", 413, "inputs"},
      {"/tokenize", R"({"inputs":[1,2]})", 413, "inputs"},
      {"/tokenize", R"({"inputs":["a",false]})", 413, "inputs[1]"},
      {"/tokenize", R"({"inputs":"x","add_special_tokens":1})", 413, "add_special_tokens"},
      {"/tokenize", R"({"inputs":"x","prompt_name":"passage"})", 413, "prompt_name"},
      {"/tokenize", R"({"inputs":"x","model":"nope"})", 404, "model"},
      {"/tokenize", R"({"inputs":[)" + Repeated(R"("cat")", 65) + "]}", 413, "inputs"},
      {"/decode", R"({})", 422, "ids"},
      {"/decode", R"({"ids":[]})", 413, "ids"},
      {"/decode", R"({"ids":"hello"})", 413, "ids"},
      {"/decode", R"({"ids":[1,"a"]})", 413, "ids"},
      {"/decode", R"({"ids":[-3]})", 413, "ids"},
      {"/decode", R"({"ids":[1],"skip_special_tokens":"y"})", 413, "skip_special_tokens"},
      {"/decode", R"({"ids":[1],"model":"nope"})", 404, "model"},
      {"/decode", R"({"ids":[)" + Repeated("[5]", 65) + "]}", 413, "ids"},
      {"/similarity", R"({"inputs":"x"})", 422, "inputs"},
      {"/similarity", R"({"inputs":{"sentences":["a"]}})", 413, "inputs.source_sentence"},
      {"/similarity", R"({"inputs":{"source_sentence":"a"}})", 413, "inputs.sentences"},
      {"/similarity", R"({"inputs":{"source_sentence":"a","sentences":[]}})", 413,
       "inputs.sentences"},
      {"/similarity", R"({"inputs":{"source_sentence":"a","sentences":["b",2]}})", 413,
       "inputs.sentences[1]"},
      {"/similarity", R"({"inputs":{"source_sentence":"","sentences":["b"]}})", 413,
       "inputs.source_sentence"},
      {"/similarity", R"({"inputs":{"source_sentence":"a","sentences":["b",""]}})", 413,
       "inputs.sentences[1]"},
      {"/similarity", R"({"inputs":{"source_sentence":"a","sentences":["b"]},"model":"x"})", 404,
       "model"},
      {"/similarity", R"({"inputs":{"source_sentence":"a","sentences":[)" + sentences + "]}}", 413,
       "inputs.sentences"},
  };
  ExpectRefusals(cases, [](const BadInput& c, const json::value& v) {
    // {"error": "...", "error_type": "Validation"} as TEI sends it.
    const auto& e = v.as_object();
    EXPECT_EQ(e.at("error_type"), "Validation");
    EXPECT_NE(std::string(e.at("error").as_string()).find(c.field), std::string::npos);
  });
}

TEST_F(EmbedApiTest, VecBoostRefusesBadInputNamingTheField) {
  std::string long_document = Repeated("cat", 140, " ");  // 70 chunks of 2 tokens > 64
  std::vector<BadInput> cases = {
      {"/api/v1/embed", R"({})", 400, "text"},
      {"/api/v1/embed", R"({"text":""})", 400, "text"},
      {"/api/v1/embed", R"({"text":5})", 400, "text"},
      {"/api/v1/embed", R"({"text":["a"]})", 400, "text"},
      {"/api/v1/embed", R"({"text":"x","normalize":1})", 400, "normalize"},
      {"/api/v1/embed", R"({"text":"x","dimensions":-1})", 400, "dimensions"},
      {"/api/v1/embed", R"({"text":"x","dimensions":99})", 400, "dimensions"},
      {"/api/v1/embed", R"({"text":"x","model":"nope"})", 404, "model"},
      {"/api/v1/embed", "not json", 400, "body"},
      {"/api/v1/embed/batch", R"({})", 400, "texts"},
      {"/api/v1/embed/batch", R"({"texts":[]})", 400, "texts"},
      {"/api/v1/embed/batch", R"({"texts":"x"})", 400, "texts"},
      {"/api/v1/embed/batch", R"({"texts":[1,2]})", 400, "texts"},
      {"/api/v1/embed/batch", R"({"texts":["a",3]})", 400, "texts[1]"},
      {"/api/v1/embed/batch", R"({"texts":["a",""]})", 400, "texts[1]"},
      {"/api/v1/embed/batch", R"({"texts":["a"],"model":"nope"})", 404, "model"},
      {"/api/v1/embed/batch", R"({"texts":[)" + Repeated(R"("cat")", 65) + "]}", 413, "texts"},
      {"/api/v1/similarity", R"({"target":"x"})", 400, "source"},
      {"/api/v1/similarity", R"({"source":"x"})", 400, "target"},
      {"/api/v1/similarity", R"({"source":"x","target":""})", 400, "target"},
      {"/api/v1/similarity", R"({"source":"x","targets":[]})", 400, "targets"},
      {"/api/v1/similarity", R"({"source":"x","targets":"y"})", 400, "targets"},
      {"/api/v1/similarity", R"({"source":"x","targets":[[5]]})", 400, "targets"},
      {"/api/v1/similarity", R"({"source":"x","targets":["y",""]})", 400, "targets[1]"},
      {"/api/v1/similarity", R"({"source":"x","target":"y","model":"nope"})", 404, "model"},
      {"/api/v1/similarity", R"({"source":"x","targets":[)" + Repeated(R"("cat")", 64) + "]}", 413,
       "targets"},
      {"/api/v1/embed/document", R"({})", 400, "text"},
      {"/api/v1/embed/document", R"({"text":"   "})", 400, "text"},
      {"/api/v1/embed/document", R"({"text":"x","chunk_size":0})", 400, "chunk_size"},
      {"/api/v1/embed/document", R"({"text":"x","chunk_size":"10"})", 400, "chunk_size"},
      {"/api/v1/embed/document", R"({"text":"x","chunk_size":1000})", 400, "chunk_size"},
      {"/api/v1/embed/document", R"({"text":"x","chunk_size":10,"overlap":10})", 400, "overlap"},
      {"/api/v1/embed/document", R"({"text":"x","overlap":-1})", 400, "overlap"},
      {"/api/v1/embed/document", R"({"text":"x","return_chunk_embeddings":"yes"})", 400,
       "return_chunk_embeddings"},
      {"/api/v1/embed/document", R"({"text":"x","model":"nope"})", 404, "model"},
      {"/api/v1/embed/document",
       R"({"text":")" + long_document + R"(","chunk_size":2,"overlap":0})", 413, "text"},
  };
  ExpectRefusals(cases, [](const BadInput& c, const json::value& v) {
    // Atrium's shape: {"error": {"code", "message", "request_id"}}.
    const auto& e = v.at("error").as_object();
    const char* code = c.status == 404   ? "not_found"
                       : c.status == 413 ? "payload_too_large"
                                         : "invalid_argument";
    EXPECT_EQ(e.at("code"), code);
    EXPECT_NE(std::string(e.at("message").as_string()).find(c.field), std::string::npos);
  });
}

// ---- Metrics

TEST_F(EmbedApiTest, MetricsCoverQueueBatchesTokensInferenceAndCache) {
  auto [s1, v1] = Post("/v1/embeddings", R"({"input":["hello world","the cat"]})");
  ASSERT_EQ(s1, 200);
  auto [s2, v2] = Post("/v1/embeddings", R"({"input":"hello world"})");  // from the cache
  ASSERT_EQ(s2, 200);
  std::string text = metrics_.ExpositionText();
  for (const char* sample : {
           "embed_queue_depth{model=\"fake\"} 0",              // requests queued or running
           "embed_batch_size_count{model=\"fake\"} 1",         // one engine batch ...
           "embed_batch_size_sum{model=\"fake\"} 2",           // ... of two sequences
           "embed_batch_tokens_sum{model=\"fake\"} 8",         // [CLS] x x [SEP] twice
           "embed_tokens_total{model=\"fake\"} 8",             // rate() of it: tokens/s
           "embed_sequences_total{model=\"fake\"} 2",          //
           "embed_inference_seconds_count{model=\"fake\"} 1",  // encoder time per batch
           "embed_queue_seconds_count{model=\"fake\"} 1",      // wait before the first batch
           "embed_rejected_total{model=\"fake\"} 0",           // queue full (429)
           "embed_expired_total{model=\"fake\"} 0",            // deadline passed (504)
           "embed_cache_hits_total 1",                         //
           "embed_cache_misses_total 2",                       //
           "embed_cache_entries 2",                            //
           "embed_cache_bytes ",                               //
       }) {
    EXPECT_NE(text.find(sample), std::string::npos) << sample << "\n" << text;
  }
  EXPECT_NE(text.find("# TYPE embed_batch_size histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE embed_inference_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE embed_queue_depth gauge"), std::string::npos);
}

// ---- Overload: a full queue answers 429 and a missed deadline 504, in each API's shape.

class EmbedQueueFullTest : public EmbedApiTest {
 protected:
  EmbedOptions Options() const override {
    EmbedOptions options = EmbedApiTest::Options();
    options.scheduler.max_concurrent_requests = 1;
    return options;
  }
};

TEST_F(EmbedQueueFullTest, AFullQueueIs429InEachApisShape) {
  model_->Pause();
  auto running = PostAsync("/v1/embeddings", R"({"input":"the cat"})");
  model_->WaitRunning();
  auto [s1, openai] = Post("/v1/embeddings", R"({"input":"a dog"})");
  EXPECT_EQ(s1, 429) << json::serialize(openai);
  EXPECT_EQ(openai.at("error").at("type"), "rate_limit_error");
  EXPECT_EQ(openai.at("error").at("code"), "rate_limit_exceeded");
  EXPECT_NE(std::string(openai.at("error").at("message").as_string()).find("full"),
            std::string::npos);
  auto [s2, tei] = Post("/embed", R"({"inputs":"a dog"})");
  EXPECT_EQ(s2, 429) << json::serialize(tei);
  EXPECT_EQ(tei.at("error_type"), "Overloaded");
  auto [s3, vecboost] = Post("/api/v1/embed/batch", R"({"texts":["a dog"]})");
  EXPECT_EQ(s3, 429) << json::serialize(vecboost);
  EXPECT_EQ(vecboost.at("error").at("code"), "resource_exhausted");
  model_->Resume();
  EXPECT_EQ(running.get().first, 200);
  // The refused requests were not kept: the queue is empty again and takes new work.
  EXPECT_EQ(JobsInFlight(), 0u);
  EXPECT_EQ(Post("/v1/embeddings", R"({"input":"a dog"})").first, 200);
  EXPECT_NE(metrics_.ExpositionText().find("embed_rejected_total{model=\"fake\"} 3"),
            std::string::npos);
}

class EmbedDeadlineTest : public EmbedApiTest {
 protected:
  EmbedOptions Options() const override {
    EmbedOptions options = EmbedApiTest::Options();
    options.request_timeout = std::chrono::milliseconds(150);
    return options;
  }
};

TEST_F(EmbedDeadlineTest, AMissedDeadlineIs504InEachApisShape) {
  model_->Pause();
  auto running = PostAsync("/v1/embeddings", R"({"input":"the cat"})");
  model_->WaitRunning();
  auto openai = PostAsync("/v1/embeddings", R"({"input":"a dog"})");
  auto tei = PostAsync("/embed", R"({"inputs":"red dog"})");
  auto vecboost = PostAsync("/api/v1/embed", R"({"text":"blue dog"})");
  for (int i = 0; i < 400 && JobsInFlight() < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(JobsInFlight(), 4u);
  // Past the queued requests' deadlines (but before the server's own route timeout, 1 s later).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  model_->Resume();
  EXPECT_EQ(running.get().first, 200);  // already in the engine: it finishes
  auto [s1, e1] = openai.get();
  EXPECT_EQ(s1, 504) << json::serialize(e1);
  EXPECT_EQ(e1.at("error").at("type"), "server_error");
  EXPECT_NE(std::string(e1.at("error").at("message").as_string()).find("deadline"),
            std::string::npos);
  auto [s2, e2] = tei.get();
  EXPECT_EQ(s2, 504) << json::serialize(e2);
  EXPECT_TRUE(e2.at("error").is_string());
  EXPECT_EQ(e2.at("error_type"), "Overloaded");
  auto [s3, e3] = vecboost.get();
  EXPECT_EQ(s3, 504) << json::serialize(e3);
  EXPECT_EQ(e3.at("error").at("code"), "deadline_exceeded");
  EXPECT_EQ(model_->calls().size(), 1u);  // the late requests never reached the engine
  EXPECT_EQ(JobsInFlight(), 0u);
  EXPECT_NE(metrics_.ExpositionText().find("embed_expired_total{model=\"fake\"} 3"),
            std::string::npos);
}

// Small requests with a cached credential run on the I/O thread (one thread hop less); anything
// else keeps the blocking pool, and both paths give the same answers.
class EmbedInlineTest : public EmbedApiTest {
 protected:
  EmbedOptions Options() const override {
    EmbedOptions options = EmbedApiTest::Options();
    options.public_access = false;
    return options;
  }
  void BeforeRoutes(EmbedService& service) override {
    service.SetInlineAdmission([this](const http::Request& req) {
      return req.headers.Get("authorization") == "Bearer cached" && !refuse_.load();
    });
  }
  std::atomic<bool> refuse_{false};
};

TEST_F(EmbedInlineTest, AdmitsOnlySmallRequestsWithACachedCredential) {
  http::Request small;
  small.headers.Set("authorization", "Bearer cached");
  small.body = R"({"input":"the cat"})";
  EXPECT_TRUE(service_->AdmitsInline(small));
  http::Request large = small;
  large.body.append(EmbedService::kInlineBodyBytes, ' ');
  EXPECT_FALSE(service_->AdmitsInline(large));
  http::Request unknown = small;
  unknown.headers.Set("authorization", "Bearer other");
  EXPECT_FALSE(service_->AdmitsInline(unknown));
  refuse_ = true;
  EXPECT_FALSE(service_->AdmitsInline(small));
}

TEST_F(EmbedApiTest, WithoutAnAdmissionRuleNothingRunsInline) {
  http::Request small;
  small.body = R"({"input":"the cat"})";
  EXPECT_FALSE(service_->AdmitsInline(small));
}

TEST_F(EmbedInlineTest, InlineAndPooledRequestsGiveTheSameVectors) {
  // The key's scope is the auth middleware's to check, which this test's server does not install:
  // both paths reach the handler, the first on the I/O thread, the second on the blocking pool.
  const std::string body = R"({"input":["the cat","a dog sat"]})";
  auto [inline_status, inline_v] =
      Post("/v1/embeddings", body, {{"authorization", "Bearer cached"}});
  auto [pooled_status, pooled_v] =
      Post("/v1/embeddings", body + std::string(EmbedService::kInlineBodyBytes, ' '),
           {{"authorization", "Bearer cached"}});
  EXPECT_EQ(inline_status, 200) << json::serialize(inline_v);
  EXPECT_EQ(pooled_status, 200) << json::serialize(pooled_v);
  EXPECT_EQ(json::serialize(inline_v), json::serialize(pooled_v));
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
