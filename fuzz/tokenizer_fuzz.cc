// libFuzzer target: the tokenizer must encode any byte string (invalid UTF-8 included) without
// crashing, with consistent encodings: every id in the vocabulary, offsets inside the input.
// Uses the tokenizer.json named by $ATRIUM_TOKENIZER_JSON (e.g. the MiniLM one in
// ../shared/data/minilm-tokenizer) or, when unset, a small embedded BERT vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "atrium/infer/tokenizer.h"

namespace {

constexpr std::string_view kEmbeddedVocab =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n,\n.\n?"
    "\na\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\n"
    "q\nr\ns\nt\nu\nv\nw\nx\ny\nz\n##a\n##b\n##c\n##d\n##e\n##f\n##g\n##h\n##i\n##j\n##k\n##l\n"
    "##m\n##n\n##o\n##p\n##q\n##r\n##s\n##t\n##u\n##v\n##w\n##x\n##y\n##z\nthe\nof\nand\nto\nin\n"
    "is\nman\nwoman\nplaying\n##ing\n##ed\n##er\n中\n文\n日\n本\n";

const atrium::infer::Tokenizer& Load() {
  static const std::unique_ptr<atrium::infer::Tokenizer> tokenizer = [] {
    const char* path = std::getenv("ATRIUM_TOKENIZER_JSON");
    auto t = path ? atrium::infer::Tokenizer::FromFile(path)
                  : atrium::infer::Tokenizer::FromVocab(kEmbeddedVocab);
    if (!t.ok()) {
      std::fprintf(stderr, "tokenizer_fuzz: %s\n", t.status().ToString().c_str());
      std::abort();
    }
    return std::move(t).value();
  }();
  return *tokenizer;
}

void Check(const atrium::infer::Encoding& e, size_t limit, const atrium::infer::Tokenizer& t) {
  size_t n = e.ids.size();
  if (e.type_ids.size() != n || e.attention_mask.size() != n || e.offsets.size() != n ||
      e.special_tokens_mask.size() != n) {
    std::abort();
  }
  for (size_t i = 0; i < n; ++i) {
    if (e.ids[i] < 0 || static_cast<size_t>(e.ids[i]) >= t.VocabSize()) std::abort();
    if (e.offsets[i].first > e.offsets[i].second || e.offsets[i].second > limit) std::abort();
  }
  for (const auto& o : e.overflowing) Check(o, limit, t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& tokenizer = Load();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = tokenizer.Encode(text);
  Check(e, size, tokenizer);
  auto truncated = tokenizer.Encode(text, true, 8);
  if (truncated.ids.size() > 8) std::abort();
  Check(truncated, size, tokenizer);
  size_t half = size / 2;
  Check(tokenizer.EncodePair(text.substr(0, half), text.substr(half), true, 16), size, tokenizer);
  (void)tokenizer.Decode(e.ids);
  return 0;
}
