// Normalizers, pre-tokenizers, models, post-processors and decoders, and their tokenizer.json
// forms (https://huggingface.co/docs/tokenizers/api/ — field names follow the Rust crate).
#include <boost/json.hpp>
#include <climits>
#include <cmath>
#include <limits>
#include <string>

#include "atrium/core/strings.h"
#include "tokenizer_pipeline.h"
#include "tokenizer_unicode.h"

namespace atrium::infer {
namespace json = boost::json;
namespace uc = unicode;

void AppendUtf8Char(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

void AppendUtf8(std::string_view s, uint32_t base, NormalizedText& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char b = p[i];
    char32_t c = 0xFFFD;
    size_t len = 1;
    if (b < 0x80) {
      c = b;
    } else {
      size_t need = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0;
      if (need != 0 && i + need <= n) {
        char32_t v = need == 2 ? (b & 0x1F) : need == 3 ? (b & 0x0F) : (b & 0x07);
        bool ok = true;
        for (size_t k = 1; k < need; ++k) {
          if ((p[i + k] & 0xC0) != 0x80) {
            ok = false;
            break;
          }
          v = (v << 6) | (p[i + k] & 0x3F);
        }
        bool overlong = (need == 3 && v < 0x800) || (need == 4 && v < 0x10000);
        if (ok && !overlong && v <= 0x10FFFF && !(v >= 0xD800 && v <= 0xDFFF)) {
          c = v;
          len = need;
        }
      }
    }
    out.Push(c, base + static_cast<uint32_t>(i), base + static_cast<uint32_t>(i + len));
    i += len;
  }
}

namespace {

// ---------------------------------------------------------------------------------------------
// Normalizers

class BertNormalizer final : public Normalizer {
 public:
  explicit BertNormalizer(const BertNormalizerOptions& o)
      : options_(o), strip_accents_(o.strip_accents.value_or(o.lowercase)) {}

  void Normalize(NormalizedText& text, NormalizedText& scratch) const override {
    scratch.Clear();
    bool any_non_ascii = false;
    for (size_t i = 0; i < text.size(); ++i) {
      char32_t c = text.chars[i];
      if (options_.clean_text) {
        if (c == 0 || c == 0xFFFD ||
            (c != '\t' && c != '\n' && c != '\r' &&
             (c < 0x20 || (c >= 0x7F && uc::IsControlOrOther(c))))) {
          continue;
        }
        if (uc::IsWhitespace(c)) c = ' ';
      }
      if (c >= 0x80) any_non_ascii = true;
      if (options_.handle_chinese_chars && c >= 0x3400 && uc::IsChineseChar(c)) {
        scratch.Push(' ', text.begin[i], text.begin[i]);
        scratch.Push(c, text.begin[i], text.end[i]);
        scratch.Push(' ', text.end[i], text.end[i]);
        continue;
      }
      scratch.Push(c, text.begin[i], text.end[i]);
    }
    if (strip_accents_ && any_non_ascii) {
      uc::Normalize(scratch, uc::Form::kNfd, text);
      scratch.Clear();
      for (size_t i = 0; i < text.size(); ++i) {
        if (!uc::IsMarkNonspacing(text.chars[i])) {
          scratch.Push(text.chars[i], text.begin[i], text.end[i]);
        }
      }
    }
    if (options_.lowercase) {
      uc::Lowercase(scratch, text);
    } else {
      std::swap(text, scratch);
    }
  }

 private:
  BertNormalizerOptions options_;
  bool strip_accents_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(uc::Form form) : form_(form) {}
  void Normalize(NormalizedText& text, NormalizedText& scratch) const override {
    uc::Normalize(text, form_, scratch);
    std::swap(text, scratch);
  }

