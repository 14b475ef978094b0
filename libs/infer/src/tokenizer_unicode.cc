#include "tokenizer_unicode.h"

#include <utf8proc.h>

#include <algorithm>

namespace atrium::infer::unicode {

bool IsWhitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  switch (c) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

static utf8proc_category_t Category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

bool IsControlOrOther(char32_t c) {
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

bool IsPunctuation(char32_t c) {
  auto cat = Category(c);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool IsBertPunctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  }
  return IsPunctuation(c);
}

bool IsMarkNonspacing(char32_t c) { return c >= 0x300 && Category(c) == UTF8PROC_CATEGORY_MN; }

bool IsChineseChar(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool IsWordChar(char32_t c) {
  if (c < 0x80) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return c == 0x200C || c == 0x200D;
  }
}

void AppendLower(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
  } else if (c == 0x130) {  // İ: the only unconditional multi-code-point lowercase mapping
    out.push_back(U'i');
    out.push_back(0x307);
  } else {
    out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
}

static bool IsCased(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

static bool IsCaseIgnorable(char32_t c) {
  if (c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xB7 || c == 0x2019) {
    return true;
  }
  if (c < 0x80) return false;
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
         cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

static bool IsFinalSigma(const std::u32string& s, size_t i) {
  size_t b = i;
  while (b > 0 && IsCaseIgnorable(s[b - 1])) --b;
  if (b == 0 || !IsCased(s[b - 1])) return false;
  size_t a = i + 1;
  while (a < s.size() && IsCaseIgnorable(s[a])) ++a;
  return a == s.size() || !IsCased(s[a]);
}

void Lowercase(const NormalizedText& in, NormalizedText& out) {
  out.Clear();
  std::u32string lower;
  for (size_t i = 0; i < in.size(); ++i) {
    char32_t c = in.chars[i];
    if (c < 0x80) {
      out.Push(c >= 'A' && c <= 'Z' ? c + 32 : c, in.begin[i], in.end[i]);
      continue;
    }
    if (c == 0x3A3 && IsFinalSigma(in.chars, i)) {
      out.Push(0x3C2, in.begin[i], in.end[i]);
      continue;
    }
    lower.clear();
    AppendLower(c, lower);
    for (char32_t l : lower) out.Push(l, in.begin[i], in.end[i]);
  }
}

static int CombiningClass(char32_t c) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
}

// Whether a code point starts a new normalization run: a starter that cannot compose with what
// precedes it (Hangul vowels and trailing consonants compose with the preceding syllable).
static bool StartsRun(char32_t c) {
  if (c < 0x300) return true;
  if ((c >= 0x1161 && c <= 0x1175) || (c >= 0x11A8 && c <= 0x11C2)) return false;
  return CombiningClass(c) == 0;
}

void Normalize(const NormalizedText& text, Form form, NormalizedText& out) {
  out.Clear();
  int options = UTF8PROC_DECOMPOSE;
  if (form == Form::kNfkc || form == Form::kNfkd) options |= UTF8PROC_COMPAT;
  bool compose = form == Form::kNfc || form == Form::kNfkc;
  std::vector<utf8proc_int32_t> buf;
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (text.chars[i] < 0x80 && (i + 1 == n || text.chars[i + 1] < 0x300)) {
      out.Push(text.chars[i], text.begin[i], text.end[i]);  // ASCII fast path
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && !StartsRun(text.chars[j])) ++j;
    buf.clear();
    for (size_t k = i; k < j; ++k) {
      utf8proc_int32_t tmp[32];
      int boundclass = 0;
      utf8proc_ssize_t len =
          utf8proc_decompose_char(static_cast<utf8proc_int32_t>(text.chars[k]), tmp, 32,
                                  static_cast<utf8proc_option_t>(options), &boundclass);
      if (len < 0 || len > 32) {
        buf.push_back(static_cast<utf8proc_int32_t>(text.chars[k]));
      } else {
        buf.insert(buf.end(), tmp, tmp + len);
      }
    }
    // Canonical ordering: stable sort of each maximal sequence of non-starters by class.
    for (size_t a = 0; a < buf.size();) {
      if (CombiningClass(buf[a]) == 0) {
        ++a;
        continue;
      }
      size_t b = a;
      while (b < buf.size() && CombiningClass(buf[b]) != 0) ++b;
      std::stable_sort(buf.begin() + a, buf.begin() + b,
                       [](auto x, auto y) { return CombiningClass(x) < CombiningClass(y); });
      a = b;
    }
    size_t len = buf.size();
    if (compose && len > 1) {
      utf8proc_ssize_t r =
          utf8proc_normalize_utf32(buf.data(), static_cast<utf8proc_ssize_t>(len),
                                   static_cast<utf8proc_option_t>(options | UTF8PROC_COMPOSE));
      if (r >= 0) len = static_cast<size_t>(r);
    }
    if (len == j - i) {
      for (size_t k = 0; k < len; ++k) {
        out.Push(static_cast<char32_t>(buf[k]), text.begin[i + k], text.end[i + k]);
      }
    } else {
      for (size_t k = 0; k < len; ++k) {
        out.Push(static_cast<char32_t>(buf[k]), text.begin[i], text.end[j - 1]);
      }
    }
    i = j;
  }
}

}  // namespace atrium::infer::unicode
