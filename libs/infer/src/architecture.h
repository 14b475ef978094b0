// Encoder architectures: the extension point of the engine.
//
// Each architecture (BERT, XLM-RoBERTa; later ModernBERT, NomicBERT, Qwen3) is one file that
// implements Encoder and exposes a factory; src/architectures.cc lists the factories by the
// `model_type` of config.json. EmbeddingModel (src/embedding_model.cc) owns tokenizer, pooling
// and batching; an Encoder only maps packed token ids to hidden states.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "atrium/core/status.h"
#include "atrium/infer/safetensors.h"

namespace atrium::infer {

namespace cpu {
class ThreadPool;
}

// The fields of config.json the encoders use (Hugging Face names).
struct EncoderConfig {
  std::string model_type;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  int type_vocab_size = 0;
  int pad_token_id = 0;
  float layer_norm_eps = 1e-12f;
  std::string hidden_act = "gelu";
  std::string position_embedding_type = "absolute";
};

// Sequences of one batch packed end to end: sequence s owns tokens [offsets[s], offsets[s+1]).
struct PackedTokens {
  std::span<const int32_t> ids;       // total tokens
  std::span<const int32_t> type_ids;  // total tokens
  std::span<const size_t> offsets;    // sequences + 1
};

class Encoder {
 public:
  virtual ~Encoder() = default;
  // Longest sequence the position table allows.
  virtual size_t max_tokens() const = 0;
  // Writes the last hidden states, [total tokens × hidden_size] row-major, into `hidden`.
  // Ids and type ids are already validated against the vocabulary sizes.
  virtual void Forward(const PackedTokens& tokens, cpu::ThreadPool& pool,
                       std::span<float> hidden) const = 0;
};

struct ArchitectureFactory {
  std::string_view model_type;  // config.json "model_type"
  // Builds the encoder from `weights`; InvalidArgument/NotFound naming the tensor or field.
  Result<std::unique_ptr<Encoder>> (*load)(const EncoderConfig& config, const WeightStore& weights);
};

// Every registered architecture (src/architectures.cc).
std::span<const ArchitectureFactory> Architectures();

}  // namespace atrium::infer