 private:
  uc::Form form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void Normalize(NormalizedText& text, NormalizedText& scratch) const override {
    uc::Lowercase(text, scratch);
    std::swap(text, scratch);
  }
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  void Normalize(NormalizedText& text, NormalizedText& scratch) const override {
    scratch.Clear();
    for (size_t i = 0; i < text.size(); ++i) {
      if (!uc::IsMarkNonspacing(text.chars[i])) {
        scratch.Push(text.chars[i], text.begin[i], text.end[i]);
      }
    }
    std::swap(text, scratch);
  }
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void Normalize(NormalizedText& text, NormalizedText& scratch) const override {
    for (const auto& p : parts_) p->Normalize(text, scratch);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits every range of `splits` around the code points for which `is_delim` holds.
template <typename Pred>
void SplitOn(const NormalizedText& text, std::vector<Split>& splits, SplitBehavior behavior,
             Pred is_delim) {
  std::vector<Split> out;
  out.reserve(splits.size() * 2);
  for (Split s : splits) {
    uint32_t start = s.begin;  // start of the pending non-delimiter run
    uint32_t i = s.begin;
    while (i < s.end) {
      if (!is_delim(text.chars[i])) {
        ++i;
        continue;
      }
      uint32_t d_end = i + 1;
      if (behavior == SplitBehavior::kContiguous) {
        while (d_end < s.end && is_delim(text.chars[d_end])) ++d_end;
      }
      switch (behavior) {
        case SplitBehavior::kRemoved:
          if (start < i) out.push_back({start, i});
          start = d_end;
          break;
        case SplitBehavior::kIsolated:
        case SplitBehavior::kContiguous:
          if (start < i) out.push_back({start, i});
          out.push_back({i, d_end});
          start = d_end;
          break;
        case SplitBehavior::kMergedWithPrevious:
          out.push_back({start, d_end});
          start = d_end;
          break;
        case SplitBehavior::kMergedWithNext:
          if (start < i) out.push_back({start, i});
          start = i;
          break;
      }
      i = d_end;
    }
    if (start < s.end) out.push_back({start, s.end});
  }
  splits.swap(out);
}

class BertPreTokenizer final : public PreTokenizer {
 public:
  void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const override {
    SplitOn(text, splits, SplitBehavior::kRemoved, uc::IsWhitespace);
    SplitOn(text, splits, SplitBehavior::kIsolated, uc::IsBertPunctuation);
  }
};

class WhitespaceSplitPreTokenizer final : public PreTokenizer {
 public:
  void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const override {
    SplitOn(text, splits, SplitBehavior::kRemoved, uc::IsWhitespace);
  }
};

// The regex \w+|[^\w\s]+: runs of word characters and runs of other non-space characters.
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const override {
    std::vector<Split> out;
    for (Split s : splits) {
      uint32_t i = s.begin;
      while (i < s.end) {
        char32_t c = text.chars[i];
        if (uc::IsWhitespace(c)) {
          ++i;
          continue;
        }
        bool word = uc::IsWordChar(c);
        uint32_t j = i + 1;
        while (j < s.end && !uc::IsWhitespace(text.chars[j]) &&
               uc::IsWordChar(text.chars[j]) == word) {
          ++j;
        }
        out.push_back({i, j});
        i = j;
      }
    }
    splits.swap(out);
  }
};

class PunctuationPreTokenizer final : public PreTokenizer {
 public:
  explicit PunctuationPreTokenizer(SplitBehavior b) : behavior_(b) {}
  void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const override {
    SplitOn(text, splits, behavior_, uc::IsBertPunctuation);
  }

 private:
  SplitBehavior behavior_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {}

  void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const override {
    NormalizedText out;
    std::vector<Split> new_splits;
    new_splits.reserve(splits.size());
    for (Split s : splits) {
      uint32_t b = static_cast<uint32_t>(out.size());
      bool prepend =
          scheme_ == PrependScheme::kAlways ||
          (scheme_ == PrependScheme::kFirst && s.begin < text.size() && text.begin[s.begin] == 0);
      if (prepend && s.begin < s.end && text.chars[s.begin] != ' ' &&
          text.chars[s.begin] != replacement_) {
        out.Push(replacement_, text.begin[s.begin], text.begin[s.begin]);
      }
      for (uint32_t i = s.begin; i < s.end; ++i) {
        char32_t c = text.chars[i] == ' ' ? replacement_ : text.chars[i];
        out.Push(c, text.begin[i], text.end[i]);
      }
      new_splits.push_back({b, static_cast<uint32_t>(out.size())});
    }
    text = std::move(out);
    splits.swap(new_splits);
    if (split_) {
      char32_t r = replacement_;
      SplitOn(text, splits, SplitBehavior::kMergedWithNext, [r](char32_t c) { return c == r; });
    }
  }

 private:
  char32_t replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(NormalizedText& text, std::vector<Split>& splits) const override {
    for (const auto& p : parts_) p->PreTokenize(text, splits);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// ---------------------------------------------------------------------------------------------
// Models

using VocabMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class VocabModel : public Model {
 public:
  explicit VocabModel(std::vector<std::string> vocab) : vocab_(std::move(vocab)) {
    index_.reserve(vocab_.size());
    for (size_t i = 0; i < vocab_.size(); ++i) {
      if (!vocab_[i].empty()) index_.emplace(vocab_[i], static_cast<int32_t>(i));
    }
  }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    auto it = index_.find(token);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string_view> IdToToken(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) return std::nullopt;
    return vocab_[static_cast<size_t>(id)];
  }
  size_t VocabSize() const override { return vocab_.size(); }

 protected:
  std::vector<std::string> vocab_;
  VocabMap index_;
};

// Greedy longest-match-first WordPiece (BERT).
class WordPiece final : public VocabModel {
 public:
  WordPiece(std::vector<std::string> vocab, int32_t unk_id, std::string prefix, size_t max_chars)
      : VocabModel(std::move(vocab)),
        unk_id_(unk_id),
        prefix_(std::move(prefix)),
        max_chars_(max_chars) {}

