// Sessions (issue 11) against the real daemon: opening, checking, listing, ending, expiry, the
// per-account bound, durability across restarts and kill -9, and a check racing a revocation.
#include <signal.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string active_account(Client& c, const std::string& email, const std::string& password = "owner-password") {
  std::string reply = c.call("REGISTER " + email + " " + password);
  REQUIRE(starts_with(reply, "OK "));
  std::string id = *field(reply, "id");
  REQUIRE(starts_with(c.call("CONFIRM " + id + " " + *field(reply, "token")), "OK "));
  return id;
}

struct Opened {
  std::string session;
  std::string token;
};

Opened open_session(Client& c, const std::string& email, const std::string& extra = "") {
  std::string reply = c.call("LOGIN_SESSION " + email + " owner-password" + extra);
  INFO(reply);
  REQUIRE(starts_with(reply, "OK "));
  return {*field(reply, "session"), *field(reply, "token")};
}

bool valid(Client& c, const std::string& token) {
  std::string reply = c.call("WHOAMI " + token);
  if (starts_with(reply, "OK ")) return true;
  CHECK(starts_with(reply, "ERR INVALID_SESSION "));
  return false;
}

}  // namespace

// A batch in one write goes through the read-ahead (accounts/read_ahead.cpp), which hashes the
// GET ids and FIND addresses and digests the WHOAMI tokens before the first line runs, and hands
// each WHOAMI its digest back. Every reply must
// still be what the line alone would get: a token one character from another's, a session ended
// inside the batch, quoted and malformed arguments, and more lines than one read-ahead holds.
TEST_CASE("a pipelined batch of WHOAMI, GET and FIND is answered as one request at a time would be", "[sessions]") {
  Daemon daemon;
  Client c(daemon.port());
  std::string alice = active_account(c, "alice@example.com"), bob = active_account(c, "bob@example.com");
  auto a = open_session(c, "alice@example.com"), b = open_session(c, "bob@example.com");
  std::string near = b.token;
  near.back() = near.back() == 'A' ? 'B' : 'A';

  struct Expect {
    std::string request, id, session, error;  // an OK for account `id` (and `session`), or this error
  };
  std::vector<Expect> batch = {
      {"WHOAMI " + a.token, alice, a.session, ""},
      {"GET " + bob, bob, "", ""},
      {"WHOAMI " + near, "", "", "ERR INVALID_SESSION "},
      {"WHOAMI " + b.token, bob, b.session, ""},
      {"WHOAMI \"" + a.token + "\"", alice, a.session, ""},
      {"LOGOUT " + a.token, "", "", ""},
      {"WHOAMI " + a.token, "", "", "ERR INVALID_SESSION "},
      {"GET not-an-id", "", "", "ERR BAD_REQUEST "},
      {"WHOAMI short", "", "", "ERR BAD_REQUEST "},
      {"GET " + alice, alice, "", ""},
      {"FIND Alice@EXAMPLE.com", alice, "", ""},
      {"FIND nobody@example.com", "", "", "ERR NOT_FOUND "},
      {"FIND not-an-address", "", "", "ERR NOT_FOUND "},
  };
  for (int i = 0; i < 12; ++i) {
    batch.push_back({"WHOAMI " + b.token, bob, b.session, ""});
    batch.push_back({"WHOAMI " + near, "", "", "ERR INVALID_SESSION "});
    batch.push_back({"get " + alice, alice, "", ""});
    batch.push_back({"FIND bob@example.com", bob, "", ""});
  }
  // One character off at each edge of the sixteen-byte blocks the token match compares, beside
  // the true token in one batch: a match that skipped any byte would hand one of them its digest.
  for (size_t at : {0, 1, 15, 16, 26, 27, 31, 32, 41}) {
    std::string off = b.token;
    off[at] = off[at] == 'A' ? 'B' : 'A';
    batch.push_back({"WHOAMI " + b.token, bob, b.session, ""});
    batch.push_back({"WHOAMI " + off, "", "", "ERR INVALID_SESSION "});
  }
  std::string bytes;
  for (const auto& e : batch) bytes += e.request + "\r\n";
  c.send(bytes);
  for (const auto& e : batch) {
    std::string reply = c.line();
    INFO(e.request << " -> " << reply);
    if (!e.error.empty()) {
      CHECK(starts_with(reply, e.error));
    } else if (e.id.empty()) {
      CHECK(reply == "OK session=" + a.session);  // the LOGOUT
    } else {
      CHECK(field(reply, "id") == e.id);
      if (!e.session.empty()) CHECK(field(reply, "session") == e.session);
    }
  }
}

