#include "accounts/foreign_hash.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <array>
#include <charconv>
#include <cstring>
#include <cstdint>
#include <memory>
#include <vector>

namespace accounts {
namespace {

// Bounds on what one imported hash may cost to verify (all far above what the tools that made
// them use by default: Django 5 uses 1M PBKDF2 iterations, Firebase ln=14 r=8, passlib scrypt ln=16).
constexpr uint64_t kMaxArgonKib = 1024 * 1024;  // 1 GiB, as for scrypt
constexpr uint64_t kMaxArgonPasses = 64;
constexpr int kMaxBcryptCost = 16;
constexpr uint64_t kMaxShaCryptRounds = 5'000'000;
constexpr int kMaxYescryptNLog2 = 18;
constexpr uint64_t kMaxPbkdf2Iterations = 10'000'000;
constexpr uint64_t kMaxScryptBytes = 1ull << 30;  // 128 * r * N * p
constexpr size_t kMaxHashText = 512;

using Bytes = std::vector<uint8_t>;

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::optional<uint64_t> number(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// Standard base64, with or without padding; passlib's "adapted" base64 writes '.' for '+'.
std::optional<Bytes> base64(std::string_view text) {
  std::string clean(text);
  while (!clean.empty() && clean.back() == '=') clean.pop_back();
  for (char& c : clean)
    if (c == '.') c = '+';
  Bytes out(clean.size() * 3 / 4 + 3);
  size_t written = 0;
  if (sodium_base642bin(out.data(), out.size(), clean.data(), clean.size(), nullptr, &written, nullptr,
                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)
    return std::nullopt;
  out.resize(written);
  return out;
}

// "k1=v1,k2=v2" into the values of `keys`, in that order; nullopt if any is missing or not a number.
template <size_t N>
std::optional<std::array<uint64_t, N>> params(std::string_view text, const std::array<std::string_view, N>& keys) {
  std::array<uint64_t, N> values{};
  std::array<bool, N> seen{};
  for (auto item : split(text, ',')) {
    auto eq = item.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    for (size_t i = 0; i < N; ++i)
      if (item.substr(0, eq) == keys[i]) {
        auto v = number(item.substr(eq + 1));
        if (!v || seen[i]) return std::nullopt;
        values[i] = *v;
        seen[i] = true;
      }
  }
  for (bool s : seen)
    if (!s) return std::nullopt;
  return values;
}

const EVP_MD* pbkdf2_digest(std::string_view name) {
  if (name == "sha1") return EVP_sha1();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha512") return EVP_sha512();
  return nullptr;
}

HashCheck refuse(std::string problem) { return HashCheck{std::nullopt, std::move(problem)}; }
HashCheck accept(HashScheme scheme) { return HashCheck{scheme, {}}; }

HashCheck check_argon2(std::string_view hash, HashScheme scheme) {
  // $argon2id$v=19$m=65536,t=2,p=1$salt$hash
  auto parts = split(hash, '$');
  if (parts.size() != 6 || parts[2] != "v=19") return refuse("an Argon2 hash must be $argon2id$v=19$m=..,t=..,p=..$salt$hash");
  auto p = params<3>(parts[3], {"m", "t", "p"});
  if (!p) return refuse("Argon2 parameters must be m=..,t=..,p=..");
  if (!argon2_within_bounds((*p)[0], (*p)[1], (*p)[2]))
    return refuse("Argon2 parameters beyond what accountsd verifies (m <= 1048576, t <= 64, p <= 255)");
  auto salt = base64(parts[4]), out = base64(parts[5]);
  if (!salt || !out || salt->size() < 8 || out->size() < 12) return refuse("Argon2 salt or hash is not base64 of the usual size");
  return accept(scheme);
}

HashCheck check_crypt(std::string_view hash, HashScheme scheme) {
  std::string text(hash);
  int verdict = crypt_checksalt(text.c_str());
  if (verdict != CRYPT_SALT_OK && verdict != CRYPT_SALT_METHOD_LEGACY)
    return refuse(std::string(scheme_name(scheme)) + " hash is malformed or disabled in libxcrypt");
  auto parts = split(hash, '$');
  switch (scheme) {
    case HashScheme::bcrypt: {  // $2b$12$<53 characters>
      auto cost = parts.size() == 4 ? number(parts[2]) : std::nullopt;
      if (!cost || parts[3].size() != 53) return refuse("a bcrypt hash must be $2b$<cost>$<53 characters>");
      if (*cost > kMaxBcryptCost) return refuse("bcrypt cost over " + std::to_string(kMaxBcryptCost));
      break;
    }
    case HashScheme::sha512_crypt:
    case HashScheme::sha256_crypt: {  // $6$[rounds=N$]salt$hash
      if (parts.size() == 5 && parts[2].starts_with("rounds=")) {
        auto rounds = number(parts[2].substr(7));
        if (!rounds || *rounds > kMaxShaCryptRounds) return refuse("sha-crypt rounds over 5000000");
      } else if (parts.size() != 4) {
        return refuse("a sha-crypt hash must be $6$[rounds=N$]salt$hash");
      }
      break;
    }
    case HashScheme::md5_crypt:
      if (parts.size() != 4 || parts[3].size() != 22) return refuse("an md5-crypt hash must be $1$salt$<22 characters>");
      break;
    case HashScheme::yescrypt: {  // $y$<params>$salt$hash; the second character of params is log2(N) - 1
      static constexpr std::string_view kItoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
      if (parts.size() != 5 || parts[2].size() < 3) return refuse("a yescrypt hash must be $y$params$salt$hash");
      auto n = kItoa64.find(parts[2][1]);
      if (n == std::string_view::npos || static_cast<int>(n) + 1 > kMaxYescryptNLog2)
        return refuse("yescrypt N over 2^" + std::to_string(kMaxYescryptNLog2));
      break;
    }
    default:
      break;
  }
  return accept(scheme);
}

HashCheck check_pbkdf2_django(std::string_view hash) {
  // pbkdf2_sha256$iterations$salt$base64(hash)
  auto parts = split(hash, '$');
  if (parts.size() != 4 || !pbkdf2_digest(parts[0].substr(7)))
    return refuse("a Django PBKDF2 hash must be pbkdf2_sha256$iterations$salt$hash (or pbkdf2_sha1, pbkdf2_sha512)");
  auto iterations = number(parts[1]);
  if (!iterations || *iterations == 0 || *iterations > kMaxPbkdf2Iterations) return refuse("PBKDF2 iterations must be 1 to 10000000");
  auto out = base64(parts[3]);
  if (parts[2].empty() || !out || out->empty() || out->size() > 64) return refuse("PBKDF2 salt empty or hash not base64");
  return accept(HashScheme::pbkdf2_django);
}

// "$pbkdf2-sha256$": the digest, from the scheme word.
const EVP_MD* phc_pbkdf2_digest(std::string_view word) {
  if (word == "pbkdf2") return EVP_sha1();
  if (!word.starts_with("pbkdf2-")) return nullptr;
  return pbkdf2_digest(word.substr(7));
}

// passlib writes the rounds bare ($pbkdf2-sha256$29000$...); the PHC form writes i=29000[,l=32].
std::optional<uint64_t> phc_rounds(std::string_view text) {
  if (auto bare = number(text)) return bare;
  for (auto item : split(text, ','))
    if (item.starts_with("i=")) return number(item.substr(2));
  return std::nullopt;
}

HashCheck check_pbkdf2_phc(std::string_view hash) {
  auto parts = split(hash, '$');
  if (parts.size() != 5 || !phc_pbkdf2_digest(parts[1]))
    return refuse("a PHC PBKDF2 hash must be $pbkdf2-sha256$rounds$salt$hash ($pbkdf2$ for SHA-1, or -sha512)");
  auto rounds = phc_rounds(parts[2]);
  if (!rounds || *rounds == 0 || *rounds > kMaxPbkdf2Iterations) return refuse("PBKDF2 rounds must be 1 to 10000000");
  auto salt = base64(parts[3]), out = base64(parts[4]);
  if (!salt || !out || out->empty() || out->size() > 64) return refuse("PBKDF2 salt or hash is not base64");
  return accept(HashScheme::pbkdf2_phc);
}

bool scrypt_bounded(uint64_t ln, uint64_t r, uint64_t p) {
  return ln >= 1 && ln <= 30 && r >= 1 && r <= 64 && p >= 1 && p <= 64 && (128ull * r * p) << ln <= kMaxScryptBytes;
}

HashCheck check_scrypt(std::string_view hash) {
  auto parts = split(hash, '$');
  if (parts.size() != 5) return refuse("an scrypt hash must be $scrypt$ln=..,r=..,p=..$salt$hash");
  auto p = params<3>(parts[2], {"ln", "r", "p"});
  if (!p) return refuse("scrypt parameters must be ln=..,r=..,p=..");
  if (!scrypt_bounded((*p)[0], (*p)[1], (*p)[2])) return refuse("scrypt parameters need over 1 GiB (128 * r * p * 2^ln)");
  auto salt = base64(parts[3]), out = base64(parts[4]);
  if (!salt || !out || out->empty() || out->size() > 128) return refuse("scrypt salt or hash is not base64");
  return accept(HashScheme::scrypt);
}

HashCheck check_firebase(std::string_view hash) {
  auto parts = split(hash, '$');
  if (parts.size() != 7) return refuse("a Firebase scrypt hash must be $firebase-scrypt$ln=..,r=..$salt$separator$key$hash");
  auto p = params<2>(parts[2], {"ln", "r"});
  if (!p || !scrypt_bounded((*p)[0], (*p)[1], 1)) return refuse("Firebase scrypt parameters missing or beyond 1 GiB");
  for (size_t i = 3; i < 7; ++i)
    if (!base64(parts[i])) return refuse("Firebase scrypt salt, separator, signer key or hash is not base64");
  auto key = base64(parts[5]), out = base64(parts[6]);
  if (key->empty() || key->size() != out->size()) return refuse("Firebase scrypt hash and signer key differ in length");
  return accept(HashScheme::firebase_scrypt);
}

bool same_bytes(const Bytes& a, const Bytes& b) { return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

// Each verifier answers nullopt when the library could not compute the hash at all (its memory
// could not be allocated), which is not a wrong password: see verify_foreign.
std::optional<bool> verify_crypt(const std::string& hash, std::string_view password) {
  auto data = std::make_unique<crypt_data>();
  std::string phrase(password);
  // crypt_rn gives a null pointer only when it could not hash (check_hash has vetted the setting).
  const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  std::optional<bool> same;
  if (out != nullptr)
    same = out[0] != '*' && std::strlen(out) == hash.size() && CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
  sodium_memzero(data.get(), sizeof(crypt_data));
  return same;
}

std::optional<bool> pbkdf2(std::string_view password, const Bytes& salt, uint64_t rounds, const EVP_MD* digest,
                           const Bytes& expected) {
  Bytes out(expected.size());
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(), static_cast<int>(salt.size()),
                        static_cast<int>(rounds), digest, static_cast<int>(out.size()), out.data()) != 1)
    return std::nullopt;
  return same_bytes(out, expected);
}

std::optional<Bytes> scrypt(std::string_view password, const Bytes& salt, uint64_t ln, uint64_t r, uint64_t p, size_t bytes) {
  Bytes out(bytes);
  uint64_t maxmem = ((128ull * r * p) << ln) + (1u << 20) + 128ull * r * p * 2;
  if (EVP_PBE_scrypt(password.data(), password.size(), salt.data(), salt.size(), 1ull << ln, r, p, maxmem, out.data(),
                     out.size()) != 1)
    return std::nullopt;
  return out;
}

std::optional<bool> verify_firebase(std::string_view hash, std::string_view password) {
  auto parts = split(hash, '$');
  auto p = params<2>(parts[2], {"ln", "r"});
  Bytes salt = *base64(parts[3]), separator = *base64(parts[4]), key = *base64(parts[5]), expected = *base64(parts[6]);
  salt.insert(salt.end(), separator.begin(), separator.end());
  auto derived = scrypt(password, salt, (*p)[0], (*p)[1], 1, 32);
  if (!derived) return std::nullopt;
  // The hash is the signer key encrypted with AES-256-CTR under the derived key, IV zero.
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  uint8_t iv[16] = {};
  Bytes out(key.size() + 16);
  int n = 0, tail = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_ctr(), nullptr, derived->data(), iv) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &n, key.data(), static_cast<int>(key.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + n, &tail) != 1) {
    sodium_memzero(derived->data(), derived->size());
    return std::nullopt;
  }
  out.resize(static_cast<size_t>(n + tail));
  sodium_memzero(derived->data(), derived->size());
  return same_bytes(out, expected);
}

}  // namespace

