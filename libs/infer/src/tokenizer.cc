#include "atrium/infer/tokenizer.h"

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "tokenizer_pipeline.h"
#include "tokenizer_unicode.h"

namespace atrium::infer {
namespace json = boost::json;

namespace {

// A piece of the raw input: an added token, or text for the normalizer and model.
struct Segment {
  uint32_t begin;
  uint32_t end;
  int32_t added_id;  // -1: ordinary text
};

bool IsAsciiWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c >= 0x80;
}

bool IsSpaceByte(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Splits `text` around the added tokens, leftmost-longest, as tokenizers' AddedVocabulary does.
void SplitAddedTokens(const Tokenizer::Pipeline& p, std::string_view text,
                      std::vector<Segment>& out) {
  out.clear();
  uint32_t n = static_cast<uint32_t>(text.size());
  if (!p.has_raw_added) {
    out.push_back({0, n, -1});
    return;
  }
  uint32_t pending = 0;
  uint32_t i = 0;
  while (i < n) {
    const AddedToken* best = nullptr;
    for (uint32_t index : p.raw_added_by_first_byte[static_cast<unsigned char>(text[i])]) {
      const AddedToken& t = p.added_tokens[index];
      if (best && best->content.size() >= t.content.size()) continue;
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        uint32_t e = i + static_cast<uint32_t>(t.content.size());
        if ((i > 0 && IsAsciiWordByte(static_cast<unsigned char>(text[i - 1]))) ||
            (e < n && IsAsciiWordByte(static_cast<unsigned char>(text[e])))) {
          continue;
        }
      }
      best = &t;
    }
    if (!best) {
      ++i;
      continue;
    }
    uint32_t b = i;
    uint32_t e = i + static_cast<uint32_t>(best->content.size());
    if (best->lstrip) {
      while (b > pending && IsSpaceByte(static_cast<unsigned char>(text[b - 1]))) --b;
    }
    if (best->rstrip) {
      while (e < n && IsSpaceByte(static_cast<unsigned char>(text[e]))) ++e;
    }
    if (pending < b) out.push_back({pending, b, -1});
    out.push_back({b, e, best->id});
    pending = e;
    i = e;
  }
  if (pending < n) out.push_back({pending, n, -1});
}

void PushToken(Encoding& e, int32_t id, uint32_t b, uint32_t end) {
  e.ids.push_back(id);
  e.type_ids.push_back(0);
  e.attention_mask.push_back(1);
  e.special_tokens_mask.push_back(0);
  e.offsets.push_back({b, end});
}

// Keeps tokens [b, e) of `src` in `dst`.
void Slice(const Encoding& src, size_t b, size_t e, Encoding& dst) {
  dst.ids.assign(src.ids.begin() + b, src.ids.begin() + e);
  dst.type_ids.assign(src.type_ids.begin() + b, src.type_ids.begin() + e);
  dst.attention_mask.assign(src.attention_mask.begin() + b, src.attention_mask.begin() + e);
  dst.special_tokens_mask.assign(src.special_tokens_mask.begin() + b,
                                 src.special_tokens_mask.begin() + e);
  dst.offsets.assign(src.offsets.begin() + b, src.offsets.begin() + e);
}

// Encoding::truncate of tokenizers: keeps `max_len` tokens and moves the rest into overflowing
// windows of `max_len` tokens that overlap by `stride`.
void Truncate(Encoding& e, size_t max_len, size_t stride, TruncationDirection dir) {
  size_t len = e.size();
  if (len <= max_len) return;
  if (max_len == 0) {
    Encoding all = std::move(e);
    e = Encoding();
    e.overflowing.push_back(std::move(all));
    return;
  }
  if (stride >= max_len) stride = max_len - 1;
  size_t step = max_len - stride;
  std::vector<std::pair<size_t, size_t>> ranges;
  if (dir == TruncationDirection::kRight) {
    for (size_t start = 0; start < len; start += step) {
      size_t stop = std::min(start + max_len, len);
      ranges.push_back({start, stop});
      if (stop == len) break;
    }
  } else {
    for (size_t stop = len; stop > 0;) {
      size_t start = stop > max_len ? stop - max_len : 0;
      ranges.push_back({start, stop});
      if (start == 0) break;
      stop = stop > step ? stop - step : 0;
    }
  }
  Encoding src = std::move(e);
  e = Encoding();
  Slice(src, ranges[0].first, ranges[0].second, e);
  for (size_t k = 1; k < ranges.size(); ++k) {
    Encoding o;
    Slice(src, ranges[k].first, ranges[k].second, o);
    e.overflowing.push_back(std::move(o));
  }
}

Status ParseTruncation(const json::value* v, TruncationParams& t) {
  if (!v || v->is_null()) return Status::Ok();
  const auto* o = v->if_object();
  if (!o) return InvalidArgument("tokenizer.json: truncation must be an object");
  if (auto* m = o->if_contains("max_length"); m && m->is_int64() && m->as_int64() >= 0) {
    t.max_length = static_cast<size_t>(m->as_int64());
  }
  if (auto* s = o->if_contains("stride"); s && s->is_int64() && s->as_int64() >= 0) {
    t.stride = static_cast<size_t>(s->as_int64());
  }
  if (auto* s = o->if_contains("strategy"); s && s->is_string()) {
    std::string_view v2 = s->as_string();
    if (v2 == "LongestFirst")
      t.strategy = TruncationStrategy::kLongestFirst;
    else if (v2 == "OnlyFirst")
      t.strategy = TruncationStrategy::kOnlyFirst;
    else if (v2 == "OnlySecond")
      t.strategy = TruncationStrategy::kOnlySecond;
    else
      return InvalidArgument("tokenizer.json: unknown truncation strategy '" + std::string(v2) +
                             "'");
  }
  if (auto* d = o->if_contains("direction"); d && d->is_string()) {
    t.direction =
        d->as_string() == "Left" ? TruncationDirection::kLeft : TruncationDirection::kRight;
  }
  return Status::Ok();
}

void Pad(Encoding& e, size_t len, const PaddingParams& p) {
  size_t n = len > e.size() ? len - e.size() : 0;
  if (n == 0) return;
  auto grow = [&](auto& vec, auto value) {
    if (p.left) {
      vec.insert(vec.begin(), n, value);
    } else {
      vec.insert(vec.end(), n, value);
    }
  };
  grow(e.ids, p.pad_id);
  grow(e.type_ids, p.pad_type_id);
  grow(e.attention_mask, uint8_t{0});
  grow(e.special_tokens_mask, uint8_t{1});
  grow(e.offsets, std::pair<uint32_t, uint32_t>{0, 0});
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Pipeline> pipeline) : pipeline_(std::move(pipeline)) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view text) {
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return InvalidArgument("tokenizer.json: " + ec.message());
  const auto* o = root.if_object();
  if (!o) return InvalidArgument("tokenizer.json: top level must be an object");
  auto p = std::make_unique<Pipeline>();
  const json::value null_value;
  auto field = [&](std::string_view k) -> const json::value& {
    auto* v = o->if_contains(k);
    return v ? *v : null_value;
  };
  if (!o->contains("model")) return InvalidArgument("tokenizer.json: no model");
  ASSIGN_OR_RETURN(p->model, ParseModel(field("model")));
  ASSIGN_OR_RETURN(p->normalizer, ParseNormalizer(field("normalizer")));
  ASSIGN_OR_RETURN(p->pre_tokenizer, ParsePreTokenizer(field("pre_tokenizer")));
  ASSIGN_OR_RETURN(p->post_processor, ParsePostProcessor(field("post_processor"), *p->model));
  ASSIGN_OR_RETURN(p->decoder, ParseDecoder(field("decoder")));
  RETURN_IF_ERROR(ParseTruncation(o->if_contains("truncation"), p->truncation));
  if (const auto* pad = field("padding").if_object()) {
    if (auto* id = pad->if_contains("pad_id"); id && !id->is_null()) {
      ASSIGN_OR_RETURN(p->padding.pad_id, ParseTokenId(*id, "padding.pad_id"));
    }
    if (auto* id = pad->if_contains("pad_type_id"); id && !id->is_null()) {
      ASSIGN_OR_RETURN(p->padding.pad_type_id, ParseTokenId(*id, "padding.pad_type_id"));
    }
    if (auto* d = pad->if_contains("direction"); d && d->is_string()) {
      p->padding.left = d->as_string() == "Left";
    }
  }
  if (const auto* added = field("added_tokens").if_array()) {
    for (const auto& item : *added) {
      const auto* a = item.if_object();
      if (!a || !a->contains("id") || !a->contains("content") || !a->at("id").is_int64() ||
          !a->at("content").is_string()) {
        return InvalidArgument("tokenizer.json: added_tokens entries need id and content");
      }
      AddedToken t;
      ASSIGN_OR_RETURN(t.id, ParseTokenId(a->at("id"), "added_tokens id"));
      t.content = std::string(a->at("content").as_string());
      auto flag = [&](std::string_view k) {
        auto* v = a->if_contains(k);
        return v && v->is_bool() && v->as_bool();
      };
      t.single_word = flag("single_word");
      t.lstrip = flag("lstrip");
      t.rstrip = flag("rstrip");
      t.special = flag("special");
      auto* normalized = a->if_contains("normalized");
      t.normalized = normalized && normalized->is_bool() ? normalized->as_bool() : !t.special;
      if (t.normalized) {
        NormalizedText content, scratch;
        AppendUtf8(t.content, 0, content);
        if (p->normalizer) p->normalizer->Normalize(content, scratch);
        t.normalized_content = content.chars;
        if (t.normalized_content.empty()) t.normalized = false;
        p->has_normalized_added = p->has_normalized_added || t.normalized;
      }
      if (!t.normalized && !t.content.empty()) {
        auto first = static_cast<unsigned char>(t.content[0]);
        p->raw_added_by_first_byte[first].push_back(static_cast<uint32_t>(p->added_tokens.size()));
        p->has_raw_added = true;
      }
      p->added_by_content[t.content] = t.id;
      p->added_by_id[t.id] = p->added_tokens.size();
      p->added_tokens.push_back(std::move(t));
    }
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(p)));
}

static Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto t = FromJson(text);
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(std::string_view vocab_txt,
                                                        bool lowercase) {
  std::vector<std::string> tokens;
  size_t pos = 0;
  while (pos < vocab_txt.size()) {
    size_t nl = vocab_txt.find('\n', pos);
    if (nl == std::string_view::npos) nl = vocab_txt.size();
    std::string_view line = vocab_txt.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    tokens.emplace_back(line);
    pos = nl + 1;
  }
  auto find = [&](std::string_view t) -> int32_t {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == t) return static_cast<int32_t>(i);
    }
    return -1;
  };
  int32_t unk = find("[UNK]"), cls = find("[CLS]"), sep = find("[SEP]");
  if (unk < 0 || cls < 0 || sep < 0) {
    return InvalidArgument("vocab.txt: [UNK], [CLS] and [SEP] must all be present");
  }
  auto p = std::make_unique<Pipeline>();
  for (std::string_view special : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    int32_t id = find(special);
    if (id < 0) continue;
    AddedToken t{id, std::string(special)};
    t.special = true;
    p->added_by_content[t.content] = id;
    p->added_by_id[id] = p->added_tokens.size();
    p->raw_added_by_first_byte['['].push_back(static_cast<uint32_t>(p->added_tokens.size()));
    p->has_raw_added = true;
    p->added_tokens.push_back(std::move(t));
  }
  BertNormalizerOptions opt;
  opt.lowercase = lowercase;
  p->normalizer = MakeBertNormalizer(opt);
  p->pre_tokenizer = MakeBertPreTokenizer();
  p->model = MakeWordPiece(std::move(tokens), unk, "##", 100);
  p->post_processor = MakeBertProcessing(cls, sep);
  p->decoder = MakeWordPieceDecoder("##", true);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(p)));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocabFile(const std::string& path,
                                                            bool lowercase) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return FromVocab(text, lowercase);
}