// A line that comes alone is read ahead too, as a batch of one, and a lone WHOAMI takes its
// token's digest from there (it fails if that digest is wrong). The read-ahead's state belongs to
// the event loop, which both connections share: lone lines from the two, one after the other, a
// token one character off the one checked before it, a session ended between two checks.
TEST_CASE("lone lines from two connections are answered as they would be without the read-ahead", "[sessions]") {
  Daemon daemon;
  Client c(daemon.port()), d(daemon.port());
  std::string alice = active_account(c, "alice@example.com"), bob = active_account(c, "bob@example.com");
  auto a = open_session(c, "alice@example.com"), b = open_session(c, "bob@example.com");
  std::string near = b.token;
  near.back() = near.back() == 'A' ? 'B' : 'A';
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    std::string reply = c.call("WHOAMI " + b.token);
    CHECK(field(reply, "session") == b.session);
    CHECK(starts_with(d.call("WHOAMI " + near), "ERR INVALID_SESSION "));
    CHECK(field(c.call("WHOAMI " + a.token), "id") == alice);
    CHECK(field(d.call("GET " + bob), "id") == bob);
    CHECK(field(c.call("FIND Bob@Example.COM"), "id") == bob);
    CHECK(starts_with(d.call("GET not-an-id"), "ERR BAD_REQUEST "));
  }
  CHECK(c.call("LOGOUT " + a.token) == "OK session=" + a.session);
  CHECK(starts_with(d.call("WHOAMI " + a.token), "ERR INVALID_SESSION "));
  CHECK(starts_with(c.call("WHOAMI " + a.token), "ERR INVALID_SESSION "));
  CHECK(field(d.call("WHOAMI " + b.token), "id") == bob);
}

