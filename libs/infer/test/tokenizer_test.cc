// Component behaviour of the tokenizer, each on a small tokenizer.json written here. Parity with
// the reference implementation on real data is in tokenizer_parity_test.cc.
#include "atrium/infer/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace atrium::infer {
namespace {

// A WordPiece tokenizer over `vocab` (ids in order) with the given JSON parts ("null" to omit).
std::string WordPieceJson(const std::vector<std::string>& vocab, std::string normalizer,
                          std::string pre_tokenizer, std::string extra = "", int max_chars = 100) {
  std::string v;
  for (size_t i = 0; i < vocab.size(); ++i) {
    v += (i ? "," : "") + ("\"" + vocab[i] + "\":" + std::to_string(i));
  }
  return R"({"added_tokens":[{"id":0,"content":"[UNK]","special":true},)"
         R"({"id":1,"content":"[CLS]","special":true},{"id":2,"content":"[SEP]","special":true},)"
         R"({"id":3,"content":"[MASK]","special":true,"lstrip":true}],)"
         R"("normalizer":)" +
         normalizer + R"(,"pre_tokenizer":)" + pre_tokenizer + extra +
         R"(,"post_processor":null,"decoder":{"type":"WordPiece","prefix":"##","cleanup":true},)"
         R"("model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",)"
         R"("max_input_chars_per_word":)" +
         std::to_string(max_chars) + R"(,"vocab":{)" + v + "}}}";
}

const std::vector<std::string> kVocab = {
    "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un",   "##aff",     "##able", "a",   "##ff", "##a",
    "hello", "world", "##s",   "cafe",   "café", "e\xCC\x81", "fi",     "中",  "文",   ",",
    "!",     "the",   "cat",   "sat",    "on",   "mat",       "x",      "##x", "y",    "Hello"};

std::unique_ptr<Tokenizer> Load(const std::string& json) {
  auto t = Tokenizer::FromJson(json);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<std::string> Tokens(const Tokenizer& t, std::string_view text, bool special = false) {
  std::vector<std::string> out;
  for (int32_t id : t.Encode(text, special).ids) out.emplace_back(t.IdToToken(id).value_or("?"));
  return out;
}

using V = std::vector<std::string>;
const std::string kBertNorm =
    R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true})";
const std::string kBertPre = R"({"type":"BertPreTokenizer"})";

TEST(WordPiece, GreedyLongestMatchFirst) {
  auto t = Load(WordPieceJson(kVocab, "null", R"({"type":"WhitespaceSplit"})"));
  EXPECT_EQ(Tokens(*t, "unaffable"), (V{"un", "##aff", "##able"}));
  EXPECT_EQ(Tokens(*t, "aff"), (V{"a", "##ff"}));
  EXPECT_EQ(Tokens(*t, "hellos world"), (V{"hello", "##s", "world"}));
}

TEST(WordPiece, WordWithAnUnmatchablePieceBecomesOneUnk) {
  auto t = Load(WordPieceJson(kVocab, "null", R"({"type":"WhitespaceSplit"})"));
  EXPECT_EQ(Tokens(*t, "helloq cat"), (V{"[UNK]", "cat"}));
}

TEST(WordPiece, WordLongerThanMaxInputCharsIsUnk) {
  auto t = Load(WordPieceJson(kVocab, "null", R"({"type":"WhitespaceSplit"})", "", 5));
  EXPECT_EQ(Tokens(*t, "xxxxx xxxxxx"), (V{"x", "##x", "##x", "##x", "##x", "[UNK]"}));
}

TEST(BertNormalizer, LowercasesAndStripsAccentsWhenStripAccentsIsNull) {
  auto t = Load(WordPieceJson(kVocab, kBertNorm, kBertPre));
  EXPECT_EQ(Tokens(*t, "CAFÉ Hello"), (V{"cafe", "hello"}));
}

