// libFuzzer target: the tokenizer.json loader (Tokenizer::FromJson) must accept or reject any
// byte string without crashing or throwing, and a tokenizer it accepts must encode, pair-encode,
// pad, truncate and decode a fixed set of texts with consistent encodings: every array the same
// length, every id non-negative, offsets inside the text. (tokenizer_fuzz fuzzes the text side
// with a fixed tokenizer; this one fuzzes the file.) Seeds: fuzz/seeds/tokenizer_json_fuzz, small
// tokenizer.json files of each supported model, normalizer, pre-tokenizer and post-processor.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "atrium/infer/tokenizer.h"

namespace {

using atrium::infer::Encoding;

// Texts every accepted tokenizer must handle: ASCII, punctuation, added-token look-alikes,
// accents, CJK, emoji, Metaspace's marker, control characters, invalid UTF-8 and nothing at all.
constexpr std::string_view kTexts[] = {
    "Hello, World! the cat sat on the mat.",
    "[CLS] x [SEP] <s> </s> [UNK] [MASK]",
    "Caf\xC3\xA9 na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xE2\x96\x81tok",
    "\t\r\n\x01 a\xCC\x81 \xEF\xBC\xA1 playing##ing",
    "\xff\xfe\xC3 broken \xE2\x82",
    "",
};

void Check(const Encoding& e, size_t text_size) {
  size_t n = e.ids.size();
  if (e.type_ids.size() != n || e.attention_mask.size() != n || e.offsets.size() != n ||
      e.special_tokens_mask.size() != n) {
    std::abort();
  }
  for (size_t i = 0; i < n; ++i) {
    if (e.ids[i] < 0) std::abort();
    if (e.offsets[i].first > e.offsets[i].second || e.offsets[i].second > text_size) std::abort();
  }
  for (const Encoding& o : e.overflowing) Check(o, text_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto loaded = atrium::infer::Tokenizer::FromJson(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!loaded.ok()) {
    if (loaded.status().message().empty()) std::abort();  // a refusal must say why
    return 0;
  }
  const atrium::infer::Tokenizer& t = **loaded;
  (void)t.VocabSize();
  (void)t.NumSpecialTokensToAdd(false);
  (void)t.NumSpecialTokensToAdd(true);
  for (std::string_view text : kTexts) {
    Encoding e = t.Encode(text);
    Check(e, text.size());
    Encoding raw = t.Encode(text, /*add_special_tokens=*/false, /*max_length=*/0);
    Check(raw, text.size());
    Encoding cut = t.Encode(text, true, 5);
    Check(cut, text.size());
    Check(t.EncodePair(text, kTexts[0], true, 9), std::max(text.size(), kTexts[0].size()));
    for (int32_t id : e.ids) (void)t.IdToToken(id);
    (void)t.Decode(e.ids, true);
    (void)t.Decode(e.ids, false);
  }
  std::string_view batch[] = {kTexts[0], kTexts[5], kTexts[2]};
  for (const Encoding& e : t.EncodeBatch(batch, true, 0, /*pad=*/true)) {
    if (e.ids.size() != e.attention_mask.size()) std::abort();
  }
  return 0;
}
