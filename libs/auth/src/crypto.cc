#include "atrium/auth/crypto.h"

#include "atrium/core/base64.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <ctime>
#include <memory>

namespace atrium::auth {
namespace {

constexpr char kB62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

int B64Index(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

namespace {

// The digest of `data` into `digest`.
void Sha256Into(std::string_view data, unsigned char (&digest)[SHA256_DIGEST_LENGTH]) {
  // Fetched once: SHA256() looks the algorithm up on every call (OpenSSL 3), which cost more
  // than hashing an API key on the relay's hot path; the context is kept per thread (EVP_Digest
  // would allocate and free one per call).
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  unsigned int len = 0;
  if (md == nullptr || ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  }
}

}  // namespace

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  Sha256Into(data, digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  Sha256Into(data, digest);  // no intermediate string: this runs for every API-key request
  std::string hex(sizeof(digest) * 2, '\0');
  for (size_t i = 0; i < sizeof(digest); ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 32;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       reinterpret_cast<unsigned char*>(out.data()), &len);
  out.resize(len);
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Base64UrlEncode(std::string_view data) { return atrium::Base64UrlEncode(data); }

Result<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return InvalidArgument("malformed base64url (length)");
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = B64Index(c);
    if (v < 0) return InvalidArgument("malformed base64url (character)");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Non-canonical encodings (set bits in the padding) are rejected so one value has one spelling.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return InvalidArgument("malformed base64url (trailing bits)");
  }
  return out;
}

std::string Base62Encode(std::string_view bytes) {
  std::vector<uint8_t> num(bytes.begin(), bytes.end());
  std::string out;
  size_t start = 0;
  while (start < num.size() && num[start] == 0) ++start;
  while (start < num.size()) {
    uint32_t rem = 0;
    for (size_t i = start; i < num.size(); ++i) {
      uint32_t cur = (rem << 8) | num[i];
      num[i] = static_cast<uint8_t>(cur / 62);
      rem = cur % 62;
    }
    out += kB62[rem];
    while (start < num.size() && num[start] == 0) ++start;
  }
  // Fixed width for 32-byte inputs so every key has the same length: 62^43 > 2^256.
  size_t width = (bytes.size() * 8 * 1000 + 5953) / 5954;  // ceil(bits / log2(62))
  while (out.size() < width) out += '0';
  return std::string(out.rbegin(), out.rend());
}

std::string RandomBytes(Env& env, size_t n) {
  std::string out(n, '\0');
  env.RandomBytes(out.data(), n);
  return out;
}

std::string NewId(Env& env, std::string_view prefix) {
  return std::string(prefix) + Base62Encode(RandomBytes(env, 16));
}

std::string FormatRfc3339(int64_t micros) {
  time_t secs = static_cast<time_t>(micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<int64_t> ParseRfc3339(std::string_view t) {
  auto bad = [&] { return InvalidArgument("not an RFC 3339 timestamp: " + std::string(t)); };
  auto num = [&](size_t pos, size_t len, int& out) {
    if (pos + len > t.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, s;
  if (!num(0, 4, y) || t.size() < 20 || t[4] != '-' || !num(5, 2, mo) || t[7] != '-' ||
      !num(8, 2, d) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !num(11, 2, h) ||
      t[13] != ':' || !num(14, 2, mi) || t[16] != ':' || !num(17, 2, s)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return bad();
  size_t pos = 19;
  int64_t frac_us = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (digits < 6) frac_us = frac_us * 10 + (t[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad();
    for (int i = digits; i < 6; ++i) frac_us *= 10;
  }
  int64_t offset = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh, om;
    if (!num(pos + 1, 2, oh) || pos + 3 >= t.size() || t[pos + 3] != ':' || !num(pos + 4, 2, om))
      return bad();
    offset = (oh * 3600 + om * 60) * (t[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != t.size()) return bad();
  // Days from civil (Howard Hinnant's algorithm).
  int yy = y - (mo <= 2);
  int era = (yy >= 0 ? yy : yy - 399) / 400;
  unsigned yoe = static_cast<unsigned>(yy - era * 400);
  unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = static_cast<int64_t>(era) * 146097 + static_cast<int64_t>(doe) - 719468;
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - offset;
  return secs * 1000000 + frac_us;
}

SecretBox::SecretBox(std::string key_id, std::string key) : current_(key_id) {
  keys_[std::move(key_id)] = std::move(key);
}

Result<SecretBox> SecretBox::FromKeyRing(std::string_view ring) {
  SecretBox box;
  size_t pos = 0;
  while (pos <= ring.size()) {
    size_t comma = ring.find(',', pos);
    std::string_view item =
        ring.substr(pos, comma == std::string_view::npos ? ring.npos : comma - pos);
    size_t colon = item.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return InvalidArgument("master key ring: expected kid:base64url-key entries");
    }
    std::string kid(item.substr(0, colon));
    for (char c : kid) {
      if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
        return InvalidArgument("master key ring: key ids are [A-Za-z0-9_-]");
    }
    auto key = Base64UrlDecode(item.substr(colon + 1));
    if (!key.ok() || key->size() != 32) {
      return InvalidArgument("master key ring: key '" + kid + "' is not 32 base64url bytes");
    }
    if (box.keys_.count(kid)) return InvalidArgument("master key ring: duplicate key id " + kid);
    if (box.current_.empty()) box.current_ = kid;
    box.keys_[kid] = std::move(*key);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (box.keys_.empty()) return InvalidArgument("master key ring is empty");
  return box;
}

std::string SecretBox::KeyIdOf(std::string_view sealed) {
  if (!IsSealed(sealed)) return "";
  size_t dot = sealed.find('.', 5);
  return dot == std::string_view::npos ? "" : std::string(sealed.substr(5, dot - 5));
}

Result<std::string> SecretBox::Seal(Env& env, std::string_view plaintext,
                                    std::string_view aad) const {
  const std::string& key = keys_.at(current_);
  std::string nonce = RandomBytes(env, kNonceBytes);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Internal("EVP_CIPHER_CTX_new failed");
  std::string out = nonce;
  out.resize(kNonceBytes + plaintext.size() + kTagBytes);
  int len = 0;
  auto u = [](auto* p) { return reinterpret_cast<unsigned char*>(p); };
  auto cu = [](const auto* p) { return reinterpret_cast<const unsigned char*>(p); };
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, cu(key.data()), cu(nonce.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, cu(aad.data()), static_cast<int>(aad.size())) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), u(out.data() + kNonceBytes), &len, cu(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), u(out.data() + kNonceBytes + len), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          out.data() + kNonceBytes + plaintext.size()) != 1) {
    return Internal("AES-256-GCM encryption failed");
  }
  return "aes1." + current_ + "." + Base64UrlEncode(out);
}

Result<std::string> SecretBox::Open(std::string_view sealed, std::string_view aad) const {
  std::string kid = KeyIdOf(sealed);
  if (kid.empty()) return InvalidArgument("not a sealed secret");
  auto it = keys_.find(kid);
  if (it == keys_.end()) return NotFound("unknown master key id '" + kid + "'");
  auto raw = Base64UrlDecode(sealed.substr(5 + kid.size() + 1));
  if (!raw.ok() || raw->size() < kNonceBytes + kTagBytes) {
    return InvalidArgument("malformed sealed secret");
  }
  size_t ct_len = raw->size() - kNonceBytes - kTagBytes;
  std::string out(ct_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Internal("EVP_CIPHER_CTX_new failed");
  int len = 0;
  auto u = [](auto* p) { return reinterpret_cast<unsigned char*>(p); };
  auto cu = [](const auto* p) { return reinterpret_cast<const unsigned char*>(p); };
  std::string tag = raw->substr(kNonceBytes + ct_len);
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, cu(it->second.data()),
                               cu(raw->data())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, cu(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), u(out.data()), &len, cu(raw->data() + kNonceBytes),
                              static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), u(out.data() + len), &len) == 1;
  if (!ok) return PermissionDenied("sealed secret failed authentication");
  return out;
}

}  // namespace atrium::auth