TEST_CASE("LOGIN_SESSION opens a session, WHOAMI answers the account, SESSIONS never shows a token", "[sessions]") {
  Daemon daemon;
  Client c(daemon.port());
  std::string id = active_account(c, "owner@example.com");

  std::string reply = c.call("LOGIN_SESSION owner@example.com owner-password 203.0.113.9 \"Firefox on Linux\"");
  REQUIRE(starts_with(reply, "OK "));
  CHECK(field(reply, "id") == id);
  CHECK(field(reply, "state") == "active");
  std::string session = *field(reply, "session"), token = *field(reply, "token");
  CHECK(token.size() == 43);
  CHECK(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  CHECK(field(reply, "expires")->size() == 24);

  reply = c.call("WHOAMI " + token);
  CHECK(field(reply, "id") == id);
  CHECK(field(reply, "email") == "owner@example.com");
  CHECK(field(reply, "session") == session);
  CHECK(field(reply, "expires")->size() == 24);

  reply = c.call("SESSIONS " + id);
  CHECK(field(reply, "count") == "1");
  CHECK(field(reply, "s1.id") == session);
  CHECK(field(reply, "s1.label") == "Firefox on Linux");
  CHECK(field(reply, "s1.source") == "203.0.113.9");
  CHECK(field(reply, "s1.created")->size() == 24);
  CHECK(field(reply, "s1.last_used")->size() == 24);
  CHECK(reply.find(token) == std::string::npos);
  CHECK(daemon.log().find(token) == std::string::npos);

  // One code for every token that does not work; BAD_REQUEST only for what cannot be a token.
  CHECK(starts_with(c.call("WHOAMI " + std::string(43, 'A')), "ERR INVALID_SESSION "));
  CHECK(starts_with(c.call("WHOAMI not-a-token"), "ERR BAD_REQUEST "));
  for (char outside : std::string_view("+/=.~:@`[{"))  // next to the alphabet's ranges, and base64's own
    for (size_t at : {size_t{0}, size_t{21}, size_t{42}}) {
      std::string token(43, 'z');
      token[at] = outside;
      CHECK(starts_with(c.call("WHOAMI " + token), "ERR BAD_REQUEST "));
    }
  CHECK(starts_with(c.call("LOGIN_SESSION owner@example.com wrong-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("LOGIN_SESSION nobody@example.com owner-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("LOGIN_SESSION owner@example.com owner-password 1.2.3.4 " + std::string(129, 'l')),
                    "ERR BAD_REQUEST "));
  CHECK(starts_with(c.call("SESSIONS 01a20cc1-7344-7dae-aa15-339ece76400d"), "ERR NOT_FOUND "));
  std::string pending = *field(c.call("REGISTER pending@example.com owner-password"), "id");
  CHECK(starts_with(c.call("LOGIN_SESSION pending@example.com owner-password"), "ERR NOT_CONFIRMED "));
  CHECK(field(c.call("SESSIONS " + pending), "count") == "0");

  // LOGOUT ends exactly that session.
  auto other = open_session(c, "owner@example.com");
  CHECK(c.call("LOGOUT " + token) == "OK session=" + session);
  CHECK_FALSE(valid(c, token));
  CHECK(starts_with(c.call("LOGOUT " + token), "ERR INVALID_SESSION "));
  CHECK(valid(c, other.token));
  CHECK(field(c.call("STATS"), "sessions") == "1");
}

TEST_CASE("which change ends which sessions: each rule of the state table", "[sessions]") {
  Daemon daemon;
  Client c(daemon.port());
  int n = 0;
  auto fresh = [&](std::vector<Opened>& opened) {
    std::string email = "rule" + std::to_string(n++) + "@example.com";
    std::string id = active_account(c, email);
    for (int i = 0; i < 3; ++i) opened.push_back(open_session(c, email));
    return std::make_pair(id, email);
  };
  auto alive = [&](const std::vector<Opened>& opened) {
    std::vector<bool> out;
    for (const auto& o : opened) out.push_back(valid(c, o.token));
    return out;
  };
  using Alive = std::vector<bool>;

  SECTION("RESET_PASSWORD ends every session") {
    std::vector<Opened> s;
    auto [id, email] = fresh(s);
    std::string token = *field(c.call("RESET_REQUEST " + email), "token");
    REQUIRE(starts_with(c.call("RESET_PASSWORD " + id + " " + token + " new-password"), "OK "));
    CHECK(alive(s) == Alive{false, false, false});
  }
  SECTION("DEACTIVATE ends every session, and REACTIVATE brings none back") {
    std::vector<Opened> s;
    auto [id, email] = fresh(s);
    REQUIRE(starts_with(c.call("DEACTIVATE " + id), "OK "));
    CHECK(alive(s) == Alive{false, false, false});
    REQUIRE(starts_with(c.call("REACTIVATE " + id), "OK "));
    CHECK(alive(s) == Alive{false, false, false});
  }
  SECTION("DELETE ends every session") {
    std::vector<Opened> s;
    auto [id, email] = fresh(s);
    REQUIRE(starts_with(c.call("DELETE " + id), "OK "));
    CHECK(alive(s) == Alive{false, false, false});
  }
  SECTION("CHANGE_PASSWORD ends every session but the one it names") {
    std::vector<Opened> s;
    auto [id, email] = fresh(s);
    REQUIRE(starts_with(c.call("CHANGE_PASSWORD " + id + " owner-password new-password \"\" " + s[1].session), "OK "));
    CHECK(alive(s) == Alive{false, true, false});
    REQUIRE(starts_with(c.call("CHANGE_PASSWORD " + id + " new-password third-password"), "OK "));
    CHECK(alive(s) == Alive{false, false, false});
  }
  SECTION("CHANGE_EMAIL keeps the sessions") {
    std::vector<Opened> s;
    auto [id, email] = fresh(s);
    REQUIRE(starts_with(c.call("CHANGE_EMAIL " + id + " moved-" + email), "OK "));
    CHECK(alive(s) == Alive{true, true, true});
    CHECK(field(c.call("WHOAMI " + s[0].token), "email") == "moved-" + email);
  }
  SECTION("LOGOUT_ALL ends every session, or every session but the one it names") {
    std::vector<Opened> s;
    auto [id, email] = fresh(s);
    CHECK(starts_with(c.call("LOGOUT_ALL " + id + " 01a20cc1-7344-7dae-aa15-339ece76400d"), "ERR NOT_FOUND "));
    CHECK(starts_with(c.call("LOGOUT_ALL " + id + " not-a-session-id"), "ERR BAD_REQUEST "));
    CHECK(alive(s) == Alive{true, true, true});
    CHECK(field(c.call("LOGOUT_ALL " + id + " " + s[2].session), "ended") == "2");
    CHECK(alive(s) == Alive{false, false, true});
    CHECK(field(c.call("LOGOUT_ALL " + id), "ended") == "1");
    CHECK(alive(s) == Alive{false, false, false});
    CHECK(field(c.call("LOGOUT_ALL " + id), "ended") == "0");
  }
}

TEST_CASE("sessions expire: absolute lifetime, idle timeout, and the sweep removes them", "[sessions]") {
  Daemon daemon(Settings{{"sessions.lifetime_s", "4"}, {"sessions.idle_timeout_s", "2"}});
  Client c(daemon.port());
  active_account(c, "ttl@example.com");
  auto busy = open_session(c, "ttl@example.com");
  auto idle = open_session(c, "ttl@example.com");
  // Checked every half second, a session lives past its idle timeout, up to its lifetime.
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(500ms);
    CHECK(valid(c, busy.token));
  }
  CHECK_FALSE(valid(c, idle.token));  // 3 s without a check, with a 2 s idle timeout
  std::this_thread::sleep_for(1500ms);
  CHECK_FALSE(valid(c, busy.token));  // past its 4 s lifetime, however busy
  bool swept = false;
  for (int i = 0; i < 50 && !swept; ++i) {
    swept = field(c.call("STATS"), "sessions") == "0";
    if (!swept) std::this_thread::sleep_for(200ms);
  }
  CHECK(swept);
}

TEST_CASE("the sessions of one account are bounded: opening one more ends the oldest", "[sessions]") {
  Daemon daemon(Settings{{"sessions.max_per_account", "3"}});
  Client c(daemon.port());
  std::string id = active_account(c, "many@example.com");
  std::vector<Opened> s;
  for (int i = 0; i < 5; ++i) s.push_back(open_session(c, "many@example.com"));
  CHECK_FALSE(valid(c, s[0].token));
  CHECK_FALSE(valid(c, s[1].token));
  for (int i = 2; i < 5; ++i) CHECK(valid(c, s[i].token));
  std::string list = c.call("SESSIONS " + id);
  CHECK(field(list, "count") == "3");
  CHECK(field(list, "s1.id") == s[2].session);  // oldest first
  CHECK(field(list, "s3.id") == s[4].session);
}

// Half the checkers pipeline eight checks a write, so that their checks go through the read-ahead
// (which digests the tokens and fetches the session before the batch runs), while another
// connection keeps opening and ending sessions of another account, changing the index under them.
TEST_CASE("32 connections checking while another revokes: after the revocation's OK no check succeeds", "[sessions][race]") {
  Daemon daemon;
  Client c(daemon.port());
  std::string id = active_account(c, "raced@example.com");
  active_account(c, "churn@example.com");
  auto s = open_session(c, "raced@example.com");

  using Clock = std::chrono::steady_clock;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> revoked_at{INT64_MAX};  // when the revocation's OK was read
  std::atomic<int> ok_before{0}, late_ok{0}, refused_after{0};
  std::latch ready(33);
  std::vector<std::thread> checkers;
  for (int i = 0; i < 32; ++i)
    checkers.emplace_back([&, batch = i % 2 == 0 ? 1 : 8] {
      Client mine(daemon.port());
      std::string request;
      for (int k = 0; k < batch; ++k) request += "WHOAMI " + s.token + "\n";
      ready.arrive_and_wait();
      while (!stop) {
        int64_t sent = Clock::now().time_since_epoch().count();
        mine.send(request);
        for (int k = 0; k < batch; ++k) {
          bool ok = starts_with(mine.line(), "OK ");
          if (sent > revoked_at.load()) {
            if (ok) ++late_ok;
            else ++refused_after;
          } else if (ok) {
            ++ok_before;
          }
        }
      }
    });
  std::atomic<int> churned{0}, churn_failed{0};  // counted here: Catch2's assertions are not for other threads
  std::thread churn([&] {
    Client mine(daemon.port());
    while (!stop) {
      auto token = field(mine.call("LOGIN_SESSION churn@example.com owner-password"), "token");
      if (!token || !starts_with(mine.call("LOGOUT " + *token), "OK ")) ++churn_failed;
      else ++churned;
    }
  });
  Client revoker(daemon.port());
  ready.arrive_and_wait();
  std::this_thread::sleep_for(300ms);
  // The revocation comes while the index is changing: after the churn's first round at least
  // (the hash workers run at the lowest priority, so under this load that may take a while).
  for (auto until = Clock::now() + 60s; churned == 0 && Clock::now() < until;) std::this_thread::sleep_for(10ms);
  REQUIRE(field(revoker.call("LOGOUT_ALL " + id), "ended") == "1");
  revoked_at = Clock::now().time_since_epoch().count();
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : checkers) t.join();
  churn.join();
  CHECK(churned > 0);
  CHECK(churn_failed == 0);
  CHECK(ok_before > 0);
  CHECK(refused_after > 0);
  CHECK(late_ok == 0);
}

