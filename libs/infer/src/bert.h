// BERT-family encoders (post-LayerNorm transformer with absolute learned positions): BERT,
// MiniLM, BGE, E5, GTE (model_type "bert") and XLM-RoBERTa, which differs only in its tensor
// prefix and in position ids that start after the padding id.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "architecture.h"

namespace atrium::infer {

struct BertVariant {
  // Prefixes tried, in order, before tensor names ("" = none): Hugging Face saves BertModel
  // without a prefix and BertForX / sentence-transformers exports with "bert.".
  std::vector<std::string> prefixes;
  // Position id of a sequence's first token (0 for BERT, pad_token_id + 1 for XLM-R).
  int position_offset = 0;
};

Result<std::unique_ptr<Encoder>> LoadBertLikeEncoder(const EncoderConfig& config,
                                                     const WeightStore& weights,
                                                     const BertVariant& variant);

// Factories registered in architectures.cc.
Result<std::unique_ptr<Encoder>> LoadBertEncoder(const EncoderConfig& config,
                                                 const WeightStore& weights);
Result<std::unique_ptr<Encoder>> LoadXlmRobertaEncoder(const EncoderConfig& config,
                                                       const WeightStore& weights);

}  // namespace atrium::infer
