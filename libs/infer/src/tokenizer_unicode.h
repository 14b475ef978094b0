// Private: the Unicode character classes the tokenizer stages share, defined as Hugging Face
// `tokenizers` defines them (Rust `char` semantics), plus normalization forms via utf8proc.
#pragma once

#include <cstdint>

#include "tokenizer_pipeline.h"

namespace atrium::infer::unicode {

// Rust char::is_whitespace (the White_Space property).
bool IsWhitespace(char32_t c);
// Unicode general category letters, as utf8proc numbers them.
bool IsControlOrOther(char32_t c);   // Cc, Cf, Cn, Co, Cs
bool IsPunctuation(char32_t c);      // P*
bool IsBertPunctuation(char32_t c);  // ASCII punctuation or P*
bool IsMarkNonspacing(char32_t c);   // Mn
bool IsChineseChar(char32_t c);      // the CJK blocks BERT pads with spaces
// Characters of the regex class \w (letters, marks, decimal digits, connector punctuation).
bool IsWordChar(char32_t c);
// Appends the full lowercase mapping of `c` (usually one code point; U+0130 gives two).
void AppendLower(char32_t c, std::u32string& out);

// Lowercases `in` into `out` (cleared first) with full mappings and the Final_Sigma rule: Σ at
// the end of a word becomes ς, as JavaScript's toLowerCase (the parity reference) and Python's
// str.lower do. (The Rust crate maps Σ per code point and always gives σ.)
void Lowercase(const NormalizedText& in, NormalizedText& out);

enum class Form { kNfc, kNfd, kNfkc, kNfkd };
// Normalizes `text` into `out` (cleared first). Offsets: a code point maps to the source range of
// the composed sequence (starter plus following marks) it belongs to.
void Normalize(const NormalizedText& text, Form form, NormalizedText& out);

}  // namespace atrium::infer::unicode