TEST_CASE("sessions survive a restart and kill -9, ended ones stay ended, idle time is written lazily", "[sessions][persistence]") {
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}, {"sessions.idle_timeout_s", "8"}};
  std::vector<Opened> kept, ended;
  {
    Daemon daemon(settings);
    daemon.wait_ready();
    Client c(daemon.port());
    for (int i = 0; i < 20; ++i) {
      std::string email = "durable" + std::to_string(i) + "@example.com";
      active_account(c, email);
      kept.push_back(open_session(c, email, " 198.51.100.7 \"device " + std::to_string(i) + "\""));
      ended.push_back(open_session(c, email));
      REQUIRE(starts_with(c.call("LOGOUT " + ended.back().token), "OK "));
    }
    CHECK(pg.sql("SELECT count(*) FROM sessions") == "20\n");
    CHECK(pg.sql("SELECT count(*) FROM sessions WHERE token_digest = '" + kept[0].token + "'") == "0\n");  // digest only
    // A check moves last use in memory; the sweep writes it once it moved by a quarter of the
    // idle timeout (2 s here).
    std::string before = pg.sql("SELECT last_used_ms FROM sessions WHERE id = '" + kept[0].session + "'");
    std::this_thread::sleep_for(2500ms);
    CHECK(valid(c, kept[0].token));
    bool written = false;
    for (int i = 0; i < 50 && !written; ++i) {
      written = pg.sql("SELECT last_used_ms FROM sessions WHERE id = '" + kept[0].session + "'") != before;
      if (!written) std::this_thread::sleep_for(200ms);
    }
    CHECK(written);
    daemon.stop(SIGKILL);
  }
  Daemon daemon(settings);
  daemon.wait_ready();
  Client c(daemon.port());
  CHECK(field(c.call("STATS"), "sessions") == "20");
  for (const auto& s : kept) CHECK(valid(c, s.token));
  for (const auto& s : ended) CHECK_FALSE(valid(c, s.token));
  CHECK(field(c.call("WHOAMI " + kept[3].token), "session") == kept[3].session);
}

