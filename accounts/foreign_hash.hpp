#pragma once
// Password hashes made elsewhere, kept as imported (docs/IMPORT.md) until the user's next LOGIN
// re-hashes the password to Argon2id. Each scheme is verified by a library, never by crypto of
// our own: libsodium (Argon2), libxcrypt's crypt_rn (bcrypt, sha512/sha256/md5-crypt, yescrypt),
// OpenSSL 3 (PBKDF2-HMAC, scrypt, and AES-256-CTR for Firebase's modified scrypt).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace accounts {

enum class HashScheme {
  argon2id,       // $argon2id$v=19$m=..,t=..,p=..$salt$hash  (ours, and imported)
  argon2i,        // $argon2i$...
  bcrypt,         // $2a$ $2b$ $2y$
  sha512_crypt,   // $6$
  sha256_crypt,   // $5$
  md5_crypt,      // $1$
  yescrypt,       // $y$
  pbkdf2_django,  // pbkdf2_sha256$iterations$salt$base64  (also pbkdf2_sha1, pbkdf2_sha512)
  pbkdf2_phc,     // $pbkdf2-sha256$rounds$salt$hash  (passlib; $pbkdf2$ is SHA-1; also -sha512)
  scrypt,         // $scrypt$ln=..,r=..,p=..$salt$hash  (passlib / PHC)
  firebase_scrypt,  // $firebase-scrypt$ln=..,r=..$salt$separator$signer_key$hash  (see firebase_hash)
};

std::string_view scheme_name(HashScheme scheme);

// The scheme of `hash` if it is one we can verify and its parameters are within bounds (so that
// one imported row cannot make a login cost minutes or gigabytes); otherwise the reason it is not.
struct HashCheck {
  std::optional<HashScheme> scheme;
  std::string problem;  // when !scheme
};
HashCheck check_hash(std::string_view hash);

// Whether Argon2 parameters (memory in KiB, passes, lanes) are within what check_hash() accepts.
bool argon2_within_bounds(uint64_t memory_kib, uint64_t passes, uint64_t lanes);

// Verifies `password` against an imported hash (any scheme but argon2id, which secrets.cpp
// verifies itself). False for a wrong password and for a hash check_hash() refuses; nullopt when
// the hash could not be computed (libxcrypt, or OpenSSL's PBKDF2 or scrypt, could not allocate
// its memory), which must not count as a wrong password. (Argon2i and non-canonical Argon2id
// strings go to crypto_pwhash_str_verify, which answers the same for both, so false.)
// Slow by design: on the password pool only.
std::optional<bool> verify_foreign(const std::string& hash, std::string_view password);

// Firebase Auth's modified scrypt. `auth:export` gives each user's passwordHash and salt; the
// project's hash parameters (Console -> Authentication -> Password hash parameters) give the
// signer key, salt separator, rounds and memory cost. This builds the one string accountsd stores:
// $firebase-scrypt$ln=<mem_cost>,r=<rounds>$<salt>$<separator>$<signer_key>$<hash>, all in the
// standard base64 that Firebase uses. nullopt (with `problem` set) when a part is not base64.
struct FirebaseParams {
  std::string signer_key;      // base64
  std::string salt_separator;  // base64
  int rounds = 8;
  int mem_cost = 14;
};
std::optional<std::string> firebase_hash(std::string_view hash_b64, std::string_view salt_b64,
                                         const FirebaseParams& params, std::string& problem);

}  // namespace accounts
