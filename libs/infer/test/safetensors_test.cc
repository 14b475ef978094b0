// The safetensors reader and the model directory loader's error paths.
#include "atrium/infer/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "atrium/core/testing.h"
#include "atrium/infer/embedding_model.h"

namespace atrium::infer {
namespace {

// A safetensors file: header JSON (padded as written) followed by `data_bytes` bytes.
std::string MakeFile(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

Result<SafetensorsHeader> Parse(const std::string& file) {
  return ParseSafetensorsHeader(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(file.data()), file.size()),
      file.size());
}

std::string Floats(std::initializer_list<float> values) {
  std::string s(values.size() * 4, '\0');
  std::memcpy(s.data(), std::data(values), s.size());
  return s;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

TEST(SafetensorsHeaderTest, ParsesTensorsAndMetadata) {
  auto h = Parse(MakeFile(
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})",
      std::string(16, '\0')));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->tensors.size(), 2u);
  EXPECT_EQ(h->tensors[0].name, "a");
  EXPECT_EQ(h->tensors[0].dtype, SafetensorsDtype::kF16);
  EXPECT_EQ(h->tensors[0].NumElements(), 4u);
  EXPECT_EQ(h->tensors[1].begin, 8u);
  EXPECT_EQ(h->metadata.at("format"), "pt");
}

TEST(SafetensorsHeaderTest, HeaderLengthPastEndOfFileIsRejected) {
  std::string file = MakeFile("{}", "");
  file[0] = 100;
  auto h = Parse(file);
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("past the end"), std::string::npos);
  EXPECT_EQ(Parse("abc").status().code(), StatusCode::kInvalidArgument);
}

TEST(SafetensorsHeaderTest, OffsetsOutsideDataSectionNameTheTensor) {
  auto h = Parse(
      MakeFile(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')));
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("\"w\""), std::string::npos) << h.status().ToString();
}

TEST(SafetensorsHeaderTest, SizeNotMatchingShapeAndDtypeIsRejected) {
  auto h = Parse(MakeFile(R"({"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,16]}})",
                          std::string(16, '\0')));
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("\"w\""), std::string::npos);
  EXPECT_NE(h.status().message().find("need 8"), std::string::npos) << h.status().ToString();
}

TEST(SafetensorsHeaderTest, OverlappingTensorsAreRejected) {
  auto h = Parse(MakeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          std::string(12, '\0')));
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("overlaps"), std::string::npos) << h.status().ToString();
}

TEST(SafetensorsHeaderTest, MalformedEntriesAreRejected) {
  for (const char* header : {
           R"([1,2])",
           R"({"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})",
           R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
           R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
           R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})",
           R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})",
           R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})",
           R"({"w":{"shape":[1],"data_offsets":[0,4]}})",
           R"({"w":1})",
           R"({"__metadata__":{"a":1}})",
           R"({"w":)",
       }) {
    auto h = Parse(MakeFile(header, std::string(16, '\0')));
    EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument) << header;
  }
}

TEST(SafetensorsConvertTest, HalfAndBfloat16BecomeFloat32) {
  const uint8_t f16[] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c};  // 1, -2, 2^-24, inf
  float out[4];
  ASSERT_TRUE(ConvertToFloat32(SafetensorsDtype::kF16, f16, 4, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(out[3]));
  const uint8_t bf16[] = {0x80, 0x3f, 0x40, 0xc0};  // 1, -3
  ASSERT_TRUE(ConvertToFloat32(SafetensorsDtype::kBF16, bf16, 2, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
  EXPECT_EQ(ConvertToFloat32(SafetensorsDtype::kI32, bf16, 1, out).code(),
            StatusCode::kInvalidArgument);
}

TEST(WeightStoreTest, ReadsTensorsAndChecksShapes) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/model.safetensors",
            MakeFile(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})",
                     Floats({1, 2, 3, 4})));
  auto store = WeightStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto w = (*store)->ReadFloat32("w", std::vector<int64_t>{2, 2});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)[3], 4.0f);
  auto wrong = (*store)->ReadFloat32("w", std::vector<int64_t>{4});
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("\"w\""), std::string::npos);
  EXPECT_EQ((*store)->ReadFloat32("x", std::vector<int64_t>{1}).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ((*store)->ParameterCount(), 4u);
  EXPECT_EQ((*store)->FloatDtype(), "F32");
}

