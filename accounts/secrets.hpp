#pragma once
// Passwords and one-time tokens. Passwords are stored as Argon2id strings (libsodium); tokens are
// handed out once and kept only as a BLAKE2b-256 digest, compared in constant time.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace accounts {

using TokenDigest = std::array<uint8_t, 32>;

struct HashParams {
  uint64_t opslimit;
  uint64_t memlimit_kib;
};

// Call once before any other function here (libsodium's sodium_init). Throws if it fails.
void init_secrets();

std::string new_token();  // 256 random bits, URL-safe base64 without padding (43 characters)
TokenDigest digest_token(std::string_view token);
bool same_digest(const TokenDigest& a, const TokenDigest& b);  // constant time

// Slow by design: run these on the password pool, never on an I/O thread.
std::string hash_password(std::string_view password, const HashParams& params);
bool verify_password(const std::string& hash, std::string_view password);
bool needs_rehash(const std::string& hash, const HashParams& params);
bool is_password_hash(std::string_view hash);  // shape check for rows loaded from storage

}  // namespace accounts
