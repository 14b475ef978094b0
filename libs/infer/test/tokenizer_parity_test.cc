// Parity with the reference implementation: the same inputs through this tokenizer and through
// Hugging Face's `@huggingface/tokenizers` (npm, pure JS; tests/reference/tokenize.mjs) must give
// identical ids. Skips when node or the npm package is missing (`scripts/setup` installs both).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "atrium/core/testing.h"
#include "atrium/infer/tokenizer.h"

namespace atrium::infer {
namespace {

namespace fs = std::filesystem;

std::string SourceDir() {
  const char* dir = std::getenv("ATRIUM_SOURCE_DIR");
  return dir ? dir : "";
}

std::string DataDir() { return SourceDir() + "/../shared/data"; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Why the reference cannot run here, or empty when it can.
std::string ReferenceUnavailable() {
  if (SourceDir().empty()) return "ATRIUM_SOURCE_DIR is not set (run through ctest)";
  if (std::system("node --version >/dev/null 2>&1") != 0) return "node is not installed";
  if (!fs::exists(SourceDir() + "/tests/reference/node_modules/@huggingface/tokenizers")) {
    return "npm package missing: run `npm ci` in tests/reference (scripts/setup does)";
  }
  return "";
}

// One input: a text, or a pair of texts when `second` is set.
struct Input {
  std::string first;
  std::optional<std::string> second;
  Input(std::string text) : first(std::move(text)) {}  // NOLINT(google-explicit-constructor)
  Input(const char* text) : first(text) {}             // NOLINT(google-explicit-constructor)
  Input(std::string a, std::string b) : first(std::move(a)), second(std::move(b)) {}
  std::string Json() const {
    if (!second) return boost::json::serialize(boost::json::value(first));
    return boost::json::serialize(
        boost::json::array{boost::json::value(first), boost::json::value(*second)});
  }
};

// Runs the reference on `inputs`; one id list per input.
std::vector<std::vector<int32_t>> ReferenceIds(const std::string& tokenizer_json_path,
                                               const std::vector<Input>& inputs) {
  testing::TempDir dir;
  std::string in_path = dir.path() + "/inputs.jsonl";
  std::string out_path = dir.path() + "/ids.jsonl";
  {
    std::ofstream in(in_path, std::ios::binary);
    for (const auto& input : inputs) in << input.Json() << '\n';
  }
  std::string cmd = "node '" + SourceDir() + "/tests/reference/tokenize.mjs' '" +
                    tokenizer_json_path + "' '" + in_path + "' > '" + out_path + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<std::vector<int32_t>> out;
  std::istringstream lines(ReadAll(out_path));
  for (std::string line; std::getline(lines, line);) {
    std::vector<int32_t> ids;
    boost::json::value parsed = boost::json::parse(line);
    for (const auto& v : parsed.as_array()) {
      // The reference yields null for a token it cannot map to an id; -1 never matches ours.
      ids.push_back(v.is_int64() ? static_cast<int32_t>(v.as_int64()) : -1);
    }
    out.push_back(std::move(ids));
  }
  return out;
}

std::string Show(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

void ExpectParity(const std::string& tokenizer_json_path, const std::vector<Input>& inputs) {
  auto tokenizer = Tokenizer::FromFile(tokenizer_json_path);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  auto expected = ReferenceIds(tokenizer_json_path, inputs);
  ASSERT_EQ(expected.size(), inputs.size());
  int mismatches = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    Encoding e =
        in.second ? (*tokenizer)->EncodePair(in.first, *in.second) : (*tokenizer)->Encode(in.first);
    if (e.ids != expected[i]) {
      ++mismatches;
      ADD_FAILURE() << "input " << i << ": " << in.Json() << "\n  ours:      " << Show(e.ids)
                    << "\n  reference: " << Show(expected[i]);
      if (mismatches >= 20) return;
    }
  }
}

std::string MiniLmPath() { return DataDir() + "/minilm-tokenizer/tokenizer.json"; }

TEST(TokenizerParity, MiniLmMatchesReferenceOnEveryStsSentence) {
  if (auto why = ReferenceUnavailable(); !why.empty()) GTEST_SKIP() << why;
  std::string csv = DataDir() + "/sts-test.csv";
  if (!fs::exists(csv) || !fs::exists(MiniLmPath())) {
    GTEST_SKIP() << "test data missing: expected " << csv << " and " << MiniLmPath();
  }
  std::vector<Input> sentences;
  std::vector<Input> pairs;
  std::istringstream rows(ReadAll(csv));
  for (std::string row; std::getline(rows, row);) {
    std::vector<std::string> fields;
    size_t pos = 0;
    while (fields.size() < 7) {
      size_t tab = row.find('\t', pos);
      fields.push_back(row.substr(pos, tab == std::string::npos ? std::string::npos : tab - pos));
      if (tab == std::string::npos) break;
      pos = tab + 1;
    }
    if (fields.size() < 7) continue;
    sentences.push_back(fields[5]);
    sentences.push_back(fields[6]);
    pairs.emplace_back(fields[5], fields[6]);
  }
  ASSERT_GT(sentences.size(), 2000u);
  ExpectParity(MiniLmPath(), sentences);
  ExpectParity(MiniLmPath(), pairs);
}

std::vector<Input> AdversarialInputs() {
  return {
      "",
      " ",
      "   \t\n  ",
      "Hello, World!",
      "ÉCOLE NORMALE SUPÉRIEURE À PARIS",
      "Ångström naïve café résumé",
      "I love 🤗 and 😀😃 emoji 👨‍👩‍👧",
      "中文分词测试，日本語のテキスト、한국어 텍스트",
      "e\xCC\x81t\xC3\xA9 combining a\xCC\x8A marks n\xCC\x83",
      "control\x01\x02\x7F chars\x1B[31m red",
      "zero\xE2\x80\x8Bwidth\xE2\x80\x8C joiner\xE2\x80\x8D\xEF\xBB\xBF bom",
      "مرحبا بالعالم שלום עולם",
      std::string(10000, 'a'),
      std::string(99, 'b') + " " + std::string(100, 'c') + " " + std::string(101, 'd'),
      "[CLS] special [SEP] tokens [MASK] inside [PAD][UNK]",
      "tabs\tand\nnewlines\r\nmixed",
      "non\xC2\xA0"
      "breaking\xE3\x80\x80ideographic space",
      "İstanbul ǅemal ΣΊΣΥΦΟΣ ß",
      "unaffable unbelievably supercalifragilisticexpialidocious",
      "$100.00 + 5% = <tag> `code` ~tilde~ ^caret^ |pipe|",
      "ﬁ ligature Ⅻ roman ① circled ＡＢＣ fullwidth",
      "Ὀδυσσεύς Ǆ ǈ ﬀ Å Ω K ḱṷṓn 한국어 각",
      Input("pair with ÉMOJI 🤗", "and CJK 中文"),
  };
}

TEST(TokenizerParity, MiniLmMatchesReferenceOnAdversarialInputs) {
  if (auto why = ReferenceUnavailable(); !why.empty()) GTEST_SKIP() << why;
  if (!fs::exists(MiniLmPath())) GTEST_SKIP() << "test data missing: " << MiniLmPath();
  ExpectParity(MiniLmPath(), AdversarialInputs());
}

// The MiniLM vocabulary behind other normalizers and pre-tokenizers, so that each component is
// compared with the reference on the adversarial set.
//
// Known divergence: the reference's Whitespace pre-tokenizer matches /\w+|[^\w\s]+/ with
// JavaScript's ASCII-only \w, while the Rust crate (and this implementation) use Unicode \w, so
// "ǆemal" is one word here and two there. Whitespace is therefore compared on ASCII inputs only;
// its Unicode behaviour has hand-computed expectations in tokenizer_test.cc. The reference's
// Punctuation ignores `behavior` and always groups runs of punctuation (as "Contiguous"), so it is
// compared with that behavior; the others are covered in tokenizer_test.cc.
TEST(TokenizerParity, OtherNormalizersAndPreTokenizersMatchReference) {
  if (auto why = ReferenceUnavailable(); !why.empty()) GTEST_SKIP() << why;
  if (!fs::exists(MiniLmPath())) GTEST_SKIP() << "test data missing: " << MiniLmPath();
  struct Variant {
    const char* normalizer;
    const char* pre_tokenizer;
    bool ascii_only;
  };
  const Variant variants[] = {
      {R"({"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"},{"type":"Lowercase"}]})",
       R"({"type":"Whitespace"})", true},
      {R"({"type":"NFKC"})",
       R"({"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Punctuation","behavior":"Contiguous"}]})",
       false},
      {R"({"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Lowercase"}]})",
       R"({"type":"BertPreTokenizer"})", false},
      {R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":false,"strip_accents":false,"lowercase":true})",
       R"({"type":"BertPreTokenizer"})", false},
      {R"({"type":"NFKD"})", R"({"type":"WhitespaceSplit"})", false},
  };
  std::vector<Input> all = AdversarialInputs();
  all.push_back("Mr. O'Neil's e-mail: a_b@c.d, (x+y)=z; 3.14 -- 'quoted' \"double\" [brackets]");
  std::vector<Input> ascii;
  for (const auto& in : all) {
    auto is_ascii = [](const std::string& s) {
      for (unsigned char c : s) {
        if (c >= 0x80) return false;
      }
      return true;
    };
    if (is_ascii(in.first) && (!in.second || is_ascii(*in.second))) ascii.push_back(in);
  }
  boost::json::value base = boost::json::parse(ReadAll(MiniLmPath()));
  testing::TempDir dir;
  int n = 0;
  for (const Variant& variant : variants) {
    SCOPED_TRACE(std::string(variant.normalizer) + " + " + variant.pre_tokenizer);
    boost::json::value v = base;
    v.as_object()["normalizer"] = boost::json::parse(variant.normalizer);
    v.as_object()["pre_tokenizer"] = boost::json::parse(variant.pre_tokenizer);
    std::string path = dir.path() + "/variant" + std::to_string(n++) + ".json";
    std::ofstream(path) << boost::json::serialize(v);
    ExpectParity(path, variant.ascii_only ? ascii : all);
  }
}

// A small SentencePiece-style Unigram tokenizer, written by the test.
std::string UnigramJson() {
  const char* pieces[][2] = {
      {"<unk>", "0"},
      {"<s>", "0"},
      {"</s>", "0"},
      {"\xE2\x96\x81", "-2.0"},
      {"\xE2\x96\x81the", "-3.0"},
      {"\xE2\x96\x81th", "-5.5"},
      {"t", "-4.0"},
      {"h", "-4.2"},
      {"e", "-3.9"},
      {"he", "-4.6"},
      {"\xE2\x96\x81"
       "a",
       "-3.1"},
      {"a", "-3.7"},
      {"b", "-4.8"},
      {"c", "-4.4"},
      {"\xE2\x96\x81"
       "cat",
       "-6.0"},
      {"cat", "-6.5"},
      {"at", "-4.3"},
      {"s", "-3.3"},
      {"\xE2\x96\x81hello", "-7.0"},
      {"hell", "-6.2"},
      {"o", "-3.8"},
      {"l", "-4.1"},
      {"\xE2\x96\x81wor", "-6.8"},
      {"ld", "-5.1"},
      {"w", "-4.9"},
      {"r", "-4.05"},
      {"d", "-4.15"},
      {"\xE2\x96\x81"
       "c",
       "-5.2"},
      {"\xE2\x96\x81"
       "b",
       "-5.3"},
      {"ca", "-5.9"},
      {"ts", "-5.4"},
      {"\xE2\x96\x81w", "-5.6"},
      {"or", "-5.0"},
      {"n", "-4.25"},
      {"i", "-4.35"},
      {"\xE2\x96\x81in", "-5.7"},
      {"g", "-4.45"},
      {"ing", "-5.8"},
      {".", "-3.6"},
      {",", "-3.65"},
  };
  boost::json::array vocab;
  for (auto& p : pieces) vocab.push_back(boost::json::array{p[0], std::stod(p[1])});
  boost::json::object model{
      {"type", "Unigram"}, {"unk_id", 0}, {"vocab", vocab}, {"byte_fallback", false}};
  boost::json::object root{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       boost::json::array{boost::json::object{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                          boost::json::object{{"id", 1}, {"content", "<s>"}, {"special", true}},
                          boost::json::object{{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", boost::json::object{{"type", "Metaspace"},
                                            {"replacement", "\xE2\x96\x81"},
                                            {"prepend_scheme", "always"},
                                            {"split", true}}},
      {"post_processor",
       boost::json::object{
           {"type", "TemplateProcessing"},
           {"single",
            boost::json::array{
                boost::json::object{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                boost::json::object{{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
           {"pair",
            boost::json::array{
                boost::json::object{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                boost::json::object{{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
                boost::json::object{{"SpecialToken", {{"id", "</s>"}, {"type_id", 1}}}}}},
           {"special_tokens",
            {{"</s>",
              {{"id", "</s>"},
               {"ids", boost::json::array{2}},
               {"tokens", boost::json::array{"</s>"}}}}}}}},
      {"decoder", boost::json::object{{"type", "Metaspace"},
                                      {"replacement", "\xE2\x96\x81"},
                                      {"prepend_scheme", "always"},
                                      {"split", true}}},
      {"model", model}};
  return boost::json::serialize(root);
}

TEST(TokenizerParity, UnigramMatchesReference) {
  if (auto why = ReferenceUnavailable(); !why.empty()) GTEST_SKIP() << why;
  testing::TempDir dir;
  std::string path = dir.path() + "/unigram.json";
  std::ofstream(path) << UnigramJson();
  ExpectParity(path, {"the cat", "hello world", "the cats sat", "a bat, the hat.", "thing",
                      "xyz the qq", "  leading and trailing  ", "", "in the wording", "cathedral",
                      "abc cab bac", "ünïcödé words", "the\tcat\nthe", "▁the▁cat",
                      "the cat</s>hello", Input("the cat", "hello world")});
}

}  // namespace
}  // namespace atrium::infer
