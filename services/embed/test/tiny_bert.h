// A tiny BERT sentence-embedding model with random weights, written in the Hugging Face layout
// (config.json, vocab.txt, model.safetensors in F32, modules.json with Normalize, mean pooling):
// the real encoder on a model small enough for the serving tests (2 layers, hidden 32, 64
// positions). Also used by apps/atrium/test/embed_serve_test.cc; tests/browser/tinybert.mjs writes
// the same shape.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace atrium::embed::testing {

inline constexpr int kTinyHidden = 32, kTinyLayers = 2, kTinyHeads = 4, kTinyIntermediate = 64,
                     kTinyPositions = 64;

// The words of the tiny model's vocabulary (after the five BERT special tokens).
inline const std::vector<std::string>& TinyBertWords() {
  static const std::vector<std::string> words = {
      "a",   "man",  "is",   "playing", "flute", "the",  "cat", "sat", "on",  "mat",
      "dog", "runs", "fast", "slow",    "red",   "blue", ".",   ",",   "##s", "big"};
  return words;
}

inline void WriteTinyBert(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir / "1_Pooling");
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (const auto& w : TinyBertWords()) vocab.push_back(w);
  std::ofstream(dir / "vocab.txt") << fmt::format("{}\n", fmt::join(vocab, "\n"));
  std::ofstream(dir / "config.json") << fmt::format(
      R"({{"architectures":["BertModel"],"model_type":"bert","hidden_size":{},)"
      R"("num_hidden_layers":{},"num_attention_heads":{},"intermediate_size":{},)"
      R"("vocab_size":{},"max_position_embeddings":{},"type_vocab_size":2,)"
      R"("layer_norm_eps":1e-12,"hidden_act":"gelu","pad_token_id":0}})",
      kTinyHidden, kTinyLayers, kTinyHeads, kTinyIntermediate, vocab.size(), kTinyPositions);
  std::ofstream(dir / "modules.json")
      << R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},)"
         R"({"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},)"
         R"({"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}])";
  std::ofstream(dir / "1_Pooling" / "config.json")
      << R"({"word_embedding_dimension":32,"pooling_mode_cls_token":false,)"
         R"("pooling_mode_mean_tokens":true,"pooling_mode_max_tokens":false})";

  std::map<std::string, std::vector<int>> shapes;
  int h = kTinyHidden;
  shapes["embeddings.word_embeddings.weight"] = {static_cast<int>(vocab.size()), h};
  shapes["embeddings.position_embeddings.weight"] = {kTinyPositions, h};
  shapes["embeddings.token_type_embeddings.weight"] = {2, h};
  shapes["embeddings.LayerNorm.weight"] = {h};
  shapes["embeddings.LayerNorm.bias"] = {h};
  for (int l = 0; l < kTinyLayers; ++l) {
    std::string p = fmt::format("encoder.layer.{}.", l);
    for (const char* m : {"query", "key", "value"}) {
      shapes[p + "attention.self." + m + ".weight"] = {h, h};
      shapes[p + "attention.self." + m + ".bias"] = {h};
    }
    shapes[p + "attention.output.dense.weight"] = {h, h};
    shapes[p + "attention.output.dense.bias"] = {h};
    shapes[p + "attention.output.LayerNorm.weight"] = {h};
    shapes[p + "attention.output.LayerNorm.bias"] = {h};
    shapes[p + "intermediate.dense.weight"] = {kTinyIntermediate, h};
    shapes[p + "intermediate.dense.bias"] = {kTinyIntermediate};
    shapes[p + "output.dense.weight"] = {h, kTinyIntermediate};
    shapes[p + "output.dense.bias"] = {h};
    shapes[p + "output.LayerNorm.weight"] = {h};
    shapes[p + "output.LayerNorm.bias"] = {h};
  }
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.2f);
  std::string header = "{";
  std::string data;
  for (const auto& [name, shape] : shapes) {
    size_t n = 1;
    for (int d : shape) n *= static_cast<size_t>(d);
    bool layer_norm_weight = name.find("LayerNorm.weight") != std::string::npos;
    size_t begin = data.size();
    for (size_t i = 0; i < n; ++i) {
      float v = layer_norm_weight ? 1.0f + normal(rng) * 0.1f : normal(rng);
      data.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    header +=
        fmt::format(R"({}"{}":{{"dtype":"F32","shape":[{}],"data_offsets":[{},{}]}})",
                    header.size() > 1 ? "," : "", name, fmt::join(shape, ","), begin, data.size());
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  uint64_t len = header.size();
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header << data;
}

}  // namespace atrium::embed::testing
