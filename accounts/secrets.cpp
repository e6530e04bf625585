// session_digest uses OpenSSL's low-level SHA-256 calls, deprecated in OpenSSL 3 (see there).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "accounts/secrets.hpp"

#include "accounts/foreign_hash.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sodium.h>

#include <cstring>
#include <optional>
#include <stdexcept>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace accounts {

void init_secrets() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialize");
}

std::string new_token() {
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  char text[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(text, sizeof text, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  return text;
}

TokenDigest digest_token(std::string_view token) {
  TokenDigest d;
  crypto_generichash(d.data(), d.size(), reinterpret_cast<const unsigned char*>(token.data()),
                     token.size(), nullptr, 0);
  return d;
}

TokenDigest session_digest(std::string_view token) {
  // OpenSSL 3 deprecates these low-level calls in favour of EVP, whose dispatch costs as much
  // again on a 43-byte input: build/digest_speed measured 88-106 ns for these, 137-160 ns for EVP
  // with a reused context, 205-210 ns for EVP_Digest, and 231-237 ns for libsodium's BLAKE2b. The
  // calls remain in every OpenSSL 3 release.
  TokenDigest d;
  SHA256_CTX context;
  SHA256_Init(&context);
  SHA256_Update(&context, token.data(), token.size());
  SHA256_Final(d.data(), &context);
  OPENSSL_cleanse(&context, sizeof context);
  return d;
}

SessionKey session_key(const TokenDigest& digest) {
  SessionKey key;
  std::memcpy(key.data(), digest.data(), key.size());
  return key;
}

bool token_shaped(std::string_view token) {
  constexpr size_t kTokenChars = 43;
  if (token.size() != kTokenChars) return false;
#if defined(__SSE2__)
  // Three loads of sixteen bytes (the last overlaps the second) and a test once at the end: the
  // byte-by-byte table lookup this replaced was 30 ns of a WHOAMI at P=16 (docs/BENCHMARKS.md,
  // "A reply written in one pass"). Signed compares: bytes from 0x80 up are negative, so no range
  // takes them in. A byte with 0x20 set is a lower-case letter exactly when it was a letter.
  auto outside = [](const char* at) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    auto within = [](__m128i b, char lo, char hi) {
      return _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8(static_cast<char>(lo - 1))),
                           _mm_cmplt_epi8(b, _mm_set1_epi8(static_cast<char>(hi + 1))));
    };
    const __m128i letter = within(_mm_or_si128(bytes, _mm_set1_epi8(0x20)), 'a', 'z');
    const __m128i digit = within(bytes, '0', '9');
    const __m128i mark = _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('-')), _mm_cmpeq_epi8(bytes, _mm_set1_epi8('_')));
    return _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), mark)) ^ 0xffff;
  };
  const char* at = token.data();
  return (outside(at) | outside(at + 16) | outside(at + kTokenChars - 16)) == 0;
#else
  for (char c : token) {
    auto u = static_cast<unsigned char>(c);
    bool letter = (u | 0x20) >= 'a' && (u | 0x20) <= 'z', digit = u >= '0' && u <= '9';
    if (!letter && !digit && c != '-' && c != '_') return false;
  }
  return true;
#endif
}

bool same_digest(const TokenDigest& a, const TokenDigest& b) {
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hash_password(std::string_view password, const HashParams& params) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), params.opslimit,
                        static_cast<size_t>(params.memlimit_kib) * 1024) != 0)
    throw std::runtime_error("crypto_pwhash_str failed (out of memory?)");
  return out;
}

bool needs_rehash(const std::string& hash, const HashParams& params) {
  if (!hash.starts_with("$argon2id$")) return true;  // imported: Argon2id once the password is known
  return crypto_pwhash_str_needs_rehash(hash.c_str(), params.opslimit,
                                        static_cast<size_t>(params.memlimit_kib) * 1024) != 0;
}