TEST(BertNormalizer, KeepsAccentsWhenStripAccentsIsFalse) {
  auto norm = R"({"type":"BertNormalizer","strip_accents":false,"lowercase":true})";
  auto t = Load(WordPieceJson(kVocab, norm, kBertPre));
  EXPECT_EQ(Tokens(*t, "CAFÉ"), (V{"café"}));
}

TEST(BertNormalizer, NoLowercaseKeepsCase) {
  auto norm = R"({"type":"BertNormalizer","strip_accents":null,"lowercase":false})";
  auto t = Load(WordPieceJson(kVocab, norm, kBertPre));
  EXPECT_EQ(Tokens(*t, "Hello hello"), (V{"Hello", "hello"}));
}

TEST(BertNormalizer, PadsChineseCharactersAndDropsControlCharacters) {
  auto t = Load(WordPieceJson(kVocab, kBertNorm, kBertPre));
  EXPECT_EQ(Tokens(*t, "hello中文world"), (V{"hello", "中", "文", "world"}));
  EXPECT_EQ(Tokens(*t, "hel\x01lo\xE2\x80\x8B wor\x7Fld"), (V{"hello", "world"}));
  EXPECT_EQ(Tokens(*t, "hello\xC2\xA0world\tcat"), (V{"hello", "world", "cat"}));
}

TEST(Normalizers, NfcComposesAndNfdDecomposes) {
  auto nfc = Load(WordPieceJson(kVocab, R"({"type":"NFC"})", R"({"type":"WhitespaceSplit"})"));
  EXPECT_EQ(Tokens(*nfc, "cafe\xCC\x81"), (V{"café"}));
  auto nfd = Load(WordPieceJson(kVocab, R"({"type":"NFD"})", R"({"type":"WhitespaceSplit"})"));
  EXPECT_EQ(Tokens(*nfd, "é"), (V{"e\xCC\x81"}));
}

TEST(Normalizers, NfkcFoldsCompatibilityCharacters) {
  auto t = Load(WordPieceJson(kVocab, R"({"type":"NFKC"})", R"({"type":"WhitespaceSplit"})"));
  EXPECT_EQ(Tokens(*t, "\xEF\xAC\x81"), (V{"fi"}));  // U+FB01 ligature
}

TEST(Normalizers, SequenceOfNfdStripAccentsLowercase) {
  auto norm =
      R"({"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"},{"type":"Lowercase"}]})";
  auto t = Load(WordPieceJson(kVocab, norm, R"({"type":"WhitespaceSplit"})"));
  EXPECT_EQ(Tokens(*t, "CAFÉ HELLO"), (V{"cafe", "hello"}));
}

TEST(PreTokenizers, WhitespaceSplitsWordsFromPunctuationRuns) {
  auto t = Load(WordPieceJson(kVocab, "null", R"({"type":"Whitespace"})"));
  EXPECT_EQ(Tokens(*t, "hello,world!"), (V{"hello", ",", "world", "!"}));
}

TEST(PreTokenizers, WhitespaceUsesUnicodeWordCharacters) {
  // As the Rust crate's regex \w: letters of any script, marks and digits are word characters.
  auto t = Load(WordPieceJson(kVocab, "null", R"({"type":"Whitespace"})"));
  EXPECT_EQ(Tokens(*t, "café,中文"), (V{"café", ",", "[UNK]"}));
  // "cafe" + U+0301 is one word (marks are word characters); "!!" is one run.
  EXPECT_EQ(Tokens(*t, "cafe\xCC\x81!!"), (V{"[UNK]", "[UNK]"}));
}

TEST(PreTokenizers, PunctuationIsolatesInsideSequence) {
  auto pre =
      R"({"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Punctuation","behavior":"Isolated"}]})";
  auto t = Load(WordPieceJson(kVocab, "null", pre));
  EXPECT_EQ(Tokens(*t, "hello,,world"), (V{"hello", ",", ",", "world"}));
}