std::string_view scheme_name(HashScheme scheme) {
  switch (scheme) {
    case HashScheme::argon2id: return "argon2id";
    case HashScheme::argon2i: return "argon2i";
    case HashScheme::bcrypt: return "bcrypt";
    case HashScheme::sha512_crypt: return "sha512-crypt";
    case HashScheme::sha256_crypt: return "sha256-crypt";
    case HashScheme::md5_crypt: return "md5-crypt";
    case HashScheme::yescrypt: return "yescrypt";
    case HashScheme::pbkdf2_django: return "pbkdf2 (Django)";
    case HashScheme::pbkdf2_phc: return "pbkdf2 (PHC)";
    case HashScheme::scrypt: return "scrypt";
    case HashScheme::firebase_scrypt: return "firebase-scrypt";
  }
  return "?";
}

bool argon2_within_bounds(uint64_t memory_kib, uint64_t passes, uint64_t lanes) {
  return memory_kib <= kMaxArgonKib && passes <= kMaxArgonPasses && lanes != 0 && lanes <= 255;
}

HashCheck check_hash(std::string_view hash) {
  if (hash.empty()) return refuse("no password hash");
  if (hash.size() > kMaxHashText) return refuse("password hash over 512 bytes");
  for (char c : hash)
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f)
      return refuse("password hash holds a space, a control character or a non-ASCII byte");
  if (hash.starts_with("$argon2id$")) return check_argon2(hash, HashScheme::argon2id);
  if (hash.starts_with("$argon2i$")) return check_argon2(hash, HashScheme::argon2i);
  if (hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) return check_crypt(hash, HashScheme::bcrypt);
  if (hash.starts_with("$6$")) return check_crypt(hash, HashScheme::sha512_crypt);
  if (hash.starts_with("$5$")) return check_crypt(hash, HashScheme::sha256_crypt);
  if (hash.starts_with("$1$")) return check_crypt(hash, HashScheme::md5_crypt);
  if (hash.starts_with("$y$")) return check_crypt(hash, HashScheme::yescrypt);
  if (hash.starts_with("pbkdf2_")) return check_pbkdf2_django(hash);
  if (hash.starts_with("$pbkdf2$") || hash.starts_with("$pbkdf2-")) return check_pbkdf2_phc(hash);
  if (hash.starts_with("$scrypt$")) return check_scrypt(hash);
  if (hash.starts_with("$firebase-scrypt$")) return check_firebase(hash);
  return refuse("unknown password hash format (docs/IMPORT.md lists the known ones)");
}