// Schema 5 moved session tokens from BLAKE2b-256 to SHA-256 digests (accounts/secrets.hpp). The
// sessions stored before keep working until they end, and only they are looked up by BLAKE2b.
TEST_CASE("session tokens are stored as SHA-256, and sessions stored as BLAKE2b before schema 5 check and end until gone", "[sessions][persistence]") {
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  // What a daemon before schema 5 stored for a token: libsodium's BLAKE2b-256, in hex.
  auto blake2b_hex = [](const std::string& token) {
    unsigned char digest[32];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(token.data()), token.size(),
                       nullptr, 0);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    return std::string(hex);
  };
  auto store = [&](const std::string& session, const std::string& account, const std::string& token) {
    pg.sql("INSERT INTO sessions (id, account_id, token_digest, created_ms, last_used_ms, expires_ms) "
           "SELECT '" + session + "', '" + account + "', '" + blake2b_hex(token) + "', now_ms, now_ms, now_ms + 86400000 "
           "FROM (SELECT (extract(epoch FROM now()) * 1000)::bigint AS now_ms) n");
  };
  const std::string old_token = "oldTokenFromBeforeSchema5_" + std::string(17, 'x');
  const std::string unmarked_token = "unmarkedBlake2bDigest_" + std::string(21, 'y');
  const std::string old_session = "01a20cc1-0000-7000-8000-00000000b1ac", unmarked_session = "01a20cc1-0000-7000-8000-00000000b1ad";
  REQUIRE(old_token.size() == 43);
  REQUIRE(unmarked_token.size() == 43);
  std::string id;
  {
    Daemon daemon(settings);
    daemon.wait_ready();
    Client c(daemon.port());
    id = active_account(c, "digests@example.com");
    REQUIRE(daemon.stop() == 0);
  }
  // The database as schema 4 left it, holding a session a daemon of then opened.
  pg.sql("ALTER TABLE sessions DROP COLUMN blake2b_digest; DELETE FROM schema_migrations WHERE version = 5");
  store(old_session, id, old_token);
  Opened fresh;
  {
    Daemon daemon(settings);  // migrates to schema 5, which marks the stored session
    daemon.wait_ready();
    Client c(daemon.port());
    CHECK(pg.sql("SELECT blake2b_digest FROM sessions WHERE id = '" + old_session + "'") == "t\n");
    CHECK(field(c.call("WHOAMI " + old_token), "session") == old_session);
    fresh = open_session(c, "digests@example.com");
    // PostgreSQL's own sha256() finds the new row, and it is of the new kind.
    CHECK(pg.sql("SELECT blake2b_digest FROM sessions WHERE token_digest = encode(sha256('" + fresh.token +
                 "'::bytea), 'hex')") == "f\n");
    CHECK(field(c.call("WHOAMI " + fresh.token), "session") == fresh.session);
    CHECK_FALSE(valid(c, "neverIssuedTokenOfTheRightShape_" + std::string(11, 'z')));
    CHECK(starts_with(c.call("LOGOUT " + old_token), "OK "));
    CHECK_FALSE(valid(c, old_token));
    CHECK(pg.sql("SELECT count(*) FROM sessions WHERE blake2b_digest") == "0\n");
    REQUIRE(daemon.stop() == 0);
  }
  // With no marked row left, BLAKE2b is not tried: a row that holds one unmarked does not check.
  store(unmarked_session, id, unmarked_token);
  Daemon daemon(settings);
  daemon.wait_ready();
  Client c(daemon.port());
  CHECK_FALSE(valid(c, unmarked_token));
  CHECK(valid(c, fresh.token));
  CHECK(field(c.call("STATS"), "sessions") == "2");  // loaded, just never found by that token
}