TEST(PreTokenizers, PunctuationBehaviors) {
  auto pre = [](const char* behavior) {
    return std::string(
               R"({"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Punctuation","behavior":")") +
           behavior + R"("}]})";
  };
  // Offsets show where each piece was cut: "a,,b" → pieces as byte ranges.
  auto pieces = [&](const char* behavior) {
    auto t = Load(WordPieceJson({"[UNK]", "[CLS]", "[SEP]", "[MASK]"}, "null", pre(behavior)));
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (auto o : t->Encode("a,,b", false).offsets) out.push_back(o);
    return out;
  };
  using O = std::vector<std::pair<uint32_t, uint32_t>>;
  EXPECT_EQ(pieces("Isolated"), (O{{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
  EXPECT_EQ(pieces("Contiguous"), (O{{0, 1}, {1, 3}, {3, 4}}));
  EXPECT_EQ(pieces("Removed"), (O{{0, 1}, {3, 4}}));
  EXPECT_EQ(pieces("MergedWithPrevious"), (O{{0, 2}, {2, 3}, {3, 4}}));
  EXPECT_EQ(pieces("MergedWithNext"), (O{{0, 1}, {1, 2}, {2, 4}}));
}

TEST(AddedTokens, MatchedOnRawTextBeforeNormalization) {
  auto t = Load(WordPieceJson(kVocab, kBertNorm, kBertPre));
  // Lowercasing would turn [MASK] into "[mask]" and split it; it is matched first. lstrip
  // absorbs the space before it.
  EXPECT_EQ(Tokens(*t, "hello [MASK]world"), (V{"hello", "[MASK]", "world"}));
  Encoding e = t->Encode("hello [MASK]world", false);
  EXPECT_EQ(e.offsets[1], (std::pair<uint32_t, uint32_t>{5, 12}));
}

TEST(AddedTokens, NormalizedTokensMatchTheNormalizedText) {
  // "catsat" (id 30) is a non-special added token with normalized = true: the lowercased input
  // "CATSAT" matches it; it is not in the model's vocabulary.
  std::string json = WordPieceJson(kVocab, kBertNorm, kBertPre);
  json.replace(json.find(R"("lstrip":true})"), std::string(R"("lstrip":true})").size(),
               R"("lstrip":true},{"id":30,"content":"CatSat","special":false,"normalized":true})");
  auto t = Load(json);
  EXPECT_EQ(t->Encode("hello CATSAT world", false).ids, (std::vector<int32_t>{10, 30, 11}));
  EXPECT_EQ(t->Encode("hellocatsatworld", false).ids, (std::vector<int32_t>{10, 30, 11}));
  EXPECT_EQ(t->Encode("hello CATSAT world", false).offsets[1],
            (std::pair<uint32_t, uint32_t>{6, 12}));
  EXPECT_EQ(t->TokenToId("CatSat"), 30);
  EXPECT_EQ(t->VocabSize(), kVocab.size() + 1);
}

TEST(Offsets, PointAtTheBytesOfTheOriginalText) {
  auto t = Load(WordPieceJson(kVocab, kBertNorm, kBertPre));
  Encoding e = t->Encode("CAFÉ unaffable", false);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e.offsets[0], (std::pair<uint32_t, uint32_t>{0, 5}));
  EXPECT_EQ(e.offsets[1], (std::pair<uint32_t, uint32_t>{6, 8}));
  EXPECT_EQ(e.offsets[2], (std::pair<uint32_t, uint32_t>{8, 11}));
  EXPECT_EQ(e.offsets[3], (std::pair<uint32_t, uint32_t>{11, 15}));
}

const std::string kTemplate =
    R"(,"post_processor":{"type":"TemplateProcessing",)"
    R"("single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],)"
    R"("pair":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}},)"
    R"({"Sequence":{"id":"B","type_id":1}},{"SpecialToken":{"id":"[SEP]","type_id":1}}],)"
    R"("special_tokens":{"[CLS]":{"id":"[CLS]","ids":[1],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[2],"tokens":["[SEP]"]}}})";