std::optional<bool> verify_foreign(const std::string& hash, std::string_view password) {
  auto checked = check_hash(hash);
  if (!checked.scheme) return false;
  auto parts = split(hash, '$');
  switch (*checked.scheme) {
    case HashScheme::argon2id:
    case HashScheme::argon2i:
      return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    case HashScheme::bcrypt:
    case HashScheme::sha512_crypt:
    case HashScheme::sha256_crypt:
    case HashScheme::md5_crypt:
    case HashScheme::yescrypt:
      return verify_crypt(hash, password);
    case HashScheme::pbkdf2_django: {
      Bytes salt(parts[2].begin(), parts[2].end());  // Django uses the salt's text as it is
      return pbkdf2(password, salt, *number(parts[1]), pbkdf2_digest(parts[0].substr(7)), *base64(parts[3]));
    }
    case HashScheme::pbkdf2_phc:
      return pbkdf2(password, *base64(parts[3]), *phc_rounds(parts[2]), phc_pbkdf2_digest(parts[1]), *base64(parts[4]));
    case HashScheme::scrypt: {
      auto p = params<3>(parts[2], {"ln", "r", "p"});
      Bytes expected = *base64(parts[4]);
      auto out = scrypt(password, *base64(parts[3]), (*p)[0], (*p)[1], (*p)[2], expected.size());
      if (!out) return std::nullopt;
      return same_bytes(*out, expected);
    }
    case HashScheme::firebase_scrypt:
      return verify_firebase(hash, password);
  }
  return false;
}

std::optional<std::string> firebase_hash(std::string_view hash_b64, std::string_view salt_b64,
                                         const FirebaseParams& params, std::string& problem) {
  std::string text = "$firebase-scrypt$ln=" + std::to_string(params.mem_cost) + ",r=" + std::to_string(params.rounds) +
                     "$" + std::string(salt_b64) + "$" + params.salt_separator + "$" + params.signer_key + "$" +
                     std::string(hash_b64);
  auto checked = check_hash(text);
  if (!checked.scheme) {
    problem = checked.problem;
    return std::nullopt;
  }
  return text;
}

}  // namespace accounts