  void Tokenize(const NormalizedText& text, Split split, std::string& scratch,
                std::vector<ModelToken>& out) const override {
    size_t nchars = split.end - split.begin;
    if (nchars > max_chars_) {
      out.push_back({unk_id_, split.begin, split.end});
      return;
    }
    // scratch = prefix + UTF-8 of the word; byte_at[k] = byte offset of char k in the word.
    scratch.assign(prefix_);
    size_t word_base = scratch.size();
    uint32_t byte_at[129];
    std::vector<uint32_t> byte_at_heap;
    uint32_t* bytes = byte_at;
    if (nchars + 1 > std::size(byte_at)) {
      byte_at_heap.resize(nchars + 1);
      bytes = byte_at_heap.data();
    }
    for (size_t k = 0; k < nchars; ++k) {
      bytes[k] = static_cast<uint32_t>(scratch.size() - word_base);
      AppendUtf8Char(text.chars[split.begin + k], scratch);
    }
    bytes[nchars] = static_cast<uint32_t>(scratch.size() - word_base);
    std::string_view word(scratch.data() + word_base, scratch.size() - word_base);
    size_t first_out = out.size();
    size_t start = 0;
    std::string piece;
    while (start < nchars) {
      size_t end = nchars;
      int32_t found = -1;
      while (start < end) {
        std::string_view sub = word.substr(bytes[start], bytes[end] - bytes[start]);
        VocabMap::const_iterator it;
        if (start == 0) {
          it = index_.find(sub);
        } else {
          piece.assign(prefix_);
          piece.append(sub);
          it = index_.find(std::string_view(piece));
        }
        if (it != index_.end()) {
          found = it->second;
          break;
        }
        --end;
      }
      if (found < 0) {
        out.resize(first_out);
        out.push_back({unk_id_, split.begin, split.end});
        return;
      }
      out.push_back({found, split.begin + static_cast<uint32_t>(start),
                     split.begin + static_cast<uint32_t>(end)});
      start = end;
    }
  }

 private:
  int32_t unk_id_;
  std::string prefix_;
  size_t max_chars_;
};

// SentencePiece unigram language model: the segmentation with the highest total score (Viterbi).
class Unigram final : public VocabModel {
 public:
  Unigram(std::vector<std::string> vocab, std::vector<double> scores, std::optional<int32_t> unk,
          bool byte_fallback)
      : VocabModel(std::move(vocab)),
        scores_(std::move(scores)),
        unk_id_(unk),
        byte_fallback_(byte_fallback) {
    double min_score = std::numeric_limits<double>::max();
    for (double s : scores_) min_score = std::min(min_score, s);
    unk_score_ = (scores_.empty() ? 0.0 : min_score) - 10.0;  // kUnkPenalty in sentencepiece
    for (const auto& p : vocab_) max_piece_bytes_ = std::max(max_piece_bytes_, p.size());
    if (byte_fallback_) {
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        auto id = TokenToId(name);
        byte_ids_[b] = id.value_or(-1);
      }
    }
  }