// WordPieceJson with the BERT template instead of no post-processor.
std::string WithTemplate(std::string json, const std::string& post = kTemplate) {
  auto pos = json.find(R"(,"post_processor":null)");
  json.replace(pos, std::string(R"(,"post_processor":null)").size(), post);
  return json;
}

TEST(TemplateProcessing, SingleAndPairSequences) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  Encoding single = t->Encode("hello");
  EXPECT_EQ(single.ids, (std::vector<int32_t>{1, 10, 2}));
  EXPECT_EQ(single.special_tokens_mask, (std::vector<uint8_t>{1, 0, 1}));
  Encoding pair = t->EncodePair("hello world", "the cat");
  EXPECT_EQ(pair.ids, (std::vector<int32_t>{1, 10, 11, 2, 21, 22, 2}));
  EXPECT_EQ(pair.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(pair.attention_mask, (std::vector<uint8_t>(7, 1)));
  EXPECT_EQ(t->NumSpecialTokensToAdd(true), 3u);
  EXPECT_EQ(t->Encode("hello", false).ids, (std::vector<int32_t>{10}));
}

TEST(PostProcessors, BertAndRobertaProcessing) {
  auto bert = Load(WithTemplate(
      WordPieceJson(kVocab, kBertNorm, kBertPre),
      R"(,"post_processor":{"type":"BertProcessing","sep":["[SEP]",2],"cls":["[CLS]",1]})"));
  EXPECT_EQ(bert->EncodePair("hello", "cat").type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  auto roberta = Load(WithTemplate(
      WordPieceJson(kVocab, kBertNorm, kBertPre),
      R"(,"post_processor":{"type":"RobertaProcessing","sep":["[SEP]",2],"cls":["[CLS]",1],"trim_offsets":true,"add_prefix_space":false})"));
  EXPECT_EQ(roberta->EncodePair("hello", "cat").ids, (std::vector<int32_t>{1, 10, 2, 2, 22, 2}));
}

TEST(Truncation, RightWithStrideProducesOverlappingWindows) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  // 8 words: hello world the cat sat on the mat → ids 10 11 21 22 23 24 21 25.
  const char* text = "hello world the cat sat on the mat";
  auto tr = Load(WithTemplate(WordPieceJson(
      kVocab, kBertNorm, kBertPre,
      R"(,"truncation":{"max_length":6,"stride":2,"strategy":"LongestFirst","direction":"Right"})")));
  Encoding e = tr->Encode(text);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 10, 11, 21, 22, 2}));
  ASSERT_EQ(e.overflowing.size(), 2u);
  EXPECT_EQ(e.overflowing[0].ids, (std::vector<int32_t>{1, 21, 22, 23, 24, 2}));
  EXPECT_EQ(e.overflowing[1].ids, (std::vector<int32_t>{1, 23, 24, 21, 25, 2}));
  // The max_length argument overrides the configured length; stride stays.
  EXPECT_EQ(t->Encode(text, true, 4).ids, (std::vector<int32_t>{1, 10, 11, 2}));
}

TEST(Truncation, LeftKeepsTheEnd) {
  auto t = Load(WithTemplate(WordPieceJson(
      kVocab, kBertNorm, kBertPre,
      R"(,"truncation":{"max_length":5,"stride":0,"strategy":"LongestFirst","direction":"Left"})")));
  Encoding e = t->Encode("hello world the cat sat");
  EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 21, 22, 23, 2}));
  ASSERT_EQ(e.overflowing.size(), 1u);
  EXPECT_EQ(e.overflowing[0].ids, (std::vector<int32_t>{1, 10, 11, 2}));
}

TEST(Truncation, LongestFirstTrimsTheLongerOfAPair) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  // Budget 8 - 3 = 5: first has 6 tokens, second 2 → first keeps 3, second keeps 2.
  Encoding e = t->EncodePair("hello world the cat sat on", "the mat", true, 8);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 10, 11, 21, 2, 21, 25, 2}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1}));
}

