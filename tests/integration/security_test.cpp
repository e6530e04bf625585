// The account-security holes that hostile probing found (issue 9), each written as the attack.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string reset_token(Client& c, const std::string& email) {
  std::string reply = c.call("RESET_REQUEST " + email);
  REQUIRE(starts_with(reply, "OK "));
  return *field(reply, "token");
}

std::string code(const std::string& reply) {
  if (starts_with(reply, "OK")) return "OK";
  auto end = reply.find(' ', 4);
  return reply.substr(4, end == std::string::npos ? std::string::npos : end - 4);
}

}  // namespace

TEST_CASE("attack: a confirmation token does not confirm an address it was never sent to", "[security][tokens]") {
  Daemon daemon;
  Client c(daemon.port());
  auto evil = register_account(c, "me@evil.example");
  CHECK(starts_with(c.call("CHANGE_EMAIL " + evil.id + " ceo@victim.example"), "OK "));
  CHECK(starts_with(c.call("CONFIRM " + evil.id + " " + evil.token), "ERR INVALID_TOKEN "));
  CHECK(field(c.call("GET " + evil.id), "state") == "unconfirmed");
  // The new address gets a token of its own, and that one works.
  std::string fresh = *field(c.call("RESEND " + evil.id), "token");
  CHECK(field(c.call("CONFIRM " + evil.id + " " + fresh), "state") == "active");
}

TEST_CASE("attack: a reset token sent to an old mailbox does not outlive CHANGE_PASSWORD or CHANGE_EMAIL", "[security][tokens]") {
  Daemon daemon;
  Client c(daemon.port());
  auto a = register_account(c, "a@x.example");
  REQUIRE(starts_with(c.call("CONFIRM " + a.id + " " + a.token), "OK "));

  SECTION("CHANGE_PASSWORD, then CHANGE_EMAIL (the probe's sequence)") {
    std::string old_mailbox = reset_token(c, "a@x.example");
    CHECK(starts_with(c.call("CHANGE_PASSWORD " + a.id + " \"correct horse\" \"owner's new one\""), "OK "));
    CHECK(starts_with(c.call("CHANGE_EMAIL " + a.id + " b@x.example"), "OK "));
    CHECK(starts_with(c.call("RESET_PASSWORD " + a.id + " " + old_mailbox + " attacker-password"), "ERR INVALID_TOKEN "));
    CHECK(starts_with(c.call("LOGIN b@x.example \"owner's new one\""), "OK "));
  }
  SECTION("CHANGE_EMAIL alone") {
    std::string old_mailbox = reset_token(c, "a@x.example");
    CHECK(starts_with(c.call("CHANGE_EMAIL " + a.id + " b@x.example"), "OK "));
    CHECK(starts_with(c.call("RESET_PASSWORD " + a.id + " " + old_mailbox + " attacker-password"), "ERR INVALID_TOKEN "));
  }
  SECTION("CHANGE_PASSWORD alone") {
    std::string old_mailbox = reset_token(c, "a@x.example");
    CHECK(starts_with(c.call("CHANGE_PASSWORD " + a.id + " \"correct horse\" \"owner's new one\""), "OK "));
    CHECK(starts_with(c.call("RESET_PASSWORD " + a.id + " " + old_mailbox + " attacker-password"), "ERR INVALID_TOKEN "));
  }
}