  void Tokenize(const NormalizedText& text, Split split, std::string& scratch,
                std::vector<ModelToken>& out) const override {
    size_t n = split.end - split.begin;
    if (n == 0) return;
    scratch.clear();
    std::vector<uint32_t> bytes(n + 1);
    for (size_t k = 0; k < n; ++k) {
      bytes[k] = static_cast<uint32_t>(scratch.size());
      AppendUtf8Char(text.chars[split.begin + k], scratch);
    }
    bytes[n] = static_cast<uint32_t>(scratch.size());
    struct Node {
      double score = -std::numeric_limits<double>::infinity();
      int32_t id = -1;  // -2: unknown
      uint32_t start = 0;
      bool reached = false;
    };
    std::vector<Node> best(n + 1);
    best[0].reached = true;
    best[0].score = 0;
    std::string_view s(scratch);
    for (size_t i = 0; i < n; ++i) {
      if (!best[i].reached) continue;
      bool has_single = false;
      for (size_t j = i + 1; j <= n && bytes[j] - bytes[i] <= max_piece_bytes_; ++j) {
        auto id = TokenToId(s.substr(bytes[i], bytes[j] - bytes[i]));
        if (!id) continue;
        if (j == i + 1) has_single = true;
        double cand = best[i].score + scores_[static_cast<size_t>(*id)];
        if (!best[j].reached || cand > best[j].score) {
          best[j] = {cand, *id, static_cast<uint32_t>(i), true};
        }
      }
      if (!has_single) {
        double cand = best[i].score + unk_score_;
        if (!best[i + 1].reached || cand > best[i + 1].score) {
          best[i + 1] = {cand, -2, static_cast<uint32_t>(i), true};
        }
      }
    }
    std::vector<ModelToken> rev;
    for (size_t j = n; j > 0;) {
      const Node& node = best[j];
      uint32_t i = node.start;
      int32_t id = node.id;
      // Consecutive unknown pieces fuse into one.
      if (id == -2 && !rev.empty() && rev.back().id == -2) {
        rev.back().begin = i;
      } else if (id == -2 && unk_id_ && *unk_id_ >= 0 &&
                 static_cast<size_t>(*unk_id_) < vocab_.size() && !byte_fallback_ && !rev.empty() &&
                 rev.back().id == *unk_id_) {
        rev.back().begin = i;  // the unk piece itself is also fused with unknowns
      } else {
        rev.push_back({id, i, static_cast<uint32_t>(j)});
      }
      j = i;
    }
    for (auto it = rev.rbegin(); it != rev.rend(); ++it) {
      if (it->id != -2) {
        out.push_back({it->id, split.begin + it->begin, split.begin + it->end});
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (uint32_t b = bytes[it->begin]; b < bytes[it->end]; ++b) {
          if (byte_ids_[static_cast<unsigned char>(s[b])] < 0) all = false;
        }
        if (all) {
          for (uint32_t b = bytes[it->begin]; b < bytes[it->end]; ++b) {
            out.push_back({byte_ids_[static_cast<unsigned char>(s[b])], split.begin + it->begin,
                           split.begin + it->end});
          }
          continue;
        }
      }
      out.push_back({unk_id_.value_or(0), split.begin + it->begin, split.begin + it->end});
    }
  }

 private:
  std::vector<double> scores_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_;
  double unk_score_ = 0;
  size_t max_piece_bytes_ = 0;
  int32_t byte_ids_[256] = {};
};

// ---------------------------------------------------------------------------------------------
// Post-processors

void AppendSpecial(Encoding& out, int32_t id, int32_t type_id) {
  out.ids.push_back(id);
  out.type_ids.push_back(type_id);
  out.attention_mask.push_back(1);
  out.special_tokens_mask.push_back(1);
  out.offsets.push_back({0, 0});
}

void AppendSequence(Encoding& out, const Encoding& in, std::optional<int32_t> type_id) {
  for (size_t i = 0; i < in.size(); ++i) {
    out.ids.push_back(in.ids[i]);
    out.type_ids.push_back(type_id.value_or(in.type_ids[i]));
    out.attention_mask.push_back(in.attention_mask[i]);
    out.special_tokens_mask.push_back(in.special_tokens_mask[i]);
    out.offsets.push_back(in.offsets[i]);
  }
}

// [CLS] A [SEP] (B [SEP]); RoBERTa: <s> A </s> (</s> B </s>).
class BertProcessing final : public PostProcessor {
 public:
  BertProcessing(int32_t cls, int32_t sep, bool roberta)
      : cls_(cls), sep_(sep), roberta_(roberta) {}
  size_t AddedTokens(bool pair) const override { return pair ? (roberta_ ? 4 : 3) : 2; }
  void Process(const Encoding& a, const Encoding* b, Encoding& out) const override {
    AppendSpecial(out, cls_, 0);
    AppendSequence(out, a, 0);
    AppendSpecial(out, sep_, 0);
    if (b == nullptr) return;
    int32_t type = roberta_ ? 0 : 1;
    if (roberta_) AppendSpecial(out, sep_, 0);
    AppendSequence(out, *b, type);
    AppendSpecial(out, sep_, type);
  }