TEST(Truncation, OnlyFirstLeavesTheSecondAlone) {
  auto t = Load(WithTemplate(WordPieceJson(
      kVocab, kBertNorm, kBertPre,
      R"(,"truncation":{"max_length":7,"stride":0,"strategy":"OnlyFirst","direction":"Right"})")));
  Encoding e = t->EncodePair("hello world the cat", "sat on");
  EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 10, 11, 2, 23, 24, 2}));
}

TEST(EncodeBatch, PadsToTheLongestWhenAsked) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  std::vector<std::string_view> texts = {"hello", "hello world cat"};
  auto plain = t->EncodeBatch(texts);
  EXPECT_EQ(plain[0].size(), 3u);
  auto padded = t->EncodeBatch(texts, true, 0, true);
  EXPECT_EQ(padded[0].ids, (std::vector<int32_t>{1, 10, 2, 0, 0}));
  EXPECT_EQ(padded[0].attention_mask, (std::vector<uint8_t>{1, 1, 1, 0, 0}));
  EXPECT_EQ(padded[1].size(), 5u);
}

TEST(Decode, JoinsWordPiecesAndSkipsSpecialTokens) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  Encoding e = t->Encode("unaffable hello, world!");
  EXPECT_EQ(t->Decode(e.ids), "unaffable hello, world!");
  EXPECT_EQ(t->Decode(e.ids, false), "[CLS] unaffable hello, world! [SEP]");
}

TEST(Vocabulary, TokenToIdAndBack) {
  auto t = Load(WordPieceJson(kVocab, kBertNorm, kBertPre));
  EXPECT_EQ(t->TokenToId("hello"), 10);
  EXPECT_EQ(t->TokenToId("[MASK]"), 3);
  EXPECT_EQ(t->TokenToId("nope"), std::nullopt);
  EXPECT_EQ(t->IdToToken(11), "world");
  EXPECT_EQ(t->IdToToken(9999), std::nullopt);
  EXPECT_EQ(t->VocabSize(), kVocab.size());
}

TEST(Loading, UnsupportedComponentTypeIsNamed) {
  auto json =
      WordPieceJson(kVocab, R"({"type":"Precompiled","precompiled_charsmap":""})", kBertPre);
  auto t = Tokenizer::FromJson(json);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("Precompiled"), std::string::npos);
  auto bpe = Tokenizer::FromJson(R"({"model":{"type":"BPE","vocab":{},"merges":[]}})");
  ASSERT_FALSE(bpe.ok());
  EXPECT_NE(bpe.status().message().find("BPE"), std::string::npos);
}

TEST(Loading, MalformedJsonIsInvalidArgument) {
  EXPECT_EQ(Tokenizer::FromJson("{").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::FromJson("[]").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
            StatusCode::kNotFound);
}

TEST(Loading, TokenIdsOutsideInt32AreRefusedNamingTheField) {
  const std::string model =
      R"("model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"a":1}})";
  struct Case {
    std::string json;
    std::string field;
  };
  std::vector<Case> cases = {
      {R"({"added_tokens":[{"id":-1,"content":"[X]"}],)" + model + "}", "added_tokens id"},
      {R"({"added_tokens":[{"id":4294967296,"content":"[X]"}],)" + model + "}", "added_tokens id"},
      {R"({"padding":{"pad_id":-5},)" + model + "}", "padding.pad_id"},
      {R"({"padding":{"pad_type_id":"0"},)" + model + "}", "padding.pad_type_id"},
      {R"({"post_processor":{"type":"BertProcessing","cls":["[CLS]",-2],"sep":["[SEP]",1]},)" +
           model + "}",
       "BertProcessing.cls"},
      {R"({"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"C"}}],)"
       R"("pair":[],"special_tokens":{"C":{"ids":"101"}}},)" +
           model + "}",
       "ids must be a list"},
      {R"({"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"C"}}],)"
       R"("pair":[],"special_tokens":{"C":{"ids":[1.5]}}},)" +
           model + "}",
       "special token 'C' id"},
      {R"({"post_processor":{"type":"TemplateProcessing","single":[{"Sequence":{"id":"A",)"
       R"("type_id":-1}}],"pair":[]},)" +
           model + "}",
       "type_id"},
  };
  for (const Case& c : cases) {
    auto t = Tokenizer::FromJson(c.json);
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.field), std::string::npos) << t.status().ToString();
  }
  // The same shapes with valid ids load.
  EXPECT_TRUE(Tokenizer::FromJson(
                  R"({"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":)"
                  R"({"id":"C"}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],)"
                  R"("special_tokens":{"C":{"ids":[1]}}},"padding":{"pad_id":0},)" +
                  model + "}")
                  .ok());
}

