// accounts/: emails, ids, tokens, the state machine's whole table and the index under races.
#include <catch2/catch.hpp>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <future>
#include <latch>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <span>
#include <thread>
#include <typeinfo>
#include <vector>

#include "accounts/account.hpp"
#include "accounts/argon2_area.hpp"
#include "accounts/clock.hpp"
#include "accounts/compact_string.hpp"
#include "accounts/email.hpp"
#include "accounts/foreign_hash.hpp"
#include "accounts/index.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/password_pool.hpp"
#include "accounts/throttle.hpp"
#include "accounts/secrets.hpp"
#include "accounts/session.hpp"
#include "accounts/uuid.hpp"
#include "db/rows.hpp"

#include <sodium.h>

using namespace accounts;
using protocol::Error;

TEST_CASE("email: accepted forms are normalized by lower-casing ASCII only", "[email]") {
  CHECK(check_email("Alice@Example.COM").normalized == "alice@example.com");
  CHECK(check_email("a.b+tag@sub.example.co.uk").normalized == "a.b+tag@sub.example.co.uk");
  CHECK(check_email("\xc3\x89lise@example.com").normalized == "\xc3\x89lise@example.com");  // É kept as is
  CHECK(check_email(std::string(64, 'a') + "@example.com").normalized.has_value());
  std::string longest = std::string(64, 'a') + "@" + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                        std::string(61, 'd');
  REQUIRE(longest.size() == 254);
  CHECK(check_email(longest).normalized.has_value());
}

TEST_CASE("email: the awkward cases are refused with a reason", "[email]") {
  for (const char* bad : {"", "plain", "@example.com", "a@", "a@b", "a@.b.com", "a@b..com", "a@b.com.", "a@@b.com",
                          "a@b@c.com", "a b@c.com", "a\t@b.com", "a@b.com\x7f", "\"a@b\"@c.com", ".@"}) {
    auto checked = check_email(bad);
    CHECK_FALSE(checked.normalized);
    CHECK_FALSE(checked.problem.empty());
  }
  CHECK_FALSE(check_email(std::string(65, 'a') + "@example.com").normalized);
  CHECK_FALSE(check_email(std::string(64, 'a') + "@" + std::string(190, 'b') + ".com").normalized);  // 259 bytes
}

TEST_CASE("UUIDv7: canonical text, version and variant bits, time order, parsing", "[uuid]") {
  Uuid a = Uuid::v7(1'700'000'000'000);
  Uuid b = Uuid::v7(1'700'000'000'001);
  std::string text = a.to_string();
  CHECK(text.size() == 36);
  CHECK(text[8] == '-');
  CHECK(text[14] == '7');
  CHECK(std::string("89ab").find(text[19]) != std::string::npos);
  CHECK(text.find_first_of("ABCDEF") == std::string::npos);
  CHECK(a < b);
  CHECK(Uuid::parse(text) == a);
  CHECK(Uuid::parse(text.substr(0, 8) + text.substr(9) + "0") == std::nullopt);  // a dash in the wrong place
  CHECK(Uuid::parse("01A20CC1-7344-7DAE-AA15-339ECE76400D").has_value());
  CHECK_FALSE(Uuid::parse("01a20cc1-7344-7dae-aa15-339ece76400"));
  CHECK_FALSE(Uuid::parse("01a20cc1x7344-7dae-aa15-339ece76400d"));
  CHECK_FALSE(Uuid::parse("g1a20cc1-7344-7dae-aa15-339ece76400d"));
  // Every byte value in every position: a hex digit where a digit belongs, a dash where a dash
  // does, and nothing else is accepted; what is accepted reads back as itself, in lower case.
  const std::string good = "0123abcd-ef45-6789-ABCD-ef0123456789";
  for (size_t at = 0; at < good.size(); ++at) {
    bool dash = at == 8 || at == 13 || at == 18 || at == 23;
    for (int byte = 0; byte < 256; ++byte) {
      std::string probe = good;
      probe[at] = static_cast<char>(byte);
      bool hex = std::isxdigit(byte) != 0;
      auto parsed = Uuid::parse(probe);
      INFO("byte " << byte << " at " << at);
      REQUIRE(parsed.has_value() == (dash ? byte == '-' : hex));
      if (parsed) {
        std::string lower = probe;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        REQUIRE(parsed->to_string() == lower);
      }
    }
  }
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) seen.insert(Uuid::v7(1).to_string());
  CHECK(seen.size() == 10000);  // same millisecond, still unique
}