 private:
  int32_t cls_, sep_;
  bool roberta_;
};

struct TemplatePiece {
  bool is_sequence;
  bool second;               // sequence B
  std::vector<int32_t> ids;  // special token ids
  int32_t type_id;
};

class TemplateProcessing final : public PostProcessor {
 public:
  TemplateProcessing(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair)
      : single_(std::move(single)), pair_(std::move(pair)) {}
  size_t AddedTokens(bool pair) const override {
    size_t n = 0;
    for (const auto& p : pair ? pair_ : single_) n += p.is_sequence ? 0 : p.ids.size();
    return n;
  }
  void Process(const Encoding& a, const Encoding* b, Encoding& out) const override {
    for (const auto& p : b ? pair_ : single_) {
      if (p.is_sequence) {
        AppendSequence(out, p.second && b ? *b : a, p.type_id);
      } else {
        for (int32_t id : p.ids) AppendSpecial(out, id, p.type_id);
      }
    }
  }

 private:
  std::vector<TemplatePiece> single_, pair_;
};

// ---------------------------------------------------------------------------------------------
// Decoders

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (!prefix_.empty() && t.starts_with(prefix_)) {
          t.erase(0, prefix_.size());
        } else {
          t.insert(0, " ");
        }
      }
      if (cleanup_) Cleanup(t);
    }
  }

  // The replacements of `clean_up_tokenization` in tokenizers.
  static void Cleanup(std::string& s) {
    static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
        {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (auto [from, to] : kRules) {
      size_t pos = 0;
      while ((pos = s.find(from, pos)) != std::string::npos) {
        s.replace(pos, from.size(), to);
        pos += to.size();
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepend) : prepend_(prepend) {
    AppendUtf8Char(replacement, replacement_);
  }
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      std::string r;
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, replacement_.size(), replacement_) == 0) {
          r.push_back(' ');
          p += replacement_.size();
        } else {
          r.push_back(t[p++]);
        }
      }
      if (i == 0 && prepend_ && !r.empty() && r[0] == ' ') r.erase(0, 1);
      t = std::move(r);
    }
  }

 private:
  std::string replacement_;
  bool prepend_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      NormalizedText check;
      AppendUtf8(bytes, 0, check);
      std::string s;
      for (char32_t c : check.chars) AppendUtf8Char(c, s);
      out.push_back(std::move(s));
      bytes.clear();
    };
    for (auto& t : tokens) {
      unsigned v = 0;
      if (t.size() == 6 && t.starts_with("<0x") && t[5] == '>' &&
          std::sscanf(t.c_str() + 3, "%2X", &v) == 1) {
        bytes.push_back(static_cast<char>(v));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// ---------------------------------------------------------------------------------------------
// tokenizer.json

const json::object* AsObject(const json::value& v) { return v.if_object(); }

std::string TypeOf(const json::object& o) {
  auto* t = o.if_contains("type");
  return t && t->is_string() ? std::string(t->as_string()) : std::string();
}

bool GetBool(const json::object& o, std::string_view key, bool fallback) {
  auto* v = o.if_contains(key);
  return v && v->is_bool() ? v->as_bool() : fallback;
}

std::optional<std::string> GetString(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

Status Unsupported(std::string_view what, std::string_view type) {
  return InvalidArgument("tokenizer.json: unsupported " + std::string(what) + " type '" +
                         std::string(type) + "'");
}

}  // namespace

Result<int32_t> ParseTokenId(const json::value& v, std::string_view field) {
  if (!v.is_int64() && !v.is_uint64()) {
    return InvalidArgument("tokenizer.json: " + std::string(field) + " must be an integer");
  }
  bool in_range = v.is_int64() ? v.as_int64() >= 0 && v.as_int64() <= INT32_MAX
                               : v.as_uint64() <= static_cast<uint64_t>(INT32_MAX);
  if (!in_range) {
    return InvalidArgument("tokenizer.json: " + std::string(field) + " " + json::serialize(v) +
                           " is outside 0..2147483647");
  }
  return static_cast<int32_t>(v.is_int64() ? v.as_int64() : static_cast<int64_t>(v.as_uint64()));
}

namespace {

Result<char32_t> SingleChar(const std::string& s, std::string_view field) {
  NormalizedText t;
  AppendUtf8(s, 0, t);
  if (t.size() != 1) {
    return InvalidArgument("tokenizer.json: " + std::string(field) + " must be one character");
  }
  return t.chars[0];
}

Result<SplitBehavior> ParseBehavior(const json::object& o) {
  auto b = GetString(o, "behavior").value_or("Isolated");
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return InvalidArgument("tokenizer.json: unknown split behavior '" + b + "'");
}

Result<std::vector<std::unique_ptr<Normalizer>>> ParseNormalizerList(const json::value* v) {
  std::vector<std::unique_ptr<Normalizer>> parts;
  if (!v || !v->is_array()) return InvalidArgument("tokenizer.json: Sequence needs a list");
  for (const auto& item : v->as_array()) {
    ASSIGN_OR_RETURN(auto n, ParseNormalizer(item));
    if (n) parts.push_back(std::move(n));
  }
  return parts;
}

}  // namespace

std::unique_ptr<Normalizer> MakeBertNormalizer(const BertNormalizerOptions& options) {
  return std::make_unique<BertNormalizer>(options);
}
std::unique_ptr<PreTokenizer> MakeBertPreTokenizer() {
  return std::make_unique<BertPreTokenizer>();
}
std::unique_ptr<Model> MakeWordPiece(std::vector<std::string> vocab, int32_t unk_id,
                                     std::string prefix, size_t max_chars) {
  return std::make_unique<WordPiece>(std::move(vocab), unk_id, std::move(prefix), max_chars);
}
std::unique_ptr<PostProcessor> MakeBertProcessing(int32_t cls_id, int32_t sep_id) {
  return std::make_unique<BertProcessing>(cls_id, sep_id, false);
}
std::unique_ptr<Decoder> MakeWordPieceDecoder(std::string prefix, bool cleanup) {
  return std::make_unique<WordPieceDecoder>(std::move(prefix), cleanup);
}

Result<std::unique_ptr<Normalizer>> ParseNormalizer(const json::value& v) {
  if (v.is_null()) return std::unique_ptr<Normalizer>();
  const auto* o = AsObject(v);
  if (!o) return InvalidArgument("tokenizer.json: normalizer must be an object");
  std::string type = TypeOf(*o);
  if (type == "BertNormalizer") {
    BertNormalizerOptions opt;
    opt.clean_text = GetBool(*o, "clean_text", true);
    opt.handle_chinese_chars = GetBool(*o, "handle_chinese_chars", true);
    opt.lowercase = GetBool(*o, "lowercase", true);
    if (auto* s = o->if_contains("strip_accents"); s && s->is_bool())
      opt.strip_accents = s->as_bool();
    return std::unique_ptr<Normalizer>(std::make_unique<BertNormalizer>(opt));
  }
  if (type == "NFC")
    return std::unique_ptr<Normalizer>(std::make_unique<UnicodeNormalizer>(uc::Form::kNfc));
  if (type == "NFD")
    return std::unique_ptr<Normalizer>(std::make_unique<UnicodeNormalizer>(uc::Form::kNfd));
  if (type == "NFKC")
    return std::unique_ptr<Normalizer>(std::make_unique<UnicodeNormalizer>(uc::Form::kNfkc));
  if (type == "NFKD")
    return std::unique_ptr<Normalizer>(std::make_unique<UnicodeNormalizer>(uc::Form::kNfkd));
  if (type == "Lowercase")
    return std::unique_ptr<Normalizer>(std::make_unique<LowercaseNormalizer>());
  if (type == "StripAccents")
    return std::unique_ptr<Normalizer>(std::make_unique<StripAccentsNormalizer>());
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(auto parts, ParseNormalizerList(o->if_contains("normalizers")));
    return std::unique_ptr<Normalizer>(std::make_unique<SequenceNormalizer>(std::move(parts)));
  }
  return Unsupported("normalizer", type);
}

Result<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const json::value& v) {
  if (v.is_null()) return std::unique_ptr<PreTokenizer>();
  const auto* o = AsObject(v);
  if (!o) return InvalidArgument("tokenizer.json: pre_tokenizer must be an object");
  std::string type = TypeOf(*o);
  if (type == "BertPreTokenizer")
    return std::unique_ptr<PreTokenizer>(std::make_unique<BertPreTokenizer>());
  if (type == "Whitespace")
    return std::unique_ptr<PreTokenizer>(std::make_unique<WhitespacePreTokenizer>());
  if (type == "WhitespaceSplit")
    return std::unique_ptr<PreTokenizer>(std::make_unique<WhitespaceSplitPreTokenizer>());
  if (type == "Punctuation") {
    ASSIGN_OR_RETURN(SplitBehavior b, ParseBehavior(*o));
    return std::unique_ptr<PreTokenizer>(std::make_unique<PunctuationPreTokenizer>(b));
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(char32_t r, SingleChar(GetString(*o, "replacement").value_or("\xE2\x96\x81"),
                                            "Metaspace.replacement"));
    PrependScheme scheme =
        GetBool(*o, "add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
    if (auto s = GetString(*o, "prepend_scheme")) {
      if (*s == "always")
        scheme = PrependScheme::kAlways;
      else if (*s == "first")
        scheme = PrependScheme::kFirst;
      else if (*s == "never")
        scheme = PrependScheme::kNever;
      else
        return InvalidArgument("tokenizer.json: unknown Metaspace prepend_scheme '" + *s + "'");
    }
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<MetaspacePreTokenizer>(r, scheme, GetBool(*o, "split", true)));
  }
  if (type == "Sequence") {
    auto* list = o->if_contains("pretokenizers");
    if (!list || !list->is_array())
      return InvalidArgument("tokenizer.json: Sequence needs pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& item : list->as_array()) {
      ASSIGN_OR_RETURN(auto p, ParsePreTokenizer(item));
      if (p) parts.push_back(std::move(p));
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<SequencePreTokenizer>(std::move(parts)));
  }
  return Unsupported("pre_tokenizer", type);
}