TEST(Loading, VocabTxtBuildsABertTokenizer) {
  auto t = Tokenizer::FromVocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Encode("Hello worlds [MASK]").ids, (std::vector<int32_t>{2, 5, 6, 7, 4, 3}));
  EXPECT_FALSE(Tokenizer::FromVocab("hello\nworld\n").ok());
}

// Unigram: "▁"=-1, "a"=-2, "b"=-2, "ab"=-3, "▁a"=-2.5, "▁ab"=-6, "<0x78>" (byte of 'x').
std::string UnigramJson(bool byte_fallback) {
  return std::string(
             R"({"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},)") +
         R"("model":{"type":"Unigram","unk_id":0,"byte_fallback":)" +
         (byte_fallback ? "true" : "false") +
         R"(,"vocab":[["<unk>",0],["▁",-1],["a",-2],["b",-2],["ab",-3],["▁a",-2.5],["▁ab",-6],["<0x78>",-9]]}})";
}

std::vector<int32_t> Ids(const Tokenizer& t, std::string_view text) {
  return t.Encode(text, false).ids;
}

TEST(Unigram, ViterbiPicksTheBestScoringSegmentation) {
  auto t = Load(UnigramJson(false));
  // ▁ab=-6, ▁a+b=-4.5, ▁+ab=-4, ▁+a+b=-5 → ▁ + ab.
  EXPECT_EQ(Ids(*t, "ab"), (std::vector<int32_t>{1, 4}));
  // ▁a=-2.5 beats ▁+a=-3.
  EXPECT_EQ(Ids(*t, "a b"), (std::vector<int32_t>{5, 1, 3}));
}

TEST(Unigram, UnknownRunsFuseIntoOneUnk) {
  auto t = Load(UnigramJson(false));
  EXPECT_EQ(Ids(*t, "aqzb"), (std::vector<int32_t>{5, 0, 3}));
}

TEST(Unigram, ByteFallbackSpellsUnknownsAsBytes) {
  auto t = Load(UnigramJson(true));
  EXPECT_EQ(Ids(*t, "axb"), (std::vector<int32_t>{5, 7, 3}));
  // Not every byte of "q" has a piece: stays <unk>.
  EXPECT_EQ(Ids(*t, "aqb"), (std::vector<int32_t>{5, 0, 3}));
}

TEST(Unigram, MetaspaceDecoderRestoresSpaces) {
  std::string json = UnigramJson(false);
  json.insert(1, R"("decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"},)");
  auto t = Load(json);
  EXPECT_EQ(t->Decode(Ids(*t, "ab a b")), "ab a b");
}

TEST(Robustness, InvalidUtf8AndEmptyInputsEncode) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  EXPECT_EQ(t->Encode("").ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(t->Encode("\xFF\xC3 hello \xE2\x82").ids, (std::vector<int32_t>{1, 10, 2}));
}

TEST(ThreadSafety, ConcurrentEncodesAgree) {
  auto t = Load(WithTemplate(WordPieceJson(kVocab, kBertNorm, kBertPre)));
  std::vector<int32_t> expected = t->Encode("hello world, the cat sat on the mat!").ids;
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 500; ++i) {
        if (t->Encode("hello world, the cat sat on the mat!").ids != expected) ++bad[k];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>(4, 0)));
}

}  // namespace
}  // namespace atrium::infer
