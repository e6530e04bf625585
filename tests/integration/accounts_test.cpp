// The account commands against the real daemon in memory-only mode (issue 3).

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string active_account(Client& c, const std::string& email, const std::string& password = "correct horse") {
  auto r = register_account(c, email, password);
  REQUIRE(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "OK "));
  return r.id;
}

// Sends `requests[i]` on connection i, all released at the same instant; returns the replies.
std::vector<std::string> race(int port, const std::vector<std::string>& requests) {
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t i = 0; i < requests.size(); ++i) clients.push_back(std::make_unique<Client>(port));
  for (auto& c : clients) REQUIRE(c->call("PING") == "OK pong");  // every connection is established
  std::vector<std::string> replies(requests.size());
  std::latch start(static_cast<std::ptrdiff_t>(requests.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      clients[i]->send(requests[i] + "\n");
      replies[i] = clients[i]->line();
    });
  for (auto& t : threads) t.join();
  return replies;
}

}  // namespace

TEST_CASE("the whole account lifecycle, with the view fields at each step", "[accounts]") {
  Daemon daemon;
  Client c(daemon.port());

  std::string reply = c.call("REGISTER Alice@Example.COM \"pass word 1\"");
  REQUIRE(starts_with(reply, "OK id="));
  std::string id = *field(reply, "id");
  CHECK(id.size() == 36);
  CHECK(id[14] == '7');  // UUIDv7
  CHECK(field(reply, "email") == "alice@example.com");
  CHECK(field(reply, "state") == "unconfirmed");
  CHECK(field(reply, "version") == "1");
  CHECK(field(reply, "created")->size() == 24);  // 2026-11-23T20:12:41.123Z
  CHECK(field(reply, "created")->back() == 'Z');
  CHECK(field(reply, "token")->size() >= 22);  // >= 128 bits, URL-safe
  CHECK(field(reply, "token")->find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  std::string token = *field(reply, "token");

  CHECK(starts_with(c.call("LOGIN alice@example.com \"pass word 1\""), "ERR NOT_CONFIRMED "));
  reply = c.call("CONFIRM " + id + " " + token);
  CHECK(field(reply, "state") == "active");
  CHECK(field(reply, "version") == "2");
  reply = c.call("LOGIN ALICE@example.com \"pass word 1\"");
  CHECK(field(reply, "id") == id);

  reply = c.call("CHANGE_EMAIL " + id + " alice@new.example.org");
  CHECK(field(reply, "email") == "alice@new.example.org");
  CHECK(field(reply, "version") == "3");
  CHECK(starts_with(c.call("FIND alice@example.com"), "ERR NOT_FOUND "));
  CHECK(field(c.call("FIND Alice@New.Example.org"), "id") == id);
  CHECK(starts_with(c.call("LOGIN alice@example.com \"pass word 1\""), "ERR INVALID_CREDENTIALS "));

  reply = c.call("CHANGE_PASSWORD " + id + " \"pass word 1\" second-password");
  CHECK(field(reply, "version") == "4");
  CHECK(starts_with(c.call("LOGIN alice@new.example.org \"pass word 1\""), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("LOGIN alice@new.example.org second-password"), "OK "));

  reply = c.call("RESET_REQUEST alice@new.example.org");
  CHECK(field(reply, "id") == id);
  std::string reset = *field(reply, "token");
  reply = c.call("RESET_PASSWORD " + id + " " + reset + " third-password");
  CHECK(field(reply, "version") == "6");
  CHECK(starts_with(c.call("RESET_PASSWORD " + id + " " + reset + " fourth-password"), "ERR INVALID_TOKEN "));
  CHECK(starts_with(c.call("LOGIN alice@new.example.org third-password"), "OK "));

  CHECK(field(c.call("DEACTIVATE " + id), "state") == "deactivated");
  CHECK(starts_with(c.call("LOGIN alice@new.example.org third-password"), "ERR DEACTIVATED "));
  CHECK(starts_with(c.call("LOGIN alice@new.example.org wrong-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(field(c.call("REACTIVATE " + id), "state") == "active");
  CHECK(field(c.call("GET " + id), "version") == "8");

  CHECK(c.call("DELETE " + id) == "OK id=" + id);
  CHECK(starts_with(c.call("GET " + id), "ERR NOT_FOUND "));
  CHECK(starts_with(c.call("FIND alice@new.example.org"), "ERR NOT_FOUND "));
  CHECK(starts_with(c.call("DELETE " + id), "ERR NOT_FOUND "));
  // Both the id and the email are free at once.
  CHECK(starts_with(c.call("REGISTER alice@new.example.org whatever-pass"), "OK "));
}

TEST_CASE("every refusal has its documented code", "[accounts]") {
  Daemon daemon(Settings{{"accounts.min_password_length", "10"}});
  Client c(daemon.port());
  const std::string unknown = "01a20cc1-7344-7dae-aa15-339ece76400d";

  SECTION("registration input") {
    for (const char* bad : {"plainaddress", "@example.com", "a@b", "a@.com", "a@example.", "a@@example.com",
                            "a@exa..mple.com", "a b@example.com"})
      CHECK(starts_with(c.call(std::string("REGISTER \"") + bad + "\" long-enough-pw"), "ERR INVALID_EMAIL "));
    CHECK(starts_with(c.call("REGISTER " + std::string(65, 'a') + "@example.com long-enough-pw"), "ERR INVALID_EMAIL "));
    CHECK(starts_with(c.call("REGISTER a@example.com short"), "ERR INVALID_PASSWORD "));
    CHECK(starts_with(c.call("REGISTER a@example.com " + std::string(1025, 'p')), "ERR INVALID_PASSWORD "));
    CHECK(starts_with(c.call("REGISTER a@example.com " + std::string(1024, 'p')), "OK "));
    CHECK(starts_with(c.call("REGISTER A@EXAMPLE.COM long-enough-pw"), "ERR EMAIL_TAKEN "));
    CHECK(starts_with(c.call("REGISTER a@example.com"), "ERR BAD_REQUEST "));
  }
  SECTION("unknown and malformed ids") {
    for (const char* cmd : {"GET", "RESEND", "DEACTIVATE", "REACTIVATE", "DELETE"}) {
      CHECK(starts_with(c.call(std::string(cmd) + " " + unknown), "ERR NOT_FOUND "));
      CHECK(starts_with(c.call(std::string(cmd) + " not-a-uuid"), "ERR BAD_REQUEST "));
    }
    CHECK(starts_with(c.call("CONFIRM " + unknown + " tok"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("CHANGE_EMAIL " + unknown + " x@example.com"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("CHANGE_PASSWORD " + unknown + " old-password new-password"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("RESET_PASSWORD " + unknown + " tok new-password"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("FIND nobody@example.com"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("RESET_REQUEST nobody@example.com"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("LOGIN nobody@example.com some-password"), "ERR INVALID_CREDENTIALS "));
  }
  SECTION("tokens: wrong, replaced by RESEND, single use") {
    auto r = register_account(c, "t@example.com", "long-enough-pw");
    CHECK(starts_with(c.call("CONFIRM " + r.id + " wrong-token"), "ERR INVALID_TOKEN "));
    std::string resent = c.call("RESEND " + r.id);
    std::string fresh = *field(resent, "token");
    CHECK(fresh != r.token);
    CHECK(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "ERR INVALID_TOKEN "));  // the old one stopped working
    CHECK(starts_with(c.call("CONFIRM " + r.id + " " + fresh), "OK "));
    CHECK(starts_with(c.call("CONFIRM " + r.id + " " + fresh), "ERR INVALID_STATE "));
    CHECK(starts_with(c.call("RESEND " + r.id), "ERR INVALID_STATE "));
    CHECK(starts_with(c.call("RESET_PASSWORD " + r.id + " never-issued new-password-1"), "ERR INVALID_TOKEN "));
  }
  SECTION("state rules") {
    std::string id = active_account(c, "s@example.com", "long-enough-pw");
    CHECK(starts_with(c.call("REACTIVATE " + id), "ERR INVALID_STATE "));
    CHECK(starts_with(c.call("DEACTIVATE " + id), "OK "));
    CHECK(starts_with(c.call("DEACTIVATE " + id), "ERR INVALID_STATE "));
    CHECK(starts_with(c.call("RESET_REQUEST s@example.com"), "ERR INVALID_STATE "));
    CHECK(starts_with(c.call("RESET_PASSWORD " + id + " any-token new-password-1"), "ERR INVALID_STATE "));
    CHECK(starts_with(c.call("CHANGE_PASSWORD " + id + " wrong-password-x new-password-1"), "ERR INVALID_CREDENTIALS "));
    CHECK(starts_with(c.call("CHANGE_PASSWORD " + id + " long-enough-pw short"), "ERR INVALID_PASSWORD "));
    CHECK(starts_with(c.call("CHANGE_EMAIL " + id + " not-an-email"), "ERR INVALID_EMAIL "));

    // A never-confirmed account comes back unconfirmed.
    auto u = register_account(c, "u@example.com", "long-enough-pw");
    CHECK(starts_with(c.call("DEACTIVATE " + u.id), "OK "));
    CHECK(starts_with(c.call("CONFIRM " + u.id + " " + u.token), "ERR INVALID_STATE "));
    CHECK(field(c.call("REACTIVATE " + u.id), "state") == "unconfirmed");
    CHECK(field(c.call("CONFIRM " + u.id + " " + u.token), "state") == "active");
  }
  SECTION("an email taken by one account cannot be moved onto by another") {
    active_account(c, "one@example.com", "long-enough-pw");
    std::string two = active_account(c, "two@example.com", "long-enough-pw");
    CHECK(starts_with(c.call("CHANGE_EMAIL " + two + " ONE@example.com"), "ERR EMAIL_TAKEN "));
    CHECK(field(c.call("CHANGE_EMAIL " + two + " two@example.com"), "version") == "2");  // no change, no new version
  }
}

TEST_CASE("tokens expire after their TTL", "[accounts]") {
  Daemon daemon(Settings{{"accounts.confirm_token_ttl_s", "1"}, {"accounts.reset_token_ttl_s", "1"}});
  Client c(daemon.port());
  auto r = register_account(c, "late@example.com");
  std::string id = active_account(c, "reset@example.com");
  std::string reset = *field(c.call("RESET_REQUEST reset@example.com"), "token");
  std::this_thread::sleep_for(2500ms);
  CHECK(starts_with(c.call("CONFIRM " + r.id + " " + r.token), "ERR TOKEN_EXPIRED "));
  CHECK(starts_with(c.call("RESET_PASSWORD " + id + " " + reset + " new-password-1"), "ERR TOKEN_EXPIRED "));
  // A fresh token works again.
  std::string fresh = *field(c.call("RESEND " + r.id), "token");
  CHECK(starts_with(c.call("CONFIRM " + r.id + " " + fresh), "OK "));
}

TEST_CASE("lockout after consecutive failures, expiry, and reset lifting it", "[accounts]") {
  Daemon daemon(Settings{{"accounts.lockout_threshold", "3"}, {"accounts.lockout_window_s", "2"}});
  Client c(daemon.port());
  std::string id = active_account(c, "lock@example.com", "right-password");
  for (int i = 0; i < 3; ++i)
    CHECK(starts_with(c.call("LOGIN lock@example.com wrong-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("LOGIN lock@example.com right-password"), "ERR LOCKED "));
  CHECK(starts_with(c.call("LOGIN lock@example.com wrong-password"), "ERR LOCKED "));
  std::this_thread::sleep_for(2500ms);
  CHECK(starts_with(c.call("LOGIN lock@example.com right-password"), "OK "));

  // A success resets the count: two failures, a success, two failures are not a lock.
  for (const char* pw : {"bad-1", "bad-2", "right-password", "bad-3", "bad-4"}) c.call(std::string("LOGIN lock@example.com ") + pw);
  CHECK(starts_with(c.call("LOGIN lock@example.com right-password"), "OK "));

  for (int i = 0; i < 3; ++i) c.call("LOGIN lock@example.com wrong-password");
  CHECK(starts_with(c.call("LOGIN lock@example.com right-password"), "ERR LOCKED "));
  std::string reset = *field(c.call("RESET_REQUEST lock@example.com"), "token");
  CHECK(starts_with(c.call("RESET_PASSWORD " + id + " " + reset + " brand-new-password"), "OK "));
  CHECK(starts_with(c.call("LOGIN lock@example.com brand-new-password"), "OK "));
}

TEST_CASE("64 connections registering one email at the same instant: exactly one wins", "[accounts][race]") {
  Daemon daemon;
  for (int round = 0; round < 10; ++round) {
    std::string email = "Race" + std::to_string(round) + "@Example.com";
    std::vector<std::string> requests;
    for (int i = 0; i < 64; ++i) {
      // Mixed case: the race is on the normalized address.
      std::string variant = i % 2 ? email : "race" + std::to_string(round) + "@example.COM";
      requests.push_back("REGISTER " + variant + " password-" + std::to_string(i));
    }
    auto replies = race(daemon.port(), requests);
    int ok = 0, taken = 0;
    for (const auto& r : replies) {
      if (starts_with(r, "OK ")) ++ok;
      else if (starts_with(r, "ERR EMAIL_TAKEN ")) ++taken;
    }
    REQUIRE(ok == 1);
    REQUIRE(taken == 63);
  }
  Client c(daemon.port());
  CHECK(field(c.call("STATS"), "accounts") == "10");
}

TEST_CASE("CHANGE_EMAIL and REGISTER racing for one address: exactly one holds it", "[accounts][race]") {
  Daemon daemon;
  Client setup(daemon.port());
  for (int round = 0; round < 8; ++round) {
    std::string target = "Contested" + std::to_string(round) + "@example.com";
    std::vector<std::string> requests;
    std::vector<std::pair<std::string, std::string>> movers;  // id, original email
    for (int i = 0; i < 16; ++i) {
      std::string email = "mover" + std::to_string(round) + "-" + std::to_string(i) + "@example.com";
      movers.emplace_back(active_account(setup, email), email);
      requests.push_back("CHANGE_EMAIL " + movers.back().first + " " + target);
      requests.push_back("REGISTER " + target + " password-" + std::to_string(i));
    }
    auto replies = race(daemon.port(), requests);
    int ok = 0;
    std::string winner;
    for (const auto& r : replies) {
      if (starts_with(r, "OK ")) {
        ++ok;
        winner = *field(r, "id");
      } else {
        REQUIRE(starts_with(r, "ERR EMAIL_TAKEN "));
      }
    }
    REQUIRE(ok == 1);
    CHECK(field(setup.call("FIND " + target), "id") == winner);
    // Every losing mover still holds its own address; the winner gave its old one up.
    for (const auto& [id, email] : movers) {
      std::string found = setup.call("FIND " + email);
      if (id == winner) CHECK(starts_with(found, "ERR NOT_FOUND "));
      else CHECK(field(found, "id") == id);
    }
    // Nothing was left reserved by a failed request: once the winner lets go, the address is free.
    REQUIRE(starts_with(setup.call("DELETE " + winner), "OK "));
    CHECK(starts_with(setup.call("REGISTER " + target + " afterwards-pw"), "OK "));
  }
}

TEST_CASE("pipelined mixed account traffic is answered in order", "[accounts]") {
  Daemon daemon;
  Client c(daemon.port());
  c.send(
      "REGISTER pipe@example.com first-password\n"
      "FIND pipe@example.com\n"
      "REGISTER PIPE@example.com other-password\n"
      "GET not-a-uuid\n"
      "LOGIN pipe@example.com first-password\n"
      "PING\n"
      "FIND nobody@example.com\n");
  std::string registered = c.line();
  REQUIRE(starts_with(registered, "OK "));
  CHECK(field(c.line(), "id") == field(registered, "id"));
  CHECK(starts_with(c.line(), "ERR EMAIL_TAKEN "));
  CHECK(starts_with(c.line(), "ERR BAD_REQUEST "));
  CHECK(starts_with(c.line(), "ERR NOT_CONFIRMED "));
  CHECK(c.line() == "OK pong");
  CHECK(starts_with(c.line(), "ERR NOT_FOUND "));
}

TEST_CASE("a saturated password pool does not slow PING, GET or FIND on other connections", "[accounts]") {
  // One worker with a slow hash; each connection runs its requests one at a time, so 16
  // connections with two LOGINs each keep up to 15 hashes queued for seconds.
  Daemon daemon(Settings{{"password_hash.workers", "1"}, {"password_hash.opslimit", "3"},
                 {"password_hash.memlimit_kib", "32768"}});
  Client c(daemon.port());
  std::string id = *field(c.call("REGISTER fast@example.com some-password"), "id");

  std::vector<std::unique_ptr<Client>> logins;
  for (int i = 0; i < 16; ++i) {
    logins.push_back(std::make_unique<Client>(daemon.port()));
    // A different unknown email per connection: two failures each stay below the lockout.
    std::string email = "nobody" + std::to_string(i) + "@example.com";
    logins.back()->send("LOGIN " + email + " pw-1\nLOGIN " + email + " pw-2\n");
  }
  // While the queue is still full, reads on another connection are answered.
  std::string before;
  for (int i = 0; i < 100; ++i) {
    before = c.call("STATS");
    if (std::stoi(*field(before, "hash_queue")) >= 10) break;
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(std::stoi(*field(before, "hash_queue")) >= 10);
  for (int i = 0; i < 50; ++i) {
    CHECK(c.call("PING") == "OK pong");
    CHECK(field(c.call("GET " + id), "id") == id);
    CHECK(field(c.call("FIND fast@example.com"), "id") == id);
  }
  std::string after = c.call("STATS");
  CHECK(std::stoi(*field(after, "hash_queue")) > 0);  // all of the above was served while hashes waited
  for (auto& l : logins)
    for (int i = 0; i < 2; ++i) CHECK(starts_with(l->line(), "ERR INVALID_CREDENTIALS "));
}

TEST_CASE("a full password queue answers BUSY at once", "[accounts]") {
  Daemon daemon(Settings{{"password_hash.workers", "1"}, {"password_hash.max_queue", "2"}, {"password_hash.opslimit", "3"},
                 {"password_hash.memlimit_kib", "32768"}});
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 12; ++i) {
    clients.push_back(std::make_unique<Client>(daemon.port()));
    clients.back()->send("LOGIN nobody@example.com pw-" + std::to_string(i) + "\n");
  }
  int busy = 0, answered = 0;
  for (auto& c : clients) {
    std::string r = c->line();
    if (starts_with(r, "ERR BUSY ")) ++busy;
    else if (starts_with(r, "ERR INVALID_CREDENTIALS ")) ++answered;
  }
  CHECK(busy >= 1);
  CHECK(busy + answered == 12);
}

TEST_CASE("a password hash that runs out of memory answers BUSY: no crash, no failed login, no lockout", "[accounts][security]") {
  PgServer pg;
  Settings settings{{"password_hash.memlimit_kib", "65536"}, {"database.url", pg.url_setting()}};  // 64 MiB a hash
  std::string id;
  {
    Daemon first(settings);
    first.wait_ready();
    Client c(first.port());
    id = active_account(c, "owner@example.com", "owner-password");
  }
  // A password worker keeps its work area once it has hashed (accounts/argon2_area.hpp), so the
  // account is made by another daemon, and this one has hashed nothing when its memory is capped.
  Daemon daemon(settings);
  daemon.wait_ready();
  Client c(daemon.port());

  // Cap the daemon's address space 32 MiB above what it has mapped: a hash's 64 MiB no longer
  // fits, and everything else goes on. The hard limit stays, so the cap can be lifted again.
  daemon.cap_address_space(32u << 20);

  // More LOGINs than lockout_threshold (5): had any counted as a wrong password, the owner would
  // now be locked out by the machine's memory.
  for (int i = 0; i < 8; ++i) CHECK(starts_with(c.call("LOGIN owner@example.com owner-password"), "ERR BUSY "));
  // An email of no account verifies the dummy hash, at the same cost: the same BUSY, so the
  // shortage does not tell which emails exist.
  CHECK(starts_with(c.call("LOGIN nobody@example.com some-password"), "ERR BUSY "));
  CHECK(starts_with(c.call("REGISTER other@example.com other-password"), "ERR BUSY "));  // hash_password threw
  CHECK(field(c.call("GET " + id), "id") == id);
  CHECK(field(c.call("STATS"), "accounts") == "1");
  // Failing fast, a hash fails as often as LOGINs come; the log gets at most five lines a second,
  // and the next line says how many were not logged.
  for (int i = 0; i < 40; ++i) c.call("LOGIN nobody" + std::to_string(i) + "@example.com some-password");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(starts_with(c.call("LOGIN nobody@example.com some-password"), "ERR BUSY "));
  std::string log = daemon.log();
  uint64_t left_out = 0;
  for (size_t at = 0; (at = log.find(" more failures not logged", at)) != std::string::npos; ++at)
    left_out = std::max<uint64_t>(left_out, std::stoull(log.substr(log.rfind('(', at) + 1)));
  CHECK(left_out > 0);

  daemon.lift_address_space();
  CHECK(field(c.call("LOGIN owner@example.com owner-password"), "id") == id);
  CHECK(starts_with(c.call("REGISTER other@example.com other-password"), "OK "));
  CHECK(daemon.log().find("password verification failed: the hash could not be computed") != std::string::npos);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("STATS counts accounts by state and connections", "[accounts]") {
  Daemon daemon;
  Client c(daemon.port());
  register_account(c, "s1@example.com");
  std::string active = active_account(c, "s2@example.com");
  std::string gone = active_account(c, "s3@example.com");
  c.call("DEACTIVATE " + gone);
  Client other(daemon.port());
  std::string stats = other.call("STATS");
  CHECK(field(stats, "accounts") == "3");
  CHECK(field(stats, "unconfirmed") == "1");
  CHECK(field(stats, "active") == "1");
  CHECK(field(stats, "deactivated") == "1");
  CHECK(field(stats, "connections") == "2");
  CHECK(field(stats, "loading") == "0");
  // Tokens and passwords never reach the log.
  CHECK(daemon.log().find("correct horse") == std::string::npos);
}