Result<std::unique_ptr<Model>> ParseModel(const json::value& v) {
  const auto* o = AsObject(v);
  if (!o) return InvalidArgument("tokenizer.json: model must be an object");
  std::string type = TypeOf(*o);
  if (type.empty() && o->contains("continuing_subword_prefix") && !o->contains("merges"))
    type = "WordPiece";
  if (type == "WordPiece") {
    auto* vocab = o->if_contains("vocab");
    if (!vocab || !vocab->is_object())
      return InvalidArgument("tokenizer.json: WordPiece vocab must be an object");
    // Ids may have gaps (filled by added tokens); a gap stays an empty, unmatchable entry.
    size_t size = 0;
    for (const auto& [k, id] : vocab->as_object()) {
      if (!id.is_int64() || id.as_int64() < 0 || id.as_int64() > (1 << 24)) {
        return InvalidArgument("tokenizer.json: WordPiece ids must be in 0..2^24");
      }
      size = std::max(size, static_cast<size_t>(id.as_int64()) + 1);
    }
    std::vector<std::string> tokens(size);
    for (const auto& [k, id] : vocab->as_object()) {
      tokens[static_cast<size_t>(id.as_int64())] = std::string(k);
    }
    std::string unk = GetString(*o, "unk_token").value_or("[UNK]");
    auto* unk_id = vocab->as_object().if_contains(unk);
    if (!unk_id)
      return InvalidArgument("tokenizer.json: WordPiece unk_token '" + unk +
                             "' is not in the vocab");
    size_t max_chars = 100;
    if (auto* m = o->if_contains("max_input_chars_per_word"); m && m->is_int64())
      max_chars = static_cast<size_t>(m->as_int64());
    return MakeWordPiece(std::move(tokens), static_cast<int32_t>(unk_id->as_int64()),
                         GetString(*o, "continuing_subword_prefix").value_or("##"), max_chars);
  }
  if (type == "Unigram") {
    auto* vocab = o->if_contains("vocab");
    if (!vocab || !vocab->is_array())
      return InvalidArgument("tokenizer.json: Unigram vocab must be a list");
    std::vector<std::string> pieces;
    std::vector<double> scores;
    for (const auto& e : vocab->as_array()) {
      const auto* pair = e.if_array();
      if (!pair || pair->size() != 2 || !(*pair)[0].is_string() || !(*pair)[1].is_number()) {
        return InvalidArgument("tokenizer.json: Unigram vocab entries must be [piece, score]");
      }
      pieces.emplace_back((*pair)[0].as_string());
      scores.push_back((*pair)[1].to_number<double>());
    }
    std::optional<int32_t> unk;
    if (auto* u = o->if_contains("unk_id"); u && u->is_int64()) {
      if (u->as_int64() < 0 || static_cast<size_t>(u->as_int64()) >= pieces.size()) {
        return InvalidArgument("tokenizer.json: Unigram unk_id out of range");
      }
      unk = static_cast<int32_t>(u->as_int64());
    }
    return std::unique_ptr<Model>(std::make_unique<Unigram>(
        std::move(pieces), std::move(scores), unk, GetBool(*o, "byte_fallback", false)));
  }
  return Unsupported("model", type);
}