namespace {

void SliceText(const NormalizedText& text, uint32_t b, uint32_t e, NormalizedText& out) {
  out.chars.assign(text.chars, b, e - b);
  out.begin.assign(text.begin.begin() + b, text.begin.begin() + e);
  out.end.assign(text.end.begin() + b, text.end.begin() + e);
}

// Pre-tokenizes normalized text and appends the model's tokens.
void TokenizeNormalized(const Tokenizer::Pipeline& p, NormalizedText& norm,
                        std::vector<Split>& splits, std::vector<ModelToken>& tokens,
                        std::string& word, Encoding& out) {
  splits.assign(1, Split{0, static_cast<uint32_t>(norm.size())});
  if (p.pre_tokenizer) p.pre_tokenizer->PreTokenize(norm, splits);
  for (Split s : splits) {
    if (s.begin >= s.end) continue;
    tokens.clear();
    p.model->Tokenize(norm, s, word, tokens);
    for (const ModelToken& t : tokens) {
      PushToken(out, t.id, norm.begin[t.begin], norm.end[t.end - 1]);
    }
  }
}

// Raw text → tokens (no special tokens, no truncation).
void EncodeRaw(const Tokenizer::Pipeline& p, std::string_view text, Encoding& out) {
  std::vector<Segment> segments;
  SplitAddedTokens(p, text, segments);
  NormalizedText norm, scratch, sub;
  std::vector<Split> splits;
  std::vector<ModelToken> tokens;
  std::string word;
  for (const Segment& seg : segments) {
    if (seg.added_id >= 0) {
      PushToken(out, seg.added_id, seg.begin, seg.end);
      continue;
    }
    norm.Clear();
    AppendUtf8(text.substr(seg.begin, seg.end - seg.begin), seg.begin, norm);
    if (p.normalizer) p.normalizer->Normalize(norm, scratch);
    if (norm.size() == 0) continue;
    if (!p.has_normalized_added) {
      TokenizeNormalized(p, norm, splits, tokens, word, out);
      continue;
    }
    // Added tokens with `normalized` are matched in the normalized text, leftmost-longest.
    uint32_t n = static_cast<uint32_t>(norm.size());
    uint32_t pending = 0;
    for (uint32_t i = 0; i < n;) {
      const AddedToken* best = nullptr;
      for (const auto& t : p.added_tokens) {
        const auto& c = t.normalized_content;
        if (!t.normalized || c[0] != norm.chars[i] || c.size() > n - i) continue;
        if (best && best->normalized_content.size() >= c.size()) continue;
        if (norm.chars.compare(i, c.size(), c) == 0) best = &t;
      }
      if (!best) {
        ++i;
        continue;
      }
      uint32_t e = i + static_cast<uint32_t>(best->normalized_content.size());
      if (pending < i) {
        SliceText(norm, pending, i, sub);
        TokenizeNormalized(p, sub, splits, tokens, word, out);
      }
      PushToken(out, best->id, norm.begin[i], norm.end[e - 1]);
      pending = i = e;
    }
    if (pending == 0) {
      TokenizeNormalized(p, norm, splits, tokens, word, out);
    } else if (pending < n) {
      SliceText(norm, pending, n, sub);
      TokenizeNormalized(p, sub, splits, tokens, word, out);
    }
  }
}

Encoding PostProcess(const Tokenizer::Pipeline& p, const Encoding& a, const Encoding* b,
                     bool add_special_tokens) {
  Encoding out;
  if (add_special_tokens && p.post_processor) {
    p.post_processor->Process(a, b, out);
  } else {
    out.ids = a.ids;
    out.type_ids = a.type_ids;
    out.attention_mask = a.attention_mask;
    out.special_tokens_mask = a.special_tokens_mask;
    out.offsets = a.offsets;
    if (b) {
      out.ids.insert(out.ids.end(), b->ids.begin(), b->ids.end());
      out.type_ids.insert(out.type_ids.end(), b->size(), 1);
      out.attention_mask.insert(out.attention_mask.end(), b->attention_mask.begin(),
                                b->attention_mask.end());
      out.special_tokens_mask.insert(out.special_tokens_mask.end(), b->special_tokens_mask.begin(),
                                     b->special_tokens_mask.end());
      out.offsets.insert(out.offsets.end(), b->offsets.begin(), b->offsets.end());
    }
  }
  return out;
}

Encoding EncodeImpl(const Tokenizer::Pipeline& p, std::string_view first,
                    const std::string_view* second, bool add_special_tokens, size_t max_length) {
  Encoding a, b;
  EncodeRaw(p, first, a);
  if (second) EncodeRaw(p, *second, b);
  TruncationParams t = p.truncation;
  if (max_length > 0) t.max_length = max_length;
  if (t.max_length > 0) {
    size_t added = add_special_tokens && p.post_processor
                       ? p.post_processor->AddedTokens(second != nullptr)
                       : 0;
    size_t budget = t.max_length > added ? t.max_length - added : 0;
    if (!second) {
      if (t.strategy != TruncationStrategy::kOnlySecond) {
        Truncate(a, budget, t.stride, t.direction);
      }
    } else if (a.size() + b.size() > budget) {
      switch (t.strategy) {
        case TruncationStrategy::kLongestFirst: {
          size_t n1 = a.size(), n2 = b.size();
          bool swap = n1 > n2;
          if (swap) std::swap(n1, n2);
          if (n1 > budget) {
            n2 = n1;
          } else {
            n2 = std::max(n1, budget - n1);
          }
          if (n1 + n2 > budget) {
            n1 = budget / 2;
            n2 = n1 + budget % 2;
          }
          if (swap) std::swap(n1, n2);
          Truncate(a, n1, t.stride, t.direction);
          Truncate(b, n2, t.stride, t.direction);
          break;
        }
        case TruncationStrategy::kOnlyFirst:
          if (b.size() < budget) Truncate(a, budget - b.size(), t.stride, t.direction);
          break;
        case TruncationStrategy::kOnlySecond:
          if (a.size() < budget) Truncate(b, budget - a.size(), t.stride, t.direction);
          break;
      }
    }
  }
  Encoding out = PostProcess(p, a, second ? &b : nullptr, add_special_tokens);
  for (const Encoding& o : a.overflowing) {
    out.overflowing.push_back(PostProcess(p, o, second ? &b : nullptr, add_special_tokens));
  }
  for (const Encoding& o : b.overflowing) {
    out.overflowing.push_back(PostProcess(p, a, &o, add_special_tokens));
  }
  return out;
}

}  // namespace

