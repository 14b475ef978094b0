// Parity of the CPU encoder with a float64 NumPy reference (libs/infer/test/embed_reference.py)
// on randomly initialised models with real shapes: MiniLM-L6 (fp32, fp16, bf16, sharded),
// BERT-base and a small XLM-RoBERTa, batches mixing lengths 1…512, every pooling.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "atrium/core/testing.h"
#include "atrium/infer/embedding_model.h"

namespace atrium::infer {
namespace {
namespace json = boost::json;

std::string SourceDir() {
  const char* dir = std::getenv("ATRIUM_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

std::string Python() {
  // Debian's interpreter carries python3-numpy; a pyenv shim earlier in PATH may not.
  return std::ifstream("/usr/bin/python3").good() ? "/usr/bin/python3" : "python3";
}

struct Case {
  std::string name;
  std::string model;
  Pooling pooling;
  int hidden;
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<int32_t>> type_ids;
  std::vector<float> expected;
};

double Cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

std::vector<TokenSequence> Sequences(const std::vector<std::vector<int32_t>>& ids,
                                     const std::vector<std::vector<int32_t>>* types = nullptr) {
  std::vector<TokenSequence> batch;
  for (size_t i = 0; i < ids.size(); ++i) {
    TokenSequence s;
    s.ids = ids[i];
    if (types != nullptr) s.type_ids = (*types)[i];
    batch.push_back(s);
  }
  return batch;
}

class EmbeddingParityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    const std::string cmd = Python() + " " + SourceDir() + "/libs/infer/test/embed_reference.py " +
                            dir_->path() + " --data-dir " + SourceDir() + "/../shared/data";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " failed (needs python3-numpy)";
    std::ifstream in(dir_->path() + "/cases.json");
    std::stringstream ss;
    ss << in.rdbuf();
    json::value root = json::parse(ss.str());
    for (const json::value& c : root.at("cases").as_array()) {
      Case k;
      k.name = std::string(c.at("name").as_string());
      k.model = std::string(c.at("model").as_string());
      k.pooling = ParsePooling(std::string(c.at("pooling").as_string())).value();
      k.hidden = static_cast<int>(c.at("hidden").as_int64());
      for (const json::value& seq : c.at("ids").as_array()) {
        k.ids.push_back(json::value_to<std::vector<int32_t>>(seq));
      }
      for (const json::value& seq : c.at("type_ids").as_array()) {
        k.type_ids.push_back(json::value_to<std::vector<int32_t>>(seq));
      }
      k.expected.resize(k.ids.size() * static_cast<size_t>(k.hidden));
      std::ifstream f(dir_->path() + "/" + std::string(c.at("expected").as_string()),
                      std::ios::binary);
      f.read(reinterpret_cast<char*>(k.expected.data()),
             static_cast<std::streamsize>(k.expected.size() * sizeof(float)));
      ASSERT_TRUE(f.good()) << k.name;
      cases_->push_back(std::move(k));
    }
  }
  static void TearDownTestSuite() {
    models_->clear();
    cases_->clear();
    dir_.reset();
  }

  static const EmbeddingModel& Model(const std::string& name) {
    auto it = models_->find(name);
    if (it == models_->end()) {
      auto model = EmbeddingModel::Load(dir_->path() + "/" + name, LoadOptions{.threads = 2});
      EXPECT_TRUE(model.ok()) << model.status().ToString();
      it = models_->emplace(name, std::move(model).value()).first;
    }
    return *it->second;
  }

  // Runs every case whose name starts with `prefix`; returns how many ran.
  static int RunCases(const std::string& prefix) {
    int ran = 0;
    for (const Case& c : *cases_) {
      if (c.name.rfind(prefix, 0) != 0) continue;
      const EmbeddingModel& model = Model(c.model);
      std::vector<TokenSequence> batch = Sequences(c.ids, &c.type_ids);
      std::vector<float> out(batch.size() * static_cast<size_t>(c.hidden));
      Status s = model.Embed(batch, c.pooling, out);
      EXPECT_TRUE(s.ok()) << c.name << ": " << s.ToString();
      double min_cos = 1.0;
      for (size_t i = 0; i < batch.size(); ++i) {
        const size_t h = static_cast<size_t>(c.hidden);
        double cos = Cosine(out.data() + i * h, c.expected.data() + i * h, h);
        min_cos = std::min(min_cos, cos);
        EXPECT_GE(cos, 0.99999) << c.name << " sequence " << i << " (" << c.ids[i].size()
                                << " tokens)";
      }
      std::printf("%-24s 1 - min cosine = %.2e\n", c.name.c_str(), 1.0 - min_cos);
      ++ran;
    }
    return ran;
  }

  static std::unique_ptr<testing::TempDir> dir_;
  static std::unique_ptr<std::vector<Case>> cases_;
  static std::unique_ptr<std::map<std::string, std::unique_ptr<EmbeddingModel>>> models_;
};

std::unique_ptr<testing::TempDir> EmbeddingParityTest::dir_;
std::unique_ptr<std::vector<Case>> EmbeddingParityTest::cases_ =
    std::make_unique<std::vector<Case>>();
std::unique_ptr<std::map<std::string, std::unique_ptr<EmbeddingModel>>>
    EmbeddingParityTest::models_ =
        std::make_unique<std::map<std::string, std::unique_ptr<EmbeddingModel>>>();

TEST_F(EmbeddingParityTest, MiniLmFp32MatchesReferenceForEveryPooling) {
  EXPECT_EQ(RunCases("minilm-f32/"), 4);
}

TEST_F(EmbeddingParityTest, HalfAndBfloat16WeightsMatchReferenceOfRoundedWeights) {
  EXPECT_EQ(RunCases("minilm-f16/"), 1);
  EXPECT_EQ(RunCases("minilm-bf16/"), 1);
  EXPECT_EQ(Model("minilm-f16").info().weights_dtype, "F16");
  EXPECT_EQ(Model("minilm-bf16").info().weights_dtype, "BF16");
}

TEST_F(EmbeddingParityTest, ShardedWeightsMatchReference) {
  EXPECT_EQ(RunCases("minilm-sharded/"), 2);
}

TEST_F(EmbeddingParityTest, BertBaseShapeMatchesReference) { EXPECT_EQ(RunCases("bert-base/"), 2); }

TEST_F(EmbeddingParityTest, XlmRobertaMatchesReference) { EXPECT_EQ(RunCases("xlmr-small/"), 2); }

TEST_F(EmbeddingParityTest, InfoComesFromConfigAndSentenceTransformerFiles) {
  const ModelInfo& info = Model("minilm-f32").info();
  EXPECT_EQ(info.architecture, "bert");
  EXPECT_EQ(info.weights_dtype, "F32");
  EXPECT_EQ(info.hidden_size, 384);
  EXPECT_EQ(info.num_layers, 6);
  EXPECT_EQ(info.num_heads, 12);
  EXPECT_EQ(info.intermediate_size, 1536);
  EXPECT_EQ(info.vocab_size, 30522);
  EXPECT_EQ(info.max_input_tokens, 512u);
  EXPECT_EQ(info.pooling, Pooling::kMean);
  EXPECT_TRUE(info.normalize);
  EXPECT_EQ(info.prompts.at("query"), "query: ");
  EXPECT_EQ(info.default_prompt_name, "");
  // 6 × (4·384² + 2·384·1536 + 9·384 + 1536 (biases, norms)) + embeddings + norm + pooler.
  EXPECT_GT(info.parameter_count, 22'000'000u);
  EXPECT_EQ(Model("bert-base").info().pooling, Pooling::kCls);
  // XLM-R positions start after the padding id: 514 − 2.
  EXPECT_EQ(Model("xlmr-small").info().max_input_tokens, 512u);
  EXPECT_EQ(Model("xlmr-small").info().architecture, "xlm-roberta");
  EXPECT_EQ(Model("minilm-f32").tokenizer().Encode("hello world").ids.size(), 4u);
}

TEST_F(EmbeddingParityTest, EmbeddingDoesNotDependOnTheRestOfTheBatch) {
  const EmbeddingModel& model = Model("minilm-f32");
  std::vector<std::vector<int32_t>> ids = {
      {101, 2000, 3000, 102}, {101, 7592, 2088, 2003, 1037, 3231, 102}, {101, 102}};
  std::vector<float> together(3 * 384);
  ASSERT_TRUE(model.Embed(Sequences(ids), Pooling::kMean, together).ok());
  for (size_t i = 0; i < ids.size(); ++i) {
    std::vector<float> alone(384);
    ASSERT_TRUE(model.Embed(Sequences({ids[i]}), Pooling::kMean, alone).ok());
    for (size_t j = 0; j < 384; ++j) EXPECT_NEAR(alone[j], together[i * 384 + j], 1e-5);
  }
}

TEST_F(EmbeddingParityTest, BatchLargerThanFeedForwardChunkMatchesReference) {
  // The reference batch three times over: 2,361 tokens, more than one feed-forward row chunk.
  const Case* c = nullptr;
  for (const Case& k : *cases_) {
    if (k.name == "minilm-f32/mean") c = &k;
  }
  ASSERT_NE(c, nullptr);
  std::vector<std::vector<int32_t>> ids, types;
  for (int copy = 0; copy < 3; ++copy) {
    ids.insert(ids.end(), c->ids.begin(), c->ids.end());
    types.insert(types.end(), c->type_ids.begin(), c->type_ids.end());
  }
  std::vector<float> out(ids.size() * 384);
  ASSERT_TRUE(Model("minilm-f32").Embed(Sequences(ids, &types), Pooling::kMean, out).ok());
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* expected = c->expected.data() + (i % c->ids.size()) * 384;
    EXPECT_GE(Cosine(out.data() + i * 384, expected, 384), 0.99999) << "sequence " << i;
  }
}

TEST_F(EmbeddingParityTest, ThreadCountDoesNotChangeResults) {
  auto one = EmbeddingModel::Load(dir_->path() + "/minilm-f32", LoadOptions{.threads = 1});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  const Case* c = nullptr;
  for (const Case& k : *cases_) {
    if (k.name == "minilm-f32/max") c = &k;
  }
  ASSERT_NE(c, nullptr);
  std::vector<float> a(c->ids.size() * 384), b(c->ids.size() * 384);
  ASSERT_TRUE((*one)->Embed(Sequences(c->ids, &c->type_ids), Pooling::kMax, a).ok());
  ASSERT_TRUE(Model("minilm-f32").Embed(Sequences(c->ids, &c->type_ids), Pooling::kMax, b).ok());
  for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], 1e-5);
}

TEST_F(EmbeddingParityTest, InvalidBatchesAreRejected) {
  const EmbeddingModel& model = Model("minilm-f32");
  std::vector<float> out(384);
  std::vector<int32_t> empty;
  std::vector<int32_t> too_long(513, 1000);
  std::vector<int32_t> bad_id = {101, 30522, 102};
  std::vector<int32_t> ok = {101, 102};
  std::vector<int32_t> bad_type = {0, 2};
  for (const auto* ids : {&empty, &too_long, &bad_id}) {
    std::vector<TokenSequence> batch(1);
    batch[0].ids = *ids;
    Status s = model.Embed(batch, Pooling::kCls, out);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  }
  std::vector<TokenSequence> batch(1);
  batch[0].ids = ok;
  batch[0].type_ids = bad_type;
  EXPECT_EQ(model.Embed(batch, Pooling::kCls, out).code(), StatusCode::kInvalidArgument);
  batch[0].type_ids = {};
  std::vector<float> small(10);
  EXPECT_EQ(model.Embed(batch, Pooling::kCls, small).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(model.Embed({}, Pooling::kCls, std::span<float>()).ok());
}

}  // namespace
}  // namespace atrium::infer
