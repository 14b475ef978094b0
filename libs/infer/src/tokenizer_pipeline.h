// Private: the parts a Tokenizer is assembled from. Each stage works on a NormalizedText, a
// sequence of code points that remembers, for every code point, which bytes of the original input
// it came from, so that token offsets point into the caller's text.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "atrium/infer/tokenizer.h"

namespace atrium::infer {

struct NormalizedText {
  std::u32string chars;
  std::vector<uint32_t> begin;  // byte offset in the original input of chars[i]'s source
  std::vector<uint32_t> end;    // one past the last byte of chars[i]'s source

  void Clear() {
    chars.clear();
    begin.clear();
    end.clear();
  }
  void Push(char32_t c, uint32_t b, uint32_t e) {
    chars.push_back(c);
    begin.push_back(b);
    end.push_back(e);
  }
  size_t size() const { return chars.size(); }
};

// Decodes UTF-8 (invalid sequences become U+FFFD, one per bad byte) and appends to `out` with
// offsets shifted by `base`.
void AppendUtf8(std::string_view text, uint32_t base, NormalizedText& out);
void AppendUtf8Char(char32_t c, std::string& out);

// A half-open range of code points [begin, end) in a NormalizedText.
struct Split {
  uint32_t begin;
  uint32_t end;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (whose content is `in`); `scratch` is reusable space.
  virtual void Normalize(NormalizedText& text, NormalizedText& scratch) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Refines `splits` (ranges in `text`); may rewrite `text` (Metaspace does).
  virtual void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const = 0;
};

// A token produced by the model: id plus the code point range it covers.
struct ModelToken {
  int32_t id;
  uint32_t begin;
  uint32_t end;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the tokens of one pre-tokenized word (code points [split.begin, split.end) of text).
  virtual void Tokenize(const NormalizedText& text, Split split, std::string& scratch,
                        std::vector<ModelToken>& out) const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  virtual std::optional<std::string_view> IdToToken(int32_t id) const = 0;
  virtual size_t VocabSize() const = 0;
};

// Adds special tokens around one or two encodings.
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual size_t AddedTokens(bool pair) const = 0;
  // `second` may be null. Writes the combined encoding into `out` (overflowing not handled here).
  virtual void Process(const Encoding& first, const Encoding* second, Encoding& out) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (a chain of decoders each sees the previous output).
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched in the normalized text rather than the raw input
  bool special = false;
  std::u32string normalized_content;  // content after the normalizer, when `normalized`
};

struct PaddingParams {
  int32_t pad_id = 0;
  int32_t pad_type_id = 0;
  bool left = false;
};

struct Tokenizer::Pipeline {
  std::vector<AddedToken> added_tokens;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  TruncationParams truncation;
  PaddingParams padding;
  std::unordered_map<std::string, int32_t> added_by_content;
  std::unordered_map<int32_t, size_t> added_by_id;  // index into added_tokens
  bool has_normalized_added = false;
  // Indexes into added_tokens of the tokens matched on raw text, by their first byte.
  std::array<std::vector<uint32_t>, 256> raw_added_by_first_byte;
  bool has_raw_added = false;
};

// Factories (tokenizer_components.cc). Unsupported types or bad fields → InvalidArgument.
struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // nullopt: follow lowercase
  bool lowercase = true;
};
std::unique_ptr<Normalizer> MakeBertNormalizer(const BertNormalizerOptions& options);
std::unique_ptr<PreTokenizer> MakeBertPreTokenizer();
std::unique_ptr<Model> MakeWordPiece(std::vector<std::string> vocab, int32_t unk_id,
                                     std::string continuing_subword_prefix,
                                     size_t max_input_chars_per_word);
std::unique_ptr<PostProcessor> MakeBertProcessing(int32_t cls_id, int32_t sep_id);
std::unique_ptr<Decoder> MakeWordPieceDecoder(std::string prefix, bool cleanup);

}  // namespace atrium::infer

namespace boost::json {
class value;
}

namespace atrium::infer {

// tokenizer.json sections → components. A null JSON value yields a null component.
Result<std::unique_ptr<Normalizer>> ParseNormalizer(const boost::json::value& v);
Result<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const boost::json::value& v);
Result<std::unique_ptr<Model>> ParseModel(const boost::json::value& v);
Result<std::unique_ptr<PostProcessor>> ParsePostProcessor(const boost::json::value& v,
                                                          const Model& model);
Result<std::unique_ptr<Decoder>> ParseDecoder(const boost::json::value& v);
// A token id (or type id) as written in tokenizer.json: an integer in 0..INT32_MAX, else
// InvalidArgument naming `field` (ids outside that range would index past every table).
Result<int32_t> ParseTokenId(const boost::json::value& v, std::string_view field);

}  // namespace atrium::infer
