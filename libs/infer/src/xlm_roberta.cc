// XLM-RoBERTa (bge-m3, multilingual-e5): the BERT encoder with "roberta." tensors and position
// ids counted from pad_token_id + 1, as RobertaEmbeddings.create_position_ids_from_input_ids
// does for unpadded input.
#include "bert.h"

namespace atrium::infer {

Result<std::unique_ptr<Encoder>> LoadXlmRobertaEncoder(const EncoderConfig& config,
                                                       const WeightStore& weights) {
  BertVariant variant;
  variant.prefixes = {"", "roberta.", "model."};
  variant.position_offset = config.pad_token_id + 1;
  return LoadBertLikeEncoder(config, weights, variant);
}

}  // namespace atrium::infer
