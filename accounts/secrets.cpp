#include "accounts/secrets.hpp"

#include <sodium.h>

#include <stdexcept>

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

bool verify_password(const std::string& hash, std::string_view password) {
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

bool needs_rehash(const std::string& hash, const HashParams& params) {
  return crypto_pwhash_str_needs_rehash(hash.c_str(), params.opslimit,
                                        static_cast<size_t>(params.memlimit_kib) * 1024) != 0;
}

bool is_password_hash(std::string_view hash) {
  return hash.starts_with("$argon2id$v=19$") && hash.size() < crypto_pwhash_STRBYTES;
}

}  // namespace accounts
