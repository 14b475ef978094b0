// Embedding models: a loaded encoder (weights + tokenizer + pooling config) that turns batches of
// token-id sequences into one vector per sequence.
//
// A model is loaded from a directory in the Hugging Face layout: config.json, model.safetensors
// (fp32, fp16 or bf16; or shards listed in model.safetensors.index.json), tokenizer.json (or
// vocab.txt), and the sentence-transformers files modules.json, 1_Pooling/config.json,
// sentence_bert_config.json and config_sentence_transformers.json when present. Weights are
// converted to fp32 at load. Architectures are extensions (one file each, registered in
// src/architectures.cc): BERT family (bert: BERT, MiniLM, BGE, E5, GTE) and XLM-RoBERTa.
//
// Thread safety: an EmbeddingModel is immutable after Load; Embed may be called from several
// threads, but each call already uses `LoadOptions::threads` cores, so the serving layer runs one
// batch at a time per model.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/infer/tokenizer.h"

namespace atrium::infer {

enum class Pooling { kMean, kCls, kLastToken, kMax };

// "mean", "cls", "last_token" (also "lasttoken"), "max"; InvalidArgument otherwise.
Result<Pooling> ParsePooling(std::string_view name);
std::string_view PoolingName(Pooling pooling);

struct ModelInfo {
  std::string architecture;   // "bert", "xlm-roberta"
  std::string weights_dtype;  // dtype of the safetensors on disk: "F32", "F16", "BF16"
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  // Longest input the model accepts, in tokens, special tokens included:
  // sentence_bert_config.json's max_seq_length, else max_position_embeddings (minus the
  // position offset of XLM-R).
  size_t max_input_tokens = 512;
  Pooling pooling = Pooling::kCls;  // from 1_Pooling/config.json; CLS when absent
  bool normalize = false;           // modules.json lists a Normalize module
  // config_sentence_transformers.json "prompts" (name → text prepended to the input).
  std::map<std::string, std::string> prompts;
  std::string default_prompt_name;
  size_t parameter_count = 0;
};

struct LoadOptions {
  int threads = 0;  // cores one Embed call uses; 0 = all online cores
};

// One input of a batch: its token ids (special tokens included) and, optionally, segment ids
// (empty = all 0).
struct TokenSequence {
  std::span<const int32_t> ids;
  std::span<const int32_t> type_ids;
};

class EmbeddingModel {
 public:
  // Loads the model in `dir`. NotFound when a required file is missing; InvalidArgument for an
  // unsupported architecture or dtype, or a malformed file (the message names the file and the
  // field or tensor).
  static Result<std::unique_ptr<EmbeddingModel>> Load(const std::string& dir,
                                                      const LoadOptions& options = {});

  virtual ~EmbeddingModel() = default;

  virtual const ModelInfo& info() const = 0;
  virtual const Tokenizer& tokenizer() const = 0;

  // Runs the encoder over `batch` (sequences of different lengths are packed, not padded) and
  // pools each sequence with `pooling` into `out`, which must hold batch.size() * hidden_size
  // floats (row i = sequence i). The vectors are not normalized. InvalidArgument for an empty
  // sequence, a sequence longer than max_input_tokens or an id outside the vocabulary.
  virtual Status Embed(std::span<const TokenSequence> batch, Pooling pooling,
                       std::span<float> out) const = 0;

  // A hint that an Embed call follows shortly: the engine's pool threads wake now and wait for
  // it, polling, for up to `window`, so a request arriving at an idle engine does not also pay
  // their wake-up (on a VM, an idle vCPU takes a millisecond or more to run again). Cheap when
  // the engine is busy.
  virtual void Prewarm(std::chrono::microseconds window) const { (void)window; }
};

}  // namespace atrium::infer