TEST(WeightStoreTest, ShardsListedInIndexAreOpened) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/a.safetensors",
            MakeFile(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({5})));
  WriteFile(dir.path() + "/b.safetensors",
            MakeFile(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({6})));
  WriteFile(dir.path() + "/model.safetensors.index.json",
            R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
  auto store = WeightStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->ReadFloat32("y", std::vector<int64_t>{1}).value()[0], 6.0f);

  WriteFile(dir.path() + "/model.safetensors.index.json",
            R"({"weight_map":{"x":"a.safetensors","y":"c.safetensors"}})");
  auto missing = WeightStore::Open(dir.path());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("c.safetensors"), std::string::npos);

  WriteFile(dir.path() + "/model.safetensors.index.json",
            R"({"weight_map":{"x":"../a.safetensors"}})");
  EXPECT_EQ(WeightStore::Open(dir.path()).status().code(), StatusCode::kInvalidArgument);
}

TEST(WeightStoreTest, MissingWeightsAreNotFoundNamingTheFile) {
  testing::TempDir dir;
  auto store = WeightStore::Open(dir.path());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_NE(store.status().message().find("model.safetensors"), std::string::npos);
}

TEST(WeightStoreTest, MalformedFileNamesFileAndTensor) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/model.safetensors",
            MakeFile(R"({"enc.w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                     std::string(8, '\0')));
  auto store = WeightStore::Open(dir.path());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("model.safetensors"), std::string::npos);
  EXPECT_NE(store.status().message().find("enc.w"), std::string::npos);
}

const char* kBertConfig = R"({"model_type":"bert","hidden_size":8,"num_hidden_layers":1,
  "num_attention_heads":2,"intermediate_size":16,"vocab_size":10,"max_position_embeddings":8})";

TEST(EmbeddingModelLoadTest, MissingFilesAreNotFoundNamingTheFile) {
  testing::TempDir dir;
  auto m = EmbeddingModel::Load(dir.path());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("config.json"), std::string::npos);

  WriteFile(dir.path() + "/config.json", kBertConfig);
  m = EmbeddingModel::Load(dir.path());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("tokenizer.json"), std::string::npos)
      << m.status().ToString();

  WriteFile(dir.path() + "/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nc\nd\ne\nf\n");
  m = EmbeddingModel::Load(dir.path());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("model.safetensors"), std::string::npos);

  WriteFile(dir.path() + "/model.safetensors", MakeFile("{}", ""));
  m = EmbeddingModel::Load(dir.path());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("embeddings.word_embeddings.weight"), std::string::npos)
      << m.status().ToString();
}

TEST(EmbeddingModelLoadTest, UnsupportedConfigIsInvalidArgumentNamingTheField) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/config.json", R"({"model_type":"gpt2","hidden_size":8})");
  auto m = EmbeddingModel::Load(dir.path());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("hidden_layers"), std::string::npos) << m.status().ToString();

  WriteFile(dir.path() + "/config.json",
            R"({"model_type":"gpt2","hidden_size":8,"num_hidden_layers":1,
  "num_attention_heads":2,"intermediate_size":16,"vocab_size":10,"max_position_embeddings":8})");
  m = EmbeddingModel::Load(dir.path());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("gpt2"), std::string::npos);

  WriteFile(dir.path() + "/config.json", "{not json");
  EXPECT_EQ(EmbeddingModel::Load(dir.path()).status().code(), StatusCode::kInvalidArgument);
}

TEST(PoolingTest, NamesRoundTrip) {
  for (Pooling p : {Pooling::kMean, Pooling::kCls, Pooling::kLastToken, Pooling::kMax}) {
    EXPECT_EQ(ParsePooling(PoolingName(p)).value(), p);
  }
  EXPECT_EQ(ParsePooling("lasttoken").value(), Pooling::kLastToken);
  EXPECT_EQ(ParsePooling("sum").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atrium::infer