TEST_CASE("pending tokens: every cell of the table in docs/PROTOCOL.md", "[security][tokens]") {
  // Each change runs on an unconfirmed account holding both a confirmation and a reset token;
  // afterwards each token is tried. "kept" means it still works, "ended" that it answers INVALID_TOKEN.
  struct Cell {
    const char* change;
    bool confirm_kept;
    bool reset_kept;
  };
  const Cell cells[] = {
      {"CHANGE_EMAIL", false, false},   {"CHANGE_PASSWORD", true, false}, {"RESEND", false, true},
      {"RESET_REQUEST", true, false},   {"CONFIRM", false, true},         {"RESET_PASSWORD", true, false},
      {"DEACTIVATE+REACTIVATE", true, false},
  };
  Daemon daemon;
  Client c(daemon.port());
  int n = 0;
  for (const auto& cell : cells) {
    INFO(cell.change);
    std::string email = "cell" + std::to_string(n++) + "@tokens.example";
    auto r = register_account(c, email);
    std::string reset = reset_token(c, email);
    std::string change = cell.change;
    if (change == "CHANGE_EMAIL") REQUIRE(starts_with(c.call("CHANGE_EMAIL " + r.id + " moved-" + email), "OK "));
    if (change == "CHANGE_PASSWORD") REQUIRE(starts_with(c.call("CHANGE_PASSWORD " + r.id + " \"correct horse\" other-password"), "OK "));
    if (change == "RESEND") REQUIRE(starts_with(c.call("RESEND " + r.id), "OK "));       // replaces the confirmation
    if (change == "RESET_REQUEST") REQUIRE(starts_with(c.call("RESET_REQUEST " + email), "OK "));  // replaces the reset
    if (change == "CONFIRM") REQUIRE(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "OK "));  // uses it up
    if (change == "RESET_PASSWORD") REQUIRE(starts_with(c.call("RESET_PASSWORD " + r.id + " " + reset + " other-password"), "OK "));
    if (change == "DEACTIVATE+REACTIVATE") {
      REQUIRE(starts_with(c.call("DEACTIVATE " + r.id), "OK "));
      REQUIRE(field(c.call("REACTIVATE " + r.id), "state") == "unconfirmed");
    }
    // The reset token first: CONFIRM does not touch it, so both checks stay independent.
    std::string reset_reply = c.call("RESET_PASSWORD " + r.id + " " + reset + " third-password");
    CHECK(code(reset_reply) == (cell.reset_kept ? "OK" : "INVALID_TOKEN"));
    std::string confirm_reply = c.call("CONFIRM " + r.id + " " + r.token);
    if (change == "CONFIRM") CHECK(code(confirm_reply) == "INVALID_STATE");  // already active
    else CHECK(code(confirm_reply) == (cell.confirm_kept ? "OK" : "INVALID_TOKEN"));
  }
}

TEST_CASE("attack: a stranger failing logins from his address does not keep the owner out", "[security][lockout]") {
  // The probe's settings: threshold 3, window 4 s, and 3 wrong passwords a second for 6 s.
  Daemon daemon(Settings{{"accounts.lockout_threshold", "3"}, {"accounts.lockout_window_s", "4"}});
  Client owner(daemon.port());
  Client attacker(daemon.port());
  auto r = register_account(owner, "victim@example.com", "owner-password");
  REQUIRE(starts_with(owner.call("CONFIRM " + r.id + " " + r.token), "OK "));
  REQUIRE(starts_with(owner.call("LOGIN victim@example.com owner-password 198.51.100.7"), "OK "));

  int locked = 0, owner_ok = 0, newcomer_ok = 0;
  for (int second = 0; second < 6; ++second) {
    for (int i = 0; i < 3; ++i)
      if (starts_with(attacker.call("LOGIN victim@example.com guess-" + std::to_string(i) + " 203.0.113.9"), "ERR LOCKED ")) ++locked;
    owner_ok += starts_with(owner.call("LOGIN victim@example.com owner-password 198.51.100.7"), "OK ");
    // The owner on a new device (an address never seen before) gets in too.
    newcomer_ok += starts_with(owner.call("LOGIN victim@example.com owner-password 192.0.2." + std::to_string(second)), "OK ");
    std::this_thread::sleep_for(1s);
  }
  // The attacker's own address is locked out most of the time: 12 of 18 tries when every round
  // takes exactly a second, at least 9 however slowly the rounds run.
  CHECK(locked >= 9);
  CHECK(owner_ok == 6);
  CHECK(newcomer_ok == 6);
  // The attacker's address stays locked even with the right password: no oracle while locked.
  CHECK(starts_with(attacker.call("LOGIN victim@example.com owner-password 203.0.113.9"), "ERR LOCKED "));
}

TEST_CASE("attack: guessing from many addresses is bounded per hour, known addresses still get in", "[security][lockout]") {
  Daemon daemon(Settings{{"accounts.lockout_threshold", "3"}, {"accounts.lockout_hourly_limit", "10"}});
  Client c(daemon.port());
  auto r = register_account(c, "target@example.com", "owner-password");
  REQUIRE(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "OK "));
  REQUIRE(starts_with(c.call("LOGIN target@example.com owner-password 198.51.100.7"), "OK "));

  // 200 addresses, two guesses each (below the per-address threshold): a botnet's attempt.
  int verified = 0;
  for (int i = 0; i < 200; ++i)
    for (int g = 0; g < 2; ++g) {
      std::string reply = c.call("LOGIN target@example.com guess-" + std::to_string(g) + " 10.1." +
                                 std::to_string(i / 250) + "." + std::to_string(i % 250));
      if (starts_with(reply, "ERR INVALID_CREDENTIALS ")) ++verified;
      else CHECK(starts_with(reply, "ERR LOCKED "));
    }
  CHECK(verified == 10);  // exactly the hourly limit of guesses was ever checked
  CHECK(starts_with(c.call("LOGIN target@example.com owner-password 198.51.100.7"), "OK "));
  // A device never seen before waits for the hour, or for a password reset:
  CHECK(starts_with(c.call("LOGIN target@example.com owner-password 192.0.2.200"), "ERR LOCKED "));
  std::string reset = reset_token(c, "target@example.com");
  CHECK(starts_with(c.call("RESET_PASSWORD " + r.id + " " + reset + " after-the-reset"), "OK "));
  CHECK(starts_with(c.call("LOGIN target@example.com after-the-reset 192.0.2.200"), "OK "));
}