Result<std::unique_ptr<PostProcessor>> ParsePostProcessor(const json::value& v,
                                                          const Model& model) {
  if (v.is_null()) return std::unique_ptr<PostProcessor>();
  const auto* o = AsObject(v);
  if (!o) return InvalidArgument("tokenizer.json: post_processor must be an object");
  std::string type = TypeOf(*o);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto token_id = [&](std::string_view key) -> Result<int32_t> {
      auto* t = o->if_contains(key);
      if (!t || !t->is_array() || t->as_array().size() != 2 || !t->as_array()[1].is_int64()) {
        return InvalidArgument("tokenizer.json: " + type + "." + std::string(key) +
                               " must be [token, id]");
      }
      return ParseTokenId(t->as_array()[1], type + "." + std::string(key));
    };
    ASSIGN_OR_RETURN(int32_t cls, token_id("cls"));
    ASSIGN_OR_RETURN(int32_t sep, token_id("sep"));
    return std::unique_ptr<PostProcessor>(
        std::make_unique<BertProcessing>(cls, sep, type == "RobertaProcessing"));
  }
  if (type == "TemplateProcessing") {
    auto* specials = o->if_contains("special_tokens");
    auto parse = [&](std::string_view key) -> Result<std::vector<TemplatePiece>> {
      std::vector<TemplatePiece> out;
      auto* list = o->if_contains(key);
      if (!list || !list->is_array())
        return InvalidArgument("tokenizer.json: TemplateProcessing." + std::string(key) +
                               " must be a list");
      for (const auto& item : list->as_array()) {
        const auto* io = item.if_object();
        if (!io || io->size() != 1)
          return InvalidArgument("tokenizer.json: bad TemplateProcessing piece");
        const auto& [kind, body] = *io->begin();
        const auto* bo = body.if_object();
        if (!bo) return InvalidArgument("tokenizer.json: bad TemplateProcessing piece");
        TemplatePiece p{};
        if (const auto* tid = bo->if_contains("type_id"); tid && !tid->is_null()) {
          ASSIGN_OR_RETURN(p.type_id, ParseTokenId(*tid, "TemplateProcessing type_id"));
        }
        std::string id = GetString(*bo, "id").value_or("");
        if (kind == "Sequence") {
          p.is_sequence = true;
          p.second = id == "B";
        } else if (kind == "SpecialToken") {
          const json::value* st =
              specials && specials->is_object() ? specials->as_object().if_contains(id) : nullptr;
          if (st && st->is_object() && st->as_object().contains("ids")) {
            const auto* ids = st->as_object().at("ids").if_array();
            if (!ids) {
              return InvalidArgument("tokenizer.json: TemplateProcessing special token '" + id +
                                     "': ids must be a list");
            }
            for (const auto& x : *ids) {
              ASSIGN_OR_RETURN(int32_t tid,
                               ParseTokenId(x, "TemplateProcessing special token '" + id + "' id"));
              p.ids.push_back(tid);
            }
          } else if (auto mid = model.TokenToId(id)) {
            p.ids.push_back(*mid);
          } else {
            return InvalidArgument("tokenizer.json: TemplateProcessing special token '" + id +
                                   "' is unknown");
          }
        } else {
          return InvalidArgument("tokenizer.json: unknown TemplateProcessing piece '" +
                                 std::string(kind) + "'");
        }
        out.push_back(std::move(p));
      }
      return out;
    };
    ASSIGN_OR_RETURN(auto single, parse("single"));
    ASSIGN_OR_RETURN(auto pair, parse("pair"));
    return std::unique_ptr<PostProcessor>(
        std::make_unique<TemplateProcessing>(std::move(single), std::move(pair)));
  }
  return Unsupported("post_processor", type);
}

