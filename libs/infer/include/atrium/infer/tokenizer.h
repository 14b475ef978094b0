// Tokenizers of the embedding engine: text → token ids, the way Hugging Face `tokenizers` does it.
//
// A Tokenizer is loaded from a Hugging Face `tokenizer.json` (or a plain WordPiece `vocab.txt`)
// and runs the usual pipeline: added/special tokens are split off the raw text, the rest is
// normalized (BertNormalizer, NFC, NFKC, NFD, NFKD, Lowercase, StripAccents, Sequence),
// pre-tokenized (BertPreTokenizer, Whitespace, WhitespaceSplit, Metaspace, Punctuation, Sequence),
// cut into pieces by the model (WordPiece, Unigram), truncated, and wrapped by the post-processor
// (BertProcessing, RobertaProcessing, TemplateProcessing). Ids match the reference implementation
// (see libs/infer/test/tokenizer_parity_test.cc); docs/embed.md lists what is supported.
//
// Thread safety: a Tokenizer is immutable after construction; every const method may be called
// from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::infer {

// The result of encoding one input (or one pair of inputs).
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;             // segment of each token (0 = first input, 1 = second)
  std::vector<uint8_t> attention_mask;       // 1 for real tokens, 0 for padding
  std::vector<uint8_t> special_tokens_mask;  // 1 for tokens added by the post-processor
  // [begin, end) byte offsets of each token in the input it came from; (0, 0) for added tokens.
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
  // Further windows of an input longer than the truncation length (when a stride is set, each
  // window overlaps the previous one by `stride` tokens). Empty when nothing was cut off.
  std::vector<Encoding> overflowing;

  size_t size() const { return ids.size(); }
};

enum class TruncationStrategy { kLongestFirst, kOnlyFirst, kOnlySecond };
enum class TruncationDirection { kRight, kLeft };

struct TruncationParams {
  size_t max_length = 0;  // 0: no truncation
  TruncationStrategy strategy = TruncationStrategy::kLongestFirst;
  TruncationDirection direction = TruncationDirection::kRight;
  size_t stride = 0;  // tokens shared by consecutive overflowing windows; < max_length
};

class Tokenizer {
 public:
  // Parses a Hugging Face tokenizer.json. InvalidArgument names any component type this
  // implementation does not support, and any malformed field.
  static Result<std::unique_ptr<Tokenizer>> FromJson(std::string_view json);
  // FromJson on a file's content; NotFound when it cannot be read.
  static Result<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // A BERT WordPiece tokenizer from a `vocab.txt` (one token per line, id = line number), as
  // BertTokenizerFast builds it: BertNormalizer, BertPreTokenizer, WordPiece with "##" and
  // [UNK], [CLS] A [SEP] post-processing.
  static Result<std::unique_ptr<Tokenizer>> FromVocab(std::string_view vocab_txt,
                                                      bool lowercase = true);
  static Result<std::unique_ptr<Tokenizer>> FromVocabFile(const std::string& path,
                                                          bool lowercase = true);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Encodes `text` (UTF-8; invalid bytes are read as U+FFFD). `max_length` > 0 truncates to that
  // many tokens (special tokens included) with the configured strategy, direction and stride;
  // 0 uses the truncation of tokenizer.json, if any.
  Encoding Encode(std::string_view text, bool add_special_tokens = true,
                  size_t max_length = 0) const;
  // Encodes a pair of inputs (e.g. query and passage): type_ids tell them apart.
  Encoding EncodePair(std::string_view first, std::string_view second,
                      bool add_special_tokens = true, size_t max_length = 0) const;
  // Encode on each input. With `pad`, every encoding is padded to the longest one with the pad
  // token (attention_mask 0), on the side tokenizer.json names (right by default).
  std::vector<Encoding> EncodeBatch(std::span<const std::string_view> texts,
                                    bool add_special_tokens = true, size_t max_length = 0,
                                    bool pad = false) const;

  // Turns ids back into text with the tokenizer's decoder. Unknown ids are skipped.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string_view> IdToToken(int32_t id) const;
  // Number of ids, added tokens included.
  size_t VocabSize() const;
  // The truncation from tokenizer.json (max_length 0 when none).
  const TruncationParams& truncation() const;
  // Special tokens added to a single input (pair = false) or a pair by the post-processor.
  size_t NumSpecialTokensToAdd(bool pair) const;

  struct Pipeline;  // private; defined in src/tokenizer_pipeline.h

 private:
  explicit Tokenizer(std::unique_ptr<Pipeline> pipeline);
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace atrium::infer