TEST_CASE("attack: LOCKED and every other LOGIN reply look the same for existing and unknown emails", "[security][lockout]") {
  Daemon daemon(Settings{{"accounts.lockout_threshold", "3"}, {"accounts.lockout_hourly_limit", "8"}});
  Client c(daemon.port());
  auto r = register_account(c, "exists@example.com", "owner-password");
  REQUIRE(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "OK "));
  auto unconfirmed = register_account(c, "pending@example.com", "owner-password");
  auto deactivated = register_account(c, "gone@example.com", "owner-password");
  REQUIRE(starts_with(c.call("DEACTIVATE " + deactivated.id), "OK "));

  // The same sequence of requests against each email gives the same sequence of replies.
  // "retry in N s" counts down from the moment of the lock, so two transcripts taken one after
  // the other may round N differently if one runs over a second boundary: compare the replies
  // with N taken out, and each N within a second of the other.
  struct Transcript {
    std::vector<std::string> replies;
    std::vector<long> waits;
  };
  auto transcript = [&c](const std::string& email) {
    Transcript t;
    auto keep = [&t](std::string reply) {
      auto at = reply.find("retry in ");
      if (at != std::string::npos) {
        size_t digits = at + std::strlen("retry in ");
        size_t end = reply.find(' ', digits);
        t.waits.push_back(std::stol(reply.substr(digits, end - digits)));
        reply.replace(digits, end - digits, "N");
      }
      t.replies.push_back(reply);
    };
    for (int i = 0; i < 4; ++i) keep(c.call("LOGIN " + email + " wrong-password 203.0.113.9"));
    keep(c.call("LOGIN " + email + " " + std::string(2000, 'p') + " 203.0.113.9"));  // over-long
    for (int i = 0; i < 6; ++i) keep(c.call("LOGIN " + email + " wrong-password 10.9.9." + std::to_string(i)));
    return t;
  };
  auto expected = transcript("nobody@example.com");
  CHECK(code(expected.replies[2]) == "INVALID_CREDENTIALS");
  CHECK(code(expected.replies[3]) == "LOCKED");
  CHECK(code(expected.replies[4]) == "LOCKED");
  CHECK(code(expected.replies.back()) == "LOCKED");  // the hourly limit is spent
  for (const char* email : {"exists@example.com", "pending@example.com", "gone@example.com"}) {
    INFO(email);
    auto t = transcript(email);
    CHECK(t.replies == expected.replies);
    REQUIRE(t.waits.size() == expected.waits.size());
    for (size_t i = 0; i < t.waits.size(); ++i) CHECK(std::abs(t.waits[i] - expected.waits[i]) <= 1);
  }
}

TEST_CASE("attack: CHANGE_PASSWORD is no side door for guessing the old password", "[security][lockout]") {
  Daemon daemon(Settings{{"accounts.lockout_threshold", "3"}});
  Client c(daemon.port());
  auto r = register_account(c, "side@example.com", "owner-password");
  REQUIRE(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "OK "));
  for (int i = 0; i < 3; ++i)
    CHECK(starts_with(c.call("CHANGE_PASSWORD " + r.id + " guess-" + std::to_string(i) + " new-password 203.0.113.9"),
                      "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("CHANGE_PASSWORD " + r.id + " owner-password new-password 203.0.113.9"), "ERR LOCKED "));
  CHECK(starts_with(c.call("LOGIN side@example.com owner-password 203.0.113.9"), "ERR LOCKED "));
  CHECK(starts_with(c.call("LOGIN side@example.com owner-password 198.51.100.7"), "OK "));
  CHECK(starts_with(c.call("LOGIN side@example.com owner-password " + std::string(65, 'x')), "ERR BAD_REQUEST "));
}