Result<std::unique_ptr<Decoder>> ParseDecoder(const json::value& v) {
  if (v.is_null()) return std::unique_ptr<Decoder>();
  const auto* o = AsObject(v);
  if (!o) return InvalidArgument("tokenizer.json: decoder must be an object");
  std::string type = TypeOf(*o);
  if (type == "WordPiece") {
    return MakeWordPieceDecoder(GetString(*o, "prefix").value_or("##"),
                                GetBool(*o, "cleanup", true));
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(char32_t r, SingleChar(GetString(*o, "replacement").value_or("\xE2\x96\x81"),
                                            "Metaspace.replacement"));
    bool prepend = GetBool(*o, "add_prefix_space", true);
    if (auto s = GetString(*o, "prepend_scheme")) prepend = *s != "never";
    return std::unique_ptr<Decoder>(std::make_unique<MetaspaceDecoder>(r, prepend));
  }
  if (type == "ByteFallback")
    return std::unique_ptr<Decoder>(std::make_unique<ByteFallbackDecoder>());
  if (type == "Fuse") return std::unique_ptr<Decoder>(std::make_unique<FuseDecoder>());
  if (type == "Sequence") {
    auto* list = o->if_contains("decoders");
    if (!list || !list->is_array())
      return InvalidArgument("tokenizer.json: Sequence needs decoders");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& item : list->as_array()) {
      ASSIGN_OR_RETURN(auto d, ParseDecoder(item));
      if (d) parts.push_back(std::move(d));
    }
    return std::unique_ptr<Decoder>(std::make_unique<SequenceDecoder>(std::move(parts)));
  }
  return Unsupported("decoder", type);
}

}  // namespace atrium::infer