TEST_CASE("thousands of stored sessions, out of order, load onto their accounts oldest first", "[sessions][persistence]") {
  // More rows than one chunk of the warm-load, so that the parser threads each take some, and
  // both accounts' sessions reach both threads. The table holds them newest first.
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  std::string first, second;
  {
    Daemon daemon(settings);
    daemon.wait_ready();
    Client c(daemon.port());
    first = active_account(c, "first@example.com");
    second = active_account(c, "second@example.com");
    REQUIRE(daemon.stop() == 0);
  }
  pg.sql("INSERT INTO sessions (id, account_id, token_digest, created_ms, last_used_ms, expires_ms) "
         "SELECT md5('s' || g)::uuid, CASE WHEN g % 2 = 0 THEN '" + first + "' ELSE '" + second + "' END::uuid, "
         "encode(sha256(('t' || g)::bytea), 'hex'), now_ms - 20000 + g, now_ms, now_ms + 86400000 "
         "FROM generate_series(1, 10000) g, (SELECT (extract(epoch FROM now()) * 1000)::bigint AS now_ms) n "
         "ORDER BY g DESC");
  Daemon daemon(settings);
  daemon.wait_ready();
  Client c(daemon.port());
  CHECK(field(c.call("STATS"), "sessions") == "10000");
  for (const auto& id : {first, second}) {
    std::string list = c.call("SESSIONS " + id);
    REQUIRE(field(list, "count") == "5000");
    // The created times in the order listed: s1.created=..., s2.created=..., one pass.
    std::vector<std::string> created;
    std::istringstream words(list);
    for (std::string word; words >> word;)
      if (auto at = word.find(".created="); at != std::string::npos) created.push_back(word.substr(at + 9));
    REQUIRE(created.size() == 5000);
    CHECK(std::is_sorted(created.begin(), created.end()));
    CHECK(std::adjacent_find(created.begin(), created.end()) == created.end());  // all distinct
  }
}

