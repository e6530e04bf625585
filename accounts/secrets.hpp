#pragma once
// Passwords and one-time tokens. Passwords are stored as Argon2id strings (libsodium); tokens are
// handed out once and kept only as a digest, compared in constant time: SHA-256 for session tokens
// (checked on every WHOAMI), BLAKE2b-256 for the others and for sessions opened before schema 5.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace accounts {

using TokenDigest = std::array<uint8_t, 32>;
// What a session is found by in memory: the first half of its token's digest. 128 bits of a
// one-way function of 256 random bits leave a guess one chance in 2^128 per session, as good as
// 256 against an attacker who can only ask; PostgreSQL keeps the whole digest. The half keeps
// everything a WHOAMI reads in one cache line (accounts/session.hpp).
using SessionKey = std::array<uint8_t, 16>;
SessionKey session_key(const TokenDigest& digest);

struct HashParams {
  uint64_t opslimit;
  uint64_t memlimit_kib;
};

// Call once before any other function here (libsodium's sodium_init). Throws if it fails.
void init_secrets();

std::string new_token();  // 256 random bits, URL-safe base64 without padding (43 characters)
TokenDigest digest_token(std::string_view token);  // BLAKE2b-256: confirm and reset tokens
// SHA-256: session tokens. Every WHOAMI digests one, and OpenSSL computes it with the CPU's SHA
// instructions in about 90 ns, against 235 ns for libsodium's BLAKE2b (build/digest_speed;
// docs/BENCHMARKS.md, "Session tokens digested with SHA-256"). Either is a one-way function of
// 256 random bits.
TokenDigest session_digest(std::string_view token);
// True when `token` has the shape new_token() gives: 43 characters of A-Z a-z 0-9 - _. Every
// WHOAMI checks this first, sixteen bytes at a time.
bool token_shaped(std::string_view token);
bool same_digest(const TokenDigest& a, const TokenDigest& b);  // constant time

// Slow by design: run these on the password pool, never on an I/O thread. verify_password also
// takes the imported schemes of accounts/foreign_hash.hpp, and needs_rehash is true for them.
// hash_password throws, and verify_password answers nullopt, when a hash's work area cannot be
// allocated (out of memory): neither is a wrong password. That holds for every imported scheme
// too, but for Argon2i and Argon2id strings libsodium did not write (foreign_hash.hpp), which
// still answer false then.
std::string hash_password(std::string_view password, const HashParams& params);
// An Argon2id string with these parameters and a random salt and value: verifying a password
// against it costs what verifying against a real hash of these parameters costs, and none
// matches (it was hashed from no password). Made without hashing, so a start does not wait for it.
std::string unmatchable_hash(const HashParams& params);
std::optional<bool> verify_password(const std::string& hash, std::string_view password);
bool needs_rehash(const std::string& hash, const HashParams& params);
bool is_password_hash(std::string_view hash);  // a scheme we verify, within bounds (foreign_hash.hpp)

// A password hash as an account keeps it in memory. libsodium's Argon2id string
// (`$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>`, 97 characters in a 112-byte allocation plus a
// 32-byte std::string) is held as its parameters, 16-byte salt and 32-byte hash: 60 bytes in one
// 64-byte block behind an 8-byte pointer. Any other string is kept as text. text() always gives
// back exactly the string it was made from (a string is packed only if it re-encodes identically).
class PasswordHash {
 public:
  PasswordHash() = default;
  explicit PasswordHash(std::string_view text);
  // `text` as stored if check_hash() accepts it (foreign_hash.hpp), or nullopt and why not in
  // `problem`. A canonical Argon2id string is checked as it is packed, without parsing it twice:
  // the warm-load makes one of these per account.
  static std::optional<PasswordHash> checked(std::string_view text, std::string& problem);
  PasswordHash(const PasswordHash& other);
  PasswordHash(PasswordHash&&) noexcept = default;
  PasswordHash& operator=(const PasswordHash& other) { return *this = PasswordHash(other); }
  PasswordHash& operator=(PasswordHash&&) noexcept = default;

  std::string text() const;
  bool empty() const { return !block_; }
  bool packed() const;  // for tests: true when held in binary
  // The same hash (a string is packed only one way, so equal texts are equal blocks).
  bool operator==(const PasswordHash& other) const;

 private:
  size_t block_bytes() const;
  void hold(const void* packed);  // takes a copy of the packed form
  struct Deleter {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Deleter> block_;  // a tag byte, then the packed form or the text
};

}  // namespace accounts