Encoding Tokenizer::Encode(std::string_view text, bool add_special_tokens,
                           size_t max_length) const {
  return EncodeImpl(*pipeline_, text, nullptr, add_special_tokens, max_length);
}

Encoding Tokenizer::EncodePair(std::string_view first, std::string_view second,
                               bool add_special_tokens, size_t max_length) const {
  return EncodeImpl(*pipeline_, first, &second, add_special_tokens, max_length);
}

std::vector<Encoding> Tokenizer::EncodeBatch(std::span<const std::string_view> texts,
                                             bool add_special_tokens, size_t max_length,
                                             bool pad) const {
  std::vector<Encoding> out;
  out.reserve(texts.size());
  size_t longest = 0;
  for (std::string_view t : texts) {
    out.push_back(Encode(t, add_special_tokens, max_length));
    longest = std::max(longest, out.back().size());
  }
  if (pad) {
    for (Encoding& e : out) Pad(e, longest, pipeline_->padding);
  }
  return out;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    auto added = pipeline_->added_by_id.find(id);
    if (added != pipeline_->added_by_id.end()) {
      const AddedToken& t = pipeline_->added_tokens[added->second];
      if (skip_special_tokens && t.special) continue;
      tokens.push_back(t.content);
      continue;
    }
    if (auto t = pipeline_->model->IdToToken(id)) tokens.emplace_back(*t);
  }
  if (pipeline_->decoder) {
    pipeline_->decoder->DecodeChain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) out.push_back(' ');
    out += tokens[i];
  }
  return out;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  auto it = pipeline_->added_by_content.find(std::string(token));
  if (it != pipeline_->added_by_content.end()) return it->second;
  return pipeline_->model->TokenToId(token);
}

std::optional<std::string_view> Tokenizer::IdToToken(int32_t id) const {
  auto it = pipeline_->added_by_id.find(id);
  if (it != pipeline_->added_by_id.end()) return pipeline_->added_tokens[it->second].content;
  return pipeline_->model->IdToToken(id);
}

size_t Tokenizer::VocabSize() const {
  size_t n = pipeline_->model->VocabSize();
  for (const auto& t : pipeline_->added_tokens) {
    if (!pipeline_->model->TokenToId(t.content)) ++n;
  }
  return n;
}

const TruncationParams& Tokenizer::truncation() const { return pipeline_->truncation; }

size_t Tokenizer::NumSpecialTokensToAdd(bool pair) const {
  return pipeline_->post_processor ? pipeline_->post_processor->AddedTokens(pair) : 0;
}

}  // namespace atrium::infer
