// accounts/: emails, ids, clocks, timestamps and the account record's view, strings and equality.
#include <catch2/catch.hpp>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "accounts/clock.hpp"
#include "accounts/compact_string.hpp"
#include "accounts/email.hpp"
#include "accounts/record.hpp"
#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"

using namespace accounts;

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
    char expected[80];  // room for any int the format may print, so g++ sees no truncation
    std::snprintf(expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((t % 1000 + 1000) % 1000));
    CHECK(format_time(t) == expected);
  }
}