namespace {

constexpr uint8_t kPacked = 1, kText = 2;
constexpr size_t kSaltBytes = 16, kHashBytes = 32;
constexpr int kBase64 = sodium_base64_VARIANT_ORIGINAL_NO_PADDING;

struct Packed {
  uint32_t memory_kib, passes, lanes;
  uint8_t salt[kSaltBytes];
  uint8_t hash[kHashBytes];
};

std::string encode(const Packed& p) {
  char salt[sodium_base64_ENCODED_LEN(kSaltBytes, kBase64)];
  char hash[sodium_base64_ENCODED_LEN(kHashBytes, kBase64)];
  sodium_bin2base64(salt, sizeof salt, p.salt, kSaltBytes, kBase64);
  sodium_bin2base64(hash, sizeof hash, p.hash, kHashBytes, kBase64);
  return "$argon2id$v=19$m=" + std::to_string(p.memory_kib) + ",t=" + std::to_string(p.passes) +
         ",p=" + std::to_string(p.lanes) + "$" + salt + "$" + hash;
}

// Standard base64 without padding, as libsodium writes Argon2id strings, through a table.
// libsodium's own decoder is constant-time and goes character by character: it was a seventh of
// the warm-load's CPU, on strings that are not secret to whoever can read the table they come
// from. Only the canonical spelling is accepted, the one libsodium's encoder writes: exactly
// `bytes` come out, and the bits of the last character that carry none of them are zero.
constexpr auto kBase64Values = [] {
  std::array<int8_t, 256> values{};
  values.fill(-1);
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < kAlphabet.size(); ++i) values[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return values;
}();

bool decode_base64(std::string_view text, uint8_t* out, size_t bytes) {
  if (text.size() != (bytes * 4 + 2) / 3) return false;
  uint32_t bits = 0;
  int pending = 0;  // bits in `bits` not written out yet
  size_t written = 0;
  for (char c : text) {
    int value = kBase64Values[static_cast<uint8_t>(c)];
    if (value < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    pending += 6;
    if (pending >= 8) {
      pending -= 8;
      out[written++] = static_cast<uint8_t>(bits >> pending);
    }
  }
  return written == bytes && (bits & ((1u << pending) - 1)) == 0;
}

// The parameters, salt and hash of a canonical libsodium Argon2id string, or nothing. Canonical:
// encode() gives back the same text, which the parser ensures by accepting only that spelling
// (numbers without leading zeros, base64 as above); re-encoding each string to compare was a
// tenth of the warm-load's CPU. A unit test holds the two to the same verdict.
std::optional<Packed> pack(std::string_view text) {
  constexpr std::string_view kPrefix = "$argon2id$v=19$m=";
  if (!text.starts_with(kPrefix)) return std::nullopt;
  Packed p{};
  uint64_t values[3] = {0, 0, 0};
  const char* names = ",t=,p=$";
  size_t at = kPrefix.size();
  for (int i = 0; i < 3; ++i) {
    size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9' && at - start < 10) values[i] = values[i] * 10 + (text[at++] - '0');
    if (at == start || values[i] > UINT32_MAX || (text[start] == '0' && at - start > 1)) return std::nullopt;
    std::string_view separator = i < 2 ? std::string_view(names + 3 * i, 3) : std::string_view("$");
    if (text.substr(at, separator.size()) != separator) return std::nullopt;
    at += separator.size();
  }
  size_t dollar = text.find('$', at);
  if (dollar == std::string_view::npos) return std::nullopt;
  if (!decode_base64(text.substr(at, dollar - at), p.salt, kSaltBytes) ||
      !decode_base64(text.substr(dollar + 1), p.hash, kHashBytes))
    return std::nullopt;
  p.memory_kib = static_cast<uint32_t>(values[0]);
  p.passes = static_cast<uint32_t>(values[1]);
  p.lanes = static_cast<uint32_t>(values[2]);
  return p;
}

}  // namespace

std::string unmatchable_hash(const HashParams& params) {
  Packed p{static_cast<uint32_t>(params.memlimit_kib), static_cast<uint32_t>(params.opslimit), 1, {}, {}};
  randombytes_buf(p.salt, sizeof p.salt);
  randombytes_buf(p.hash, sizeof p.hash);
  return encode(p);
}

std::optional<bool> verify_password(const std::string& hash, std::string_view password) {
  if (!hash.starts_with("$argon2id$")) return verify_foreign(hash, password);  // imported (docs/IMPORT.md)
  // crypto_pwhash_str_verify answers -1 both to a wrong password and to a hash it could not
  // compute because the work area could not be mapped, and its errno does not tell them apart
  // (measured: EINVAL for both). A wrong password counts towards a lockout; a machine out of
  // memory must not. So a canonical string, which is every hash this daemon makes, is computed
  // with crypto_pwhash, which fails only for want of memory once its parameters are in range,
  // and compared in constant time, as crypto_pwhash_str_verify does.
  if (auto p = pack(hash); p && p->lanes == 1 && p->passes >= crypto_pwhash_argon2id_OPSLIMIT_MIN &&
                           uint64_t{p->memory_kib} * 1024 >= crypto_pwhash_argon2id_MEMLIMIT_MIN &&
                           uint64_t{p->memory_kib} * 1024 <= crypto_pwhash_argon2id_MEMLIMIT_MAX &&
                           password.size() <= crypto_pwhash_argon2id_PASSWD_MAX) {
    uint8_t computed[kHashBytes];
    if (crypto_pwhash(computed, sizeof computed, password.data(), password.size(), p->salt, p->passes,
                      static_cast<size_t>(p->memory_kib) * 1024, crypto_pwhash_ALG_ARGON2ID13) != 0)
      return std::nullopt;
    bool same = crypto_verify_32(computed, p->hash) == 0;
    sodium_memzero(computed, sizeof computed);
    return same;
  }
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

void PasswordHash::Deleter::operator()(uint8_t* p) const { delete[] p; }

void PasswordHash::hold(const void* packed) {
  block_.reset(new uint8_t[1 + sizeof(Packed)]);
  block_.get()[0] = kPacked;
  std::memcpy(block_.get() + 1, packed, sizeof(Packed));
}

std::optional<PasswordHash> PasswordHash::checked(std::string_view text, std::string& problem) {
  // pack() accepts only "$argon2id$v=19$m=..,t=..,p=..$" with a 16-byte salt and a 32-byte hash
  // in canonical base64: what check_argon2() accepts, but for the bounds on the parameters.
  if (auto p = pack(text); p && argon2_within_bounds(p->memory_kib, p->passes, p->lanes)) {
    PasswordHash hash;
    hash.hold(&*p);
    return hash;
  }
  auto check = check_hash(text);
  if (!check.scheme) {
    problem = std::move(check.problem);
    return std::nullopt;
  }
  return PasswordHash(text);
}

PasswordHash::PasswordHash(std::string_view text) {
  if (text.empty()) return;
  if (auto p = pack(text)) {
    hold(&*p);
    return;
  }
  uint32_t size = static_cast<uint32_t>(text.size());
  block_.reset(new uint8_t[1 + sizeof size + text.size()]);
  block_.get()[0] = kText;
  std::memcpy(block_.get() + 1, &size, sizeof size);
  std::memcpy(block_.get() + 1 + sizeof size, text.data(), text.size());
}

size_t PasswordHash::block_bytes() const {
  if (!block_) return 0;
  if (block_.get()[0] != kText) return 1 + sizeof(Packed);
  uint32_t size;
  std::memcpy(&size, block_.get() + 1, sizeof size);
  return 1 + sizeof size + size;
}

PasswordHash::PasswordHash(const PasswordHash& other) {
  if (!other.block_) return;
  size_t bytes = other.block_bytes();
  block_.reset(new uint8_t[bytes]);
  std::memcpy(block_.get(), other.block_.get(), bytes);
}

bool PasswordHash::operator==(const PasswordHash& other) const {
  size_t bytes = block_bytes();
  return bytes == other.block_bytes() && (bytes == 0 || std::memcmp(block_.get(), other.block_.get(), bytes) == 0);
}

bool PasswordHash::packed() const { return block_ && block_.get()[0] == kPacked; }

std::string PasswordHash::text() const {
  if (!block_) return {};
  if (packed()) {
    Packed p;
    std::memcpy(&p, block_.get() + 1, sizeof p);
    return encode(p);
  }
  uint32_t size;
  std::memcpy(&size, block_.get() + 1, sizeof size);
  return std::string(reinterpret_cast<const char*>(block_.get() + 1 + sizeof size), size);
}

bool is_password_hash(std::string_view hash) { return check_hash(hash).scheme.has_value(); }

}  // namespace accounts