TEST_CASE("while the sessions load, LOADING and STATS say so, with every account already counted", "[sessions][persistence]") {
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  std::string id;
  {
    Daemon daemon(settings);
    daemon.wait_ready();
    Client c(daemon.port());
    id = active_account(c, "phase@example.com");
    for (int i = 0; i < 3; ++i) open_session(c, "phase@example.com");
    REQUIRE(daemon.stop() == 0);
  }
  pg.sql("ANALYZE sessions");
  // The accounts load; the sessions wait for this lock (a deterministic trigger, not a timer).
  TableLock lock(pg, "sessions");
  Daemon daemon(settings);
  Client c(daemon.port());
  std::string loading;
  for (int i = 0; i < 300 && loading.find("sessions") == std::string::npos; ++i) {
    loading = c.call("PING");
    if (loading.find("sessions") == std::string::npos) std::this_thread::sleep_for(50ms);
  }
  INFO(loading);
  CHECK(starts_with(loading, "ERR LOADING loaded 1 accounts; loading sessions: 0 rows of about 3 (0%)"));
  std::string stats = c.call("STATS");
  CHECK(field(stats, "loading") == "1");
  CHECK(field(stats, "loaded") == "1");
  CHECK(field(stats, "loaded_sessions") == "0");
  lock.release();
  daemon.wait_ready();
  stats = c.call("STATS");
  CHECK(field(stats, "loaded_sessions") == "3");
  CHECK(field(stats, "sessions") == "3");
  CHECK(field(c.call("SESSIONS " + id), "count") == "3");
}

TEST_CASE("a session row that breaks an invariant stops the start and names the row", "[sessions][persistence]") {
  PgServer pg;
  seed(pg, "seeded@example.com");
  pg.sql("INSERT INTO sessions SELECT '01a20cc1-7344-7dae-aa15-339ece76400d', id, 'not-hex', 1, 1, 2, '', '' FROM accounts");
  auto [status, log] = run_to_exit(Settings{{"database.url", pg.url_setting()}});
  CHECK(status == 1);
  CHECK(log.find("session 01a20cc1-7344-7dae-aa15-339ece76400d: token_digest is not a 64-digit hex digest") !=
        std::string::npos);
}
