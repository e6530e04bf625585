// accounts/: tokens and their digests, Argon2id passwords, the password workers and packed hashes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <future>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "accounts/argon2_area.hpp"
#include "accounts/foreign_hash.hpp"
#include "accounts/password_pool.hpp"
#include "accounts/secrets.hpp"
#include "db/rows.hpp"

#include <sodium.h>

using namespace accounts;

TEST_CASE("tokens: 256 random bits, URL-safe, kept only as a digest", "[secrets]") {
  init_secrets();
  std::string t1 = new_token(), t2 = new_token();
  CHECK(t1.size() == 43);
  CHECK(t1 != t2);
  CHECK(t1.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  CHECK(same_digest(digest_token(t1), digest_token(t1)));
  CHECK_FALSE(same_digest(digest_token(t1), digest_token(t2)));
  // Sessions: SHA-256 (FIPS 180-2's "abc" vector, and its two-block one), not the BLAKE2b above.
  using db::hex;  // the digest's hex as the writer stores it
  CHECK(hex(session_digest("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(session_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK_FALSE(same_digest(session_digest(t1), digest_token(t1)));
  CHECK(same_digest(session_digest(t1), session_digest(t1)));
}

TEST_CASE("tokens: the shape check takes exactly 43 base64url characters, every byte at every place", "[secrets]") {
  for (int i = 0; i < 100; ++i) CHECK(token_shaped(new_token()));
  const std::string good = "AZaz09-_" + std::string(27, 'q') + "Mm5-_xyz";
  REQUIRE(good.size() == 43);
  REQUIRE(token_shaped(good));
  CHECK_FALSE(token_shaped(good.substr(0, 42)));
  CHECK_FALSE(token_shaped(good + "a"));
  CHECK_FALSE(token_shaped(""));
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t at = 0; at < good.size(); ++at)
    for (int byte = 0; byte < 256; ++byte) {
      std::string probe = good;
      probe[at] = static_cast<char>(byte);
      INFO("byte " << byte << " at " << at);
      REQUIRE(token_shaped(probe) == (alphabet.find(static_cast<char>(byte)) != std::string::npos));
    }
}

TEST_CASE("passwords: Argon2id, verification, rehash when the parameters change", "[secrets]") {
  init_secrets();
  HashParams cheap{1, 8}, stronger{2, 16};
  std::string hash = hash_password("correct horse", cheap);
  CHECK(hash.rfind("$argon2id$v=19$", 0) == 0);
  CHECK(is_password_hash(hash));
  CHECK_FALSE(is_password_hash("md5:abc"));
  CHECK(verify_password(hash, "correct horse") == true);
  CHECK(verify_password(hash, "correct horsE") == false);
  CHECK_FALSE(needs_rehash(hash, cheap));
  CHECK(needs_rehash(hash, stronger));
}

// Runs `job` on one of the pool's workers and waits for it. No Catch2 assertion runs on the worker:
// they are not thread-safe, and a throw there would end the process.
template <class Job>
auto on_worker(PasswordPool& pool, Job job) {
  std::promise<decltype(job())> result;
  PasswordPool::Work work = [&](bool run) {
    if (run) result.set_value(job());
    else result.set_exception(std::make_exception_ptr(std::runtime_error("the password pool stopped")));
  };
  REQUIRE(pool.try_submit(work));
  return result.get_future().get();
}

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

TEST_CASE("password workers keep Argon2's work area, wiped after every hash, and only up to its size", "[secrets]") {
  init_secrets();
  const HashParams params{1, 1024};  // one pass: what stays in the area is the cheapest to exploit
  PasswordPool pool(1, 8, params.memlimit_kib * 1024);
  auto before = argon2_area::counts();

  struct Seen {
    std::string hash;
    size_t area_size;
    bool wiped;
  };
  auto hash_and_look = [&](const char* password, HashParams with) {
    return on_worker(pool, [&] {
      std::string hash = hash_password(password, with);
      auto area = argon2_area::kept_area_of_this_thread();
      return Seen{hash, area.size(), all_zero(area)};
    });
  };

  // The first hash maps the area; what Argon2 wrote there is gone when libsodium hands it back.
  Seen first = hash_and_look("correct horse", params);
  CHECK(first.area_size == 1024 * 1024);
  CHECK(first.wiped);
  CHECK(argon2_area::counts().mapped == before.mapped + 1);
  CHECK(argon2_area::counts().reused == before.reused);

  // The second reuses it, and both hashes are right, checked on a thread that keeps no area.
  Seen second = hash_and_look("battery staple", params);
  CHECK(second.wiped);
  CHECK(argon2_area::counts().mapped == before.mapped + 1);
  CHECK(argon2_area::counts().reused == before.reused + 1);
  CHECK(verify_password(first.hash, "correct horse") == true);
  CHECK(verify_password(first.hash, "battery staple") == false);
  CHECK(verify_password(second.hash, "battery staple") == true);
  CHECK(argon2_area::kept_area_of_this_thread().empty());

  // Verifying on the worker reuses it too, and still tells a wrong password from a right one.
  CHECK(on_worker(pool, [&] { return verify_password(first.hash, "correct horse"); }) == true);
  CHECK(on_worker(pool, [&] { return verify_password(first.hash, "correct horsE"); }) == false);
  CHECK(argon2_area::counts().reused == before.reused + 3);
  CHECK(argon2_area::counts().mapped == before.mapped + 1);

  // A hash that needs more memory than the area (an imported hash's own parameters) gets a mapping
  // of its own, as without keeping; the kept area stays as it was.
  Seen bigger = hash_and_look("correct horse", HashParams{1, 2048});
  CHECK(bigger.area_size == 1024 * 1024);
  CHECK(bigger.wiped);
  CHECK(argon2_area::counts().reused == before.reused + 3);
  CHECK(argon2_area::counts().mapped == before.mapped + 1);
  CHECK(verify_password(bigger.hash, "correct horse") == true);
}

TEST_CASE("the hash verified for emails of no account: a real hash's parameters and cost, matching no password", "[secrets]") {
  init_secrets();
  for (HashParams params : {HashParams{1, 8}, HashParams{2, 1024}, HashParams{3, 65536}}) {
    std::string real = hash_password("correct horse", params), dummy = unmatchable_hash(params);
    INFO(dummy);
    // The same text up to the salt, i.e. the same Argon2id parameters, and no re-hash wanted.
    CHECK(dummy.substr(0, dummy.rfind('$', dummy.rfind('$') - 1)) == real.substr(0, real.rfind('$', real.rfind('$') - 1)));
    CHECK(dummy.size() == real.size());
    CHECK(is_password_hash(dummy));
    CHECK_FALSE(needs_rehash(dummy, params));
    if (params.memlimit_kib <= 1024) CHECK(verify_password(dummy, "correct horse") == false);
    CHECK(unmatchable_hash(params) != dummy);  // a fresh salt and value each time
  }
}

TEST_CASE("password hashes: libsodium's Argon2id strings are packed and give back the same text", "[secrets]") {
  init_secrets();
  for (auto params : {HashParams{1, 8}, HashParams{2, 64}, HashParams{3, 1024}}) {
    std::string text = hash_password("correct horse", params);
    PasswordHash packed(text);
    CHECK(packed.packed());
    CHECK(packed.text() == text);
    PasswordHash copy = packed;
    CHECK(copy.text() == text);
    CHECK(verify_password(copy.text(), "correct horse") == true);
    CHECK(verify_password(copy.text(), "wrong horse") == false);
  }
  // Many random salts and hashes: every base64 character, in every position, decodes right.
  for (int i = 0; i < 200; ++i) {
    std::string text = hash_password("pw" + std::to_string(i), HashParams{1, 8});
    PasswordHash packed(text);
    REQUIRE(packed.packed());
    REQUIRE(packed.text() == text);
  }
  // Anything that would not re-encode to the same string is kept as it is.
  const std::string kept[] = {
      "$argon2id$v=19$m=065536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      "$argon2id$v=19$m=65536,t=2,p=1$c2hvcnQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaA",
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      "$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdB$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",  // stray bits
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2Fs!A$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2Fs_A$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",  // URL-safe
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2",  // short
      "$argon2id$v=19$m=65536,t=2,p=1$$",
      "$argon2id$v=19$m=,t=2,p=1$x$y",
      "$argon2id$v=19$m=65536",
      "plain"};
  for (const auto& text : kept) {
    PasswordHash hash(text);
    CHECK_FALSE(hash.packed());
    CHECK(hash.text() == text);
    CHECK(PasswordHash(hash).text() == text);
  }
  CHECK(PasswordHash().empty());
  CHECK(PasswordHash("").text().empty());
}

// pack() takes a string only in the spelling that libsodium's encoder writes, by parsing, not by
// encoding it again. Held here to the encoder itself: every character in the positions where a
// spelling can go wrong (the salt's and the hash's first and last, the numbers' leading digits).
TEST_CASE("password hashes: packed exactly when libsodium would write the same text", "[secrets]") {
  init_secrets();
  auto libsodium_writes = [](const std::string& text) {  // the reference: decode, then encode again
    unsigned long m, t, p;
    char salt_text[64] = {}, hash_text[64] = {};
    if (std::sscanf(text.c_str(), "$argon2id$v=19$m=%lu,t=%lu,p=%lu$%63[^$]$%63s", &m, &t, &p, salt_text, hash_text) != 5)
      return false;
    unsigned char salt[16], hash[32];
    size_t salt_len = 0, hash_len = 0;
    const char* end = nullptr;
    constexpr int kVariant = sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    if (sodium_base642bin(salt, sizeof salt, salt_text, std::strlen(salt_text), nullptr, &salt_len, &end, kVariant) != 0 ||
        *end != 0 || salt_len != sizeof salt)
      return false;
    if (sodium_base642bin(hash, sizeof hash, hash_text, std::strlen(hash_text), nullptr, &hash_len, &end, kVariant) != 0 ||
        *end != 0 || hash_len != sizeof hash)
      return false;
    char salt_out[sodium_base64_ENCODED_LEN(16, kVariant)], hash_out[sodium_base64_ENCODED_LEN(32, kVariant)];
    sodium_bin2base64(salt_out, sizeof salt_out, salt, sizeof salt, kVariant);
    sodium_bin2base64(hash_out, sizeof hash_out, hash, sizeof hash, kVariant);
    return text == "$argon2id$v=19$m=" + std::to_string(m) + ",t=" + std::to_string(t) + ",p=" + std::to_string(p) +
                       "$" + salt_out + "$" + hash_out;
  };
  const std::string good = hash_password("correct horse", HashParams{1, 8});
  const size_t salt_at = good.find('$', good.find("p=")) + 1, hash_at = good.rfind('$') + 1;
  std::vector<std::string> variants;
  const std::string characters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=!$. ";
  for (size_t at : {salt_at, hash_at - 2, hash_at, good.size() - 1})
    for (char c : characters) {
      std::string v = good;
      v[at] = c;
      variants.push_back(v);
    }
  const size_t m_at = good.find("m=") + 2;
  for (const char* insert : {"0", "00", "1", "9"}) variants.push_back(good.substr(0, m_at) + insert + good.substr(m_at));
  variants.push_back(good.substr(0, m_at) + "0" + good.substr(good.find(',', m_at)));  // m=0
  int packed = 0;
  for (const auto& text : variants) {
    INFO(text);
    PasswordHash hash(text);
    CHECK(hash.packed() == libsodium_writes(text));
    CHECK(hash.text() == text);
    packed += hash.packed();
  }
  CHECK(packed > 20);  // the comparison saw both verdicts
  CHECK(packed < static_cast<int>(variants.size()) - 20);
}

// The warm-load's one check per hash must refuse exactly what check_hash() refuses, packed or not.
TEST_CASE("password hashes: checked() agrees with check_hash(), also on a packable string out of bounds", "[secrets]") {
  init_secrets();
  std::string good = hash_password("correct horse", HashParams{1, 8});
  auto with_params = [&good](const std::string& params) {  // the same salt and hash, other parameters
    return "$argon2id$v=19$" + params + good.substr(good.find('$', good.find("m=")));
  };
  const std::string cases[] = {
      good,
      with_params("m=65536,t=2,p=1"),
      with_params("m=1048576,t=64,p=255"),  // at the bounds
      with_params("m=1048577,t=2,p=1"),     // over them, each in turn: canonical, so pack() takes them
      with_params("m=65536,t=65,p=1"),
      with_params("m=65536,t=2,p=0"),
      with_params("m=65536,t=2,p=256"),
      "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  // bcrypt: kept as text
      "$argon2id$v=19$m=65536,t=2,p=1$c2hvcnQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",  // short salt, still valid
      "$argon2id$v=19$m=65536,t=2,p=1$$",
      "plain",
      ""};
  for (const auto& text : cases) {
    INFO(text);
    std::string problem;
    auto stored = PasswordHash::checked(text, problem);
    auto expected = check_hash(text);
    REQUIRE(stored.has_value() == expected.scheme.has_value());
    if (stored) {
      CHECK(stored->text() == text);
      CHECK(*stored == PasswordHash(text));
    } else {
      CHECK(problem == expected.problem);
    }
  }
  std::string problem;
  CHECK(PasswordHash::checked(good, problem)->packed());
  CHECK_FALSE(PasswordHash::checked(with_params("m=1048577,t=2,p=1"), problem).has_value());
}