TEST_CASE("clock: a deadline near a coarse reading is decided by the exact clock", "[clock]") {
  int exact_reads = 0;
  auto exact_at = [&](int64_t t) {
    return [&exact_reads, t] {
      ++exact_reads;
      return t;
    };
  };
  // Far away: the coarse reading decides, and the exact clock is not read.
  CHECK(deadline_ahead(10'000, 10'000 - kCoarseMarginMs - 1, exact_at(20'000)));
  CHECK(exact_reads == 0);
  // Within the margin, or past it: only the exact clock decides.
  CHECK(deadline_ahead(10'000, 10'000 - kCoarseMarginMs, exact_at(9'999)));
  CHECK_FALSE(deadline_ahead(10'000, 9'990, exact_at(10'000)));
  CHECK_FALSE(deadline_ahead(10'000, 10'050, exact_at(10'050)));
  CHECK(exact_reads == 3);
  // The coarse clocks are never ahead of an exact reading taken after them, and far less than the
  // margin behind one taken before (a thread preempted in between only narrows that gap).
  for (int i = 0; i < 1000; ++i) {
    int64_t wall_before = now_ms(), steady_before = steady_ms();
    int64_t wall = coarse_wall_ms(), steady = coarse_steady_ms();
    int64_t wall_after = now_ms(), steady_after = steady_ms();
    REQUIRE(wall <= wall_after);
    REQUIRE(wall_before - wall < kCoarseMarginMs);
    REQUIRE(steady <= steady_after);
    REQUIRE(steady_before - steady < kCoarseMarginMs);
  }
}

TEST_CASE("the view: the six fields, an email quoted when it must be, long emails whole", "[record]") {
  AccountRecord record;
  record.id = *Uuid::parse("01a20cc1-7344-7dae-aa15-339ece76400d");
  record.state = State::deactivated;
  record.created_ms = 1'700'000'000'123;
  record.updated_ms = 1'700'000'000'456;
  record.version = 18'446'744'073'709'551'615ull;
  const std::string rest = " state=deactivated created=2023-11-14T22:13:20.123Z updated=2023-11-14T22:13:20.456Z"
                           " version=18446744073709551615";
  for (std::string email : std::vector<std::string>{"a@b.example", "\"a b\"@b.example", "x=y@b.example",
                                                    std::string(60, 'e') + "@b.example"}) {
    record.email = email;
    auto reply = protocol::Reply::ok();
    add_view(reply, record);
    std::string shown = protocol::Reply::ok().field("email", email).line().substr(3);
    CHECK(reply.line() == "OK id=01a20cc1-7344-7dae-aa15-339ece76400d " + shown + rest);
  }
  auto reply = protocol::Reply::ok();
  add_session_fields(reply, record.id, 0);
  CHECK(reply.line() == "OK session=01a20cc1-7344-7dae-aa15-339ece76400d expires=1970-01-01T00:00:00.000Z");
}

TEST_CASE("UUID hashes spread sequential ids over the low bits the index uses", "[uuid]") {
  std::set<size_t> buckets;
  for (uint64_t g = 1; g <= 4096; ++g) {
    Uuid id;
    for (int i = 0; i < 8; ++i) id.bytes[15 - i] = static_cast<uint8_t>(g >> (8 * i));  // 0000...0001, ...0002
    buckets.insert(UuidHash{}(id) & 4095);
  }
  CHECK(buckets.size() > 2000);  // about 2590 expected for a uniform hash; 1 with the old one
}

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

TEST_CASE("the state machine: every action from every state", "[lifecycle]") {
  using S = State;
  using A = Action;
  struct Row {
    A action;
    S from;
    bool ever_confirmed;
    bool allowed;
    S next;
    Error error;
  };
  const Error none = Error::internal;
  const Row table[] = {
      {A::confirm, S::unconfirmed, false, true, S::active, none},
      {A::confirm, S::active, true, false, S::active, Error::invalid_state},
      {A::confirm, S::deactivated, false, false, S::deactivated, Error::invalid_state},
      {A::resend, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::resend, S::active, true, false, S::active, Error::invalid_state},
      {A::resend, S::deactivated, false, false, S::deactivated, Error::invalid_state},
      {A::login, S::unconfirmed, false, false, S::unconfirmed, Error::not_confirmed},
      {A::login, S::active, true, true, S::active, none},
      {A::login, S::deactivated, true, false, S::deactivated, Error::deactivated},
      {A::change_email, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::change_email, S::active, true, true, S::active, none},
      {A::change_email, S::deactivated, true, true, S::deactivated, none},
      {A::change_password, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::change_password, S::active, true, true, S::active, none},
      {A::change_password, S::deactivated, true, true, S::deactivated, none},
      {A::reset_request, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::reset_request, S::active, true, true, S::active, none},
      {A::reset_request, S::deactivated, true, false, S::deactivated, Error::invalid_state},
      {A::reset_password, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::reset_password, S::active, true, true, S::active, none},
      {A::reset_password, S::deactivated, true, false, S::deactivated, Error::invalid_state},
      {A::deactivate, S::unconfirmed, false, true, S::deactivated, none},
      {A::deactivate, S::active, true, true, S::deactivated, none},
      {A::deactivate, S::deactivated, true, false, S::deactivated, Error::invalid_state},
      {A::reactivate, S::unconfirmed, false, false, S::unconfirmed, Error::invalid_state},
      {A::reactivate, S::active, true, false, S::active, Error::invalid_state},
      {A::reactivate, S::deactivated, true, true, S::active, none},
      {A::reactivate, S::deactivated, false, true, S::unconfirmed, none},
      {A::remove, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::remove, S::active, true, true, S::active, none},
      {A::remove, S::deactivated, true, true, S::deactivated, none},
  };
  for (const auto& row : table) {
    INFO("action " << static_cast<int>(row.action) << " from " << state_name(row.from));
    auto t = transition(row.from, row.action, row.ever_confirmed);
    CHECK(t.allowed == row.allowed);
    if (row.allowed) CHECK(t.next == row.next);
    else CHECK(t.error == row.error);
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

TEST_CASE("compact strings: up to 31 bytes inline, longer on the heap, the same text either way", "[record]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{30}, size_t{31}, size_t{32}, size_t{200}}) {
    std::string text(n, 'x');
    for (size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + i % 26);
    CompactString s(text);
    CHECK(s.size() == n);
    CHECK(s.view() == text);
    CHECK(s == text);
    CHECK(s.empty() == (n == 0));
    // Inline means the bytes are inside the object itself.
    bool inside = s.data() >= reinterpret_cast<const char*>(&s) && s.data() < reinterpret_cast<const char*>(&s + 1);
    CHECK(inside == (n <= CompactString::kInline));

    CompactString copy(s);
    CHECK(copy == s);
    CHECK((n == 0 || copy.data() != s.data()));  // a copy owns its bytes
    CompactString moved(std::move(copy));
    CHECK(moved.view() == text);
    CHECK(copy.empty());  // NOLINT: a moved-from string is empty and usable
    copy = "again";
    CHECK(copy == "again");

    CompactString target("something else entirely, longer than thirty-one bytes");
    target = s;
    CHECK(target == text);
    target = std::move(moved);
    CHECK(target == text);
    CompactString& alias = target;
    target = alias;  // self-assignment keeps the text
    CHECK(target == text);
    target = std::move(alias);
    CHECK(target == text);
  }
  CHECK_FALSE(CompactString("a@example.com") == CompactString("b@example.com"));
  CHECK_FALSE(CompactString("a@example.com") == std::string_view("a@example.co"));
}

TEST_CASE("records compare equal only when every field is the same (a replica's reload skips those)", "[secrets][record]") {
  init_secrets();
  std::string one = hash_password("one", HashParams{1, 8}), two = hash_password("two", HashParams{1, 8});
  CHECK(PasswordHash(one) == PasswordHash(one));
  CHECK_FALSE(PasswordHash(one) == PasswordHash(two));
  CHECK(PasswordHash("plain") == PasswordHash("plain"));
  CHECK_FALSE(PasswordHash("plain") == PasswordHash("plainer"));
  CHECK_FALSE(PasswordHash("plain") == PasswordHash());
  CHECK(PasswordHash() == PasswordHash(""));

  AccountRecord a;
  a.id = Uuid::v7(1);
  a.email = "a@example.com";
  a.password_hash = PasswordHash(one);
  a.confirm = PendingToken(digest_token("t"), 5);
  AccountRecord b = a;
  CHECK(a == b);
  b.confirm = PendingToken(digest_token("t"), 6);
  CHECK_FALSE(a == b);
  b = a;
  b.confirm = {};
  CHECK_FALSE(a == b);
  b = a;
  b.password_hash = PasswordHash(two);
  CHECK_FALSE(a == b);
  b = a;
  b.version = 2;
  CHECK_FALSE(a == b);
  b = a;
  b.email = "b@example.com";
  CHECK_FALSE(a == b);
}

TEST_CASE("index: threads racing insert-if-absent on the same keys get one winner per key", "[index]") {
  IndexRuntime runtime;
  AccountIndex index;
  const int threads = 4, keys = 20000;
  std::vector<std::vector<std::shared_ptr<Account>>> mine(threads);
  std::atomic<int> wins{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      IndexThread attached;
      start.arrive_and_wait();
      for (int k = 0; k < keys; ++k) {
        AccountRecord r;
        r.email = "user" + std::to_string(k) + "@example.com";
        auto account = std::make_shared<Account>(r, Account::Presence::live);
        if (index.reserve_email(r.email, account)) {
          wins.fetch_add(1);
          mine[t].push_back(account);
        }
      }
    });
  for (auto& t : pool) t.join();
  CHECK(wins.load() == keys);
  CHECK(index.email_count() == static_cast<size_t>(keys));
  // The winner of each key is the one the index returns.
  for (const auto& owned : mine)
    for (const auto& account : owned) REQUIRE(index.by_email(account->record().email) == account);

  // Erase frees a key for the next insert; ids work the same way.
  index.erase_email("user7@example.com");
  CHECK(index.by_email("user7@example.com") == nullptr);
  Uuid id = Uuid::v7(5);
  AccountRecord record;
  record.id = id;
  record.email = "user7@example.com";
  auto again = std::make_shared<Account>(record, Account::Presence::live);
  CHECK(index.reserve_email("user7@example.com", again));
  CHECK(index.insert_id(again));
  CHECK_FALSE(index.insert_id(again));  // once in its life
  CHECK_FALSE(index.insert_id(std::make_shared<Account>(record, Account::Presence::live)));  // the id is taken
  CHECK(index.by_id(id) == again);
  index.erase_id(id);
  CHECK(index.by_id(id) == nullptr);
  // Whoever holds an account the index let go of still has a valid one (ASan would see otherwise).
  index.erase_email("user7@example.com");
  CHECK(again->record().email == "user7@example.com");
}

TEST_CASE("index: lookups run concurrently with inserts and erases", "[index]") {
  IndexRuntime runtime;
  AccountIndex index;
  std::atomic<bool> done{false};
  std::atomic<long> found{0};
  std::thread reader([&] {
    IndexThread attached;
    while (!done.load())
      for (int k = 0; k < 100; ++k)
        if (index.by_email("k" + std::to_string(k) + "@x.io")) found.fetch_add(1);
  });
  for (int round = 0; round < 200; ++round)
    for (int k = 0; k < 100; ++k) {
      std::string key = "k" + std::to_string(k) + "@x.io";
      index.reserve_email(key, std::make_shared<Account>(AccountRecord{}, Account::Presence::live));
      index.erase_email(key);
    }
  done = true;
  reader.join();
  CHECK(index.email_count() == 0);
  SUCCEED("no crash, no leak reported, readers never blocked writers");
}

TEST_CASE("index: grows from empty while readers find every key inserted before their lookup", "[index]") {
  IndexRuntime runtime;
  AccountIndex index;
  const int keys = 200000;
  std::atomic<int> inserted{0};
  std::atomic<long> misses{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      IndexThread attached;
      uint64_t x = 88172645463325252ull + r;
      while (inserted.load() < keys) {
        int upto = inserted.load();
        if (upto == 0) continue;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = static_cast<int>(x % static_cast<uint64_t>(upto));
        Uuid id{};
        for (int b = 0; b < 4; ++b) id.bytes[15 - b] = static_cast<uint8_t>(k >> (8 * b));
        if (!index.by_id(id)) misses.fetch_add(1);
        if (!index.by_email("g" + std::to_string(k) + "@x.io")) misses.fetch_add(1);
        lookups.fetch_add(1);
      }
    });
  for (int k = 0; k < keys; ++k) {
    AccountRecord record;
    for (int b = 0; b < 4; ++b) record.id.bytes[15 - b] = static_cast<uint8_t>(k >> (8 * b));
    auto account = std::make_shared<Account>(record, Account::Presence::live);
    REQUIRE(index.insert_id(account));
    REQUIRE(index.reserve_email("g" + std::to_string(k) + "@x.io", account));
    inserted.store(k + 1);
  }
  for (auto& t : readers) t.join();
  CHECK(misses.load() == 0);
  CHECK(lookups.load() > 0);
  CHECK(index.id_count() == static_cast<size_t>(keys));
  CHECK(index.email_count() == static_cast<size_t>(keys));
}

TEST_CASE("pending tokens: what every change ends", "[lifecycle][tokens]") {
  using A = Action;
  struct Row {
    A action;
    bool keeps_confirm;
    bool keeps_reset;
  };
  // The table of docs/PROTOCOL.md, "Pending tokens".
  const Row table[] = {
      {A::confirm, true, true},          {A::resend, true, true},
      {A::login, true, true},            {A::change_email, false, false},
      {A::change_password, true, false}, {A::reset_request, true, true},
      {A::reset_password, true, false},  {A::deactivate, true, false},
      {A::reactivate, true, true},       {A::remove, false, false},
  };
  for (const auto& row : table) {
    INFO("action " << static_cast<int>(row.action));
    AccountRecord r;
    r.confirm = PendingToken(digest_token("c"), 1);
    r.reset = PendingToken(digest_token("r"), 1);
    drop_invalidated_tokens(row.action, r);
    CHECK(r.confirm.present() == row.keeps_confirm);
    CHECK(r.reset.present() == row.keeps_reset);
  }
}

TEST_CASE("login throttle: per source, an hourly limit across sources, known sources exempt", "[throttle]") {
  init_secrets();
  ThrottlePolicy policy{3, 4000, 10};
  LoginThrottle t;
  SourceKey owner = source_key("198.51.100.7"), attacker = source_key("203.0.113.9");
  int64_t now = 1'000'000;
  t.succeeded(owner);
  CHECK(!t.failed(policy, attacker, now));
  CHECK(!t.failed(policy, attacker, now));
  CHECK(t.failed(policy, attacker, now));  // the third failure locks out (accountsd_lockouts_total counts it)
  CHECK(t.wait_ms(policy, attacker, now) == 4000);   // the attacker's source is locked out
  CHECK(t.wait_ms(policy, owner, now) == 0);         // the owner is not
  CHECK(t.wait_ms(policy, source_key("192.0.2.1"), now) == 0);
  CHECK(t.wait_ms(policy, attacker, now + 4001) == 0);  // a lock always runs out

  // Ten failures from ten sources spend the hour: new sources wait, known ones do not.
  LoginThrottle spread;
  spread.succeeded(owner);
  for (int i = 0; i < 10; ++i) spread.failed(policy, source_key("10.0.0." + std::to_string(i)), now + i);
  CHECK(spread.wait_ms(policy, source_key("10.0.1.1"), now + 10) > 3'500'000);
  CHECK(spread.wait_ms(policy, owner, now + 10) == 0);
  CHECK(spread.wait_ms(policy, source_key("10.0.1.1"), now + 3'600'001) == 0);  // the hour is over
  spread.password_changed();
  CHECK(spread.wait_ms(policy, source_key("10.0.1.1"), now + 10) == 0);
  CHECK(spread.wait_ms(policy, owner, now + 10) == 0);

  // IPv6 counts per /64; IPv4-mapped addresses as IPv4; other text as it is.
  CHECK(source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9"));
  CHECK(source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1"));
  CHECK(source_key("::ffff:192.0.2.1") == source_key("192.0.2.1"));
  CHECK(source_key("device-42") != source_key("device-43"));
  CHECK(source_key("") == source_key(""));

  // Tracking is bounded per account, and what is forgotten first is an unlocked streak.
  LoginThrottle many;
  for (int i = 0; i < 3; ++i) many.failed(policy, attacker, now);
  for (int i = 0; i < 40; ++i) many.failed(policy, source_key("192.0.2." + std::to_string(i)), now);
  CHECK(many.wait_ms(policy, attacker, now) > 0);

  UnknownEmailThrottles unknown(2);
  for (int i = 0; i < 3; ++i) unknown.failed(policy, email_key("a@x.io"), attacker, now);
  CHECK(unknown.wait_ms(policy, email_key("a@x.io"), attacker, now) == 4000);
  unknown.failed(policy, email_key("b@x.io"), attacker, now);
  unknown.failed(policy, email_key("c@x.io"), attacker, now);
  CHECK(unknown.size() == 2);  // bounded: the oldest is forgotten
}

TEST_CASE("timestamps: RFC 3339 UTC with milliseconds, the same as gmtime gives", "[record]") {
  CHECK(format_time(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_time(951782400123) == "2000-02-29T00:00:00.123Z");  // a leap day
  CHECK(format_time(1795527134276) == "2026-11-24T13:32:14.276Z");
  CHECK(format_time(253402300799999) == "9999-12-31T23:59:59.999Z");
  CHECK(format_time(-62167219200000) == "0000-01-01T00:00:00.000Z");
  CHECK(format_time(-1) == "1969-12-31T23:59:59.999Z");
  // Outside the years RFC 3339 writes: the nearest end, never an overflow.
  CHECK(format_time(INT64_MAX) == "9999-12-31T23:59:59.999Z");
  CHECK(format_time(INT64_MIN) == "0000-01-01T00:00:00.000Z");
  // Each thread keeps the last days' dates: times on one day, then across days and back again,
  // and days eight apart, which share a slot.
  for (int64_t t : {1795527134276, 1795527134277, 1795478400000, 1795564799999, 1795564800000, 1795527134276})
    CHECK(format_time(t).substr(0, 10) == (t < 1795478400000 ? "2026-11-23" : t < 1795564800000 ? "2026-11-24" : "2026-11-25"));
  CHECK(format_time(1795564799999) == "2026-11-24T23:59:59.999Z");
  CHECK(format_time(1795564800000) == "2026-11-25T00:00:00.000Z");
  CHECK(format_time(1795564800000 + 8 * 86'400'000) == "2026-12-03T00:00:00.000Z");
  CHECK(format_time(1795564800000) == "2026-11-25T00:00:00.000Z");
  CHECK(format_time(1795564800000 - 8 * 86'400'000) == "2026-11-17T00:00:00.000Z");
  for (int64_t t = -4'000'000'000'000; t < 4'000'000'000'000; t += 777'777'777) {
    std::time_t seconds = static_cast<std::time_t>(t / 1000 - (t % 1000 < 0 ? 1 : 0));
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char expected[32];
    std::snprintf(expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((t % 1000 + 1000) % 1000));
    CHECK(format_time(t) == expected);
  }
}

TEST_CASE("actor_strand: a fresh strand on the caller's own event loop, from the loop or from a strand of it", "[actor]") {
  using Strand = asio::strand<asio::io_context::executor_type>;
  asio::io_context mine(1), other(1);
  auto caller = asio::make_strand(mine);
  for (asio::any_io_executor near : {asio::any_io_executor(caller), asio::any_io_executor(mine.get_executor())}) {
    asio::any_io_executor actor = actor_strand(near);
    // One strand over the loop, not a strand of a strand. (target<T>() does not check T in Asio 1.22.)
    REQUIRE(actor.target_type() == typeid(Strand));
    const Strand* strand = actor.target<Strand>();
    CHECK(&asio::query(strand->get_inner_executor(), asio::execution::context) == &mine);
    CHECK(*strand != caller);  // the actor does not run under its caller's strand
  }
  // Work on the actor's strand is run by the caller's loop and by no other.
  bool ran = false;
  asio::post(actor_strand(asio::any_io_executor(caller)), [&ran] { ran = true; });
  other.run();
  CHECK_FALSE(ran);
  mine.run();
  CHECK(ran);
}

TEST_CASE("a session's last use moves only forward, in whole seconds", "[sessions]") {
  AccountRecord record;
  record.id = Uuid::v7(1700000000000);
  auto account = std::make_shared<Account>(std::move(record), Account::Presence::live);
  const int64_t created = 1700000000000;
  auto session = Session::make(Uuid::v7(created), TokenDigest{1}, account, created, created + 3'600'000, created, "", "");
  session->used(created + 5'400);
  CHECK(session->last_used_ms() == created + 5'000);
  session->used(created + 5'999);  // the same second: nothing to write
  CHECK(session->last_used_ms() == created + 5'000);
  session->used(created + 2'000);  // a coarse clock a tick behind an exact one: never backwards
  CHECK(session->last_used_ms() == created + 5'000);
  session->used(created + 7'000);
  CHECK(session->last_used_ms() == created + 7'000);
  CHECK(session->expiry(60'000) == created + 67'000);
}

TEST_CASE("a session is found by the first half of its token's digest, and what a check reads is one aligned line", "[sessions]") {
  IndexThread attached;
  AccountRecord record;
  record.id = Uuid::v7(1700000000000);
  auto account = std::make_shared<Account>(std::move(record), Account::Presence::live);
  const int64_t created = 1700000000000;
  const TokenDigest digest = session_digest("a-token-of-43-characters-for-this-test-only");
  auto session = Session::make(Uuid::v7(created), digest, account, created, created + 3'600'000, created, "", "");
  CHECK(reinterpret_cast<uintptr_t>(session.get()) % 64 == 0);
  CHECK(&session->owner() == account.get());
  CHECK(session->key == session_key(digest));

  SessionIndex index;
  REQUIRE(index.insert(session));
  CHECK(index.find(session_key(digest)).get() == session.get());
  TokenDigest other_half = digest;  // what memory does not keep does not decide
  other_half[31] ^= 1;
  CHECK(index.find(session_key(other_half)).get() == session.get());
  TokenDigest first_half = digest;  // what it keeps does, every byte of it
  for (size_t i : {size_t{0}, size_t{8}, size_t{15}}) {
    first_half = digest;
    first_half[i] ^= 1;
    CHECK_FALSE(index.find(session_key(first_half)));
  }
  // A second session whose key is taken is refused, not dropped silently.
  CHECK_FALSE(index.insert(Session::make(Uuid::v7(created + 1), other_half, account, created, created + 1000, created, "", "")));
  index.erase(session->key);
  CHECK_FALSE(index.find(session_key(digest)));
}

TEST_CASE("warm-load: sessions adopted by two threads in any order end up oldest first, and short lists keep no slack", "[sessions]") {
  AccountRecord record;
  record.id = Uuid::v7(1700000000000);
  auto account = std::make_shared<Account>(std::move(record), Account::Presence::live);
  // Created times 1..2000, handed to two threads in a shuffled order, as two parsers take the
  // rows of one COPY stream.
  std::vector<int64_t> created(2000);
  for (size_t i = 0; i < created.size(); ++i) created[i] = static_cast<int64_t>(i) + 1;
  std::mt19937 shuffle(7);
  std::shuffle(created.begin(), created.end(), shuffle);
  std::latch start(2);
  auto adopt = [&](size_t from, size_t to) {
    start.arrive_and_wait();
    for (size_t i = from; i < to; ++i) {
      TokenDigest digest{};
      std::memcpy(digest.data(), &created[i], sizeof(int64_t));
      account->adopt_session(Session::make(Uuid::v7(created[i]), digest, account, created[i], created[i] + 1000, created[i], "", ""));
    }
  };
  std::thread a(adopt, 0, 1000), b(adopt, 1000, 2000);
  a.join();
  b.join();
  const auto& list = account->sessions();
  REQUIRE(list.size() == 2000);
  bool in_order = true;
  for (size_t i = 0; i < list.size(); ++i) in_order = in_order && list[i]->created_ms == static_cast<int64_t>(i) + 1;
  CHECK(in_order);
  account->replace_sessions({});  // the sessions point back at the account: break the cycle

  // A list as short as sessions.max_per_account allows by default has no slack.
  for (int64_t c : {5, 3, 20, 1, 7, 2, 19, 4, 6, 8, 9, 10, 11, 18, 12, 13, 17, 14, 16, 15})
    account->adopt_session(Session::make(Uuid::v7(c), TokenDigest{static_cast<uint8_t>(c)}, account, c, c + 1000, c, "", ""));
  REQUIRE(list.size() == 20);
  CHECK(list.capacity() == 20);
  CHECK(list.front()->created_ms == 1);
  CHECK(list.back()->created_ms == 20);
  account->replace_sessions({});
}
