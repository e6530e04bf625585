// Replicas and failover (issue 12) with real daemons over one real PostgreSQL: following without
// gaps (email swaps applied as one unit), read-your-writes through WAIT, READONLY naming the
// primary, convergence under concurrent load with a replica killed and restarted, kill -9 of the
// primary with a standby taking over, and the faults: no schema yet, a log that cannot continue,
// a replica cut off from the database, and a primary cut off from it while the standby takes over.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

// A cluster node. `role` names the PostgreSQL role it connects as ("" = postgres), so that a test
// can cut one node off the database.
Settings node(const PgServer& pg, bool promote = true, const std::string& role = "") {
  std::string url = role.empty() ? pg.url_setting() : "\"host=" + pg.dir() + " port=5432 user=" + role + " dbname=postgres\"";
  return Settings{{"database.url", url}, {"replication.enabled", "true"}, {"replication.promote", promote ? "true" : "false"}};
}

void cut_off(const PgServer& pg, const std::string& role) {
  pg.sql("ALTER ROLE " + role + " NOLOGIN");
  pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role + "'");
}

std::string role_field(Client& c, const std::string& key) {
  std::string reply = c.call("ROLE");
  INFO(reply);
  REQUIRE(starts_with(reply, "OK "));
  return *field(reply, key);
}

std::string position_of(Client& primary) { return role_field(primary, "position"); }

// Waits until `replica` applied what `primary` committed so far.
void caught_up(Client& replica, Client& primary) {
  std::string reply = replica.call("WAIT " + position_of(primary) + " 30000");
  INFO(reply);
  REQUIRE(starts_with(reply, "OK position="));
}

std::string active_account(Client& c, const std::string& email, const std::string& password = "first-password") {
  std::string reply = c.call("REGISTER " + email + " " + password);
  INFO(reply);
  REQUIRE(starts_with(reply, "OK "));
  std::string id = *field(reply, "id");
  REQUIRE(starts_with(c.call("CONFIRM " + id + " " + *field(reply, "token")), "OK "));
  return id;
}

std::string local(int port) { return "127.0.0.1:" + std::to_string(port); }

// For writer threads, where Catch's assertions may not be used: the field of an OK reply, or an
// exception saying what was asked and answered.
std::string must(Client& c, const std::string& request, const std::string& key) {
  std::string reply = c.call(request);
  auto value = field(reply, key);
  if (!starts_with(reply, "OK ") || !value) throw std::runtime_error(request + " -> " + reply);
  return *value;
}

}  // namespace

TEST_CASE("replication: a replica follows, answers READONLY naming the primary, and WAIT gives read-your-writes", "[replication]") {
  PgServer pg;
  Daemon primary(node(pg));
  primary.wait_ready();
  Client cp(primary.port());
  CHECK(role_field(cp, "role") == "primary");
  std::string a = active_account(cp, "alice@example.com");
  std::string session = ok_field(cp, "LOGIN_SESSION alice@example.com first-password", "token");

  Daemon replica(node(pg, false));
  replica.wait_ready();
  Client cr(replica.port());
  CHECK(role_field(cr, "role") == "replica");
  CHECK(role_field(cr, "primary") == local(primary.port()));
  CHECK(role_field(cr, "promote") == "no");
  std::string stats = cr.call("STATS");
  CHECK(field(stats, "role") == "replica");
  CHECK(field(stats, "database") == "up");  // its follower's connection, not a writer's
  CHECK(field(stats, "lease") == "none");

  // What the warm-load brought: the account, its password, its session.
  CHECK(field(cr.call("FIND alice@example.com"), "id") == a);
  CHECK(starts_with(cr.call("LOGIN alice@example.com first-password"), "OK "));
  CHECK(field(cr.call("WHOAMI " + session), "id") == a);

  // Every change command answers READONLY with the primary's address, and changes nothing.
  for (const std::string& change :
       {std::string("REGISTER bob@example.com some-password"), "CHANGE_EMAIL " + a + " eve@example.com", "DELETE " + a,
        std::string("LOGIN_SESSION alice@example.com first-password"), "LOGOUT " + session,
        "CHANGE_PASSWORD " + a + " first-password second-password", std::string("RESET_REQUEST alice@example.com")}) {
    std::string reply = cr.call(change);
    INFO(change << " -> " << reply);
    CHECK(starts_with(reply, "ERR READONLY "));
    CHECK(reply.find("primary=" + local(primary.port())) != std::string::npos);
  }
  CHECK(field(cp.call("GET " + a), "email") == "alice@example.com");

  // Read your writes: a change's reply carries its position; WAIT on the replica returns once it
  // has applied it, and then the replica shows the change.
  std::string reply = cp.call("CHANGE_PASSWORD " + a + " first-password second-password");
  REQUIRE(starts_with(reply, "OK "));
  std::string position = *field(reply, "position");
  CHECK(starts_with(cr.call("WAIT " + position + " 10000"), "OK position="));
  CHECK(field(cr.call("GET " + a), "version") == field(reply, "version"));
  CHECK(starts_with(cr.call("LOGIN alice@example.com second-password"), "OK "));
  CHECK(starts_with(cr.call("LOGIN alice@example.com first-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(cr.call("WHOAMI " + session), "ERR INVALID_SESSION "));  // a password change ends sessions
  // A position nobody reached: TIMEOUT after the time asked, and bad arguments are refused.
  CHECK(starts_with(cr.call("WAIT 999999999 100"), "ERR TIMEOUT "));
  CHECK(starts_with(cr.call("WAIT soon"), "ERR BAD_REQUEST "));
  CHECK(starts_with(cr.call("WAIT 1 600000"), "ERR BAD_REQUEST "));
  // On the primary every position it reported is committed: WAIT returns at once.
  CHECK(starts_with(cp.call("WAIT " + position + " 0"), "OK position="));

  // A new session opened on the primary works on the replica, and a logout there ends it here.
  std::string token = ok_field(cp, "LOGIN_SESSION alice@example.com second-password", "token");
  caught_up(cr, cp);
  CHECK(field(cr.call("WHOAMI " + token), "id") == a);
  CHECK(field(cr.call("SESSIONS " + a), "count") == "1");
  ok_field(cp, "LOGOUT " + token, "session");
  caught_up(cr, cp);
  CHECK(starts_with(cr.call("WHOAMI " + token), "ERR INVALID_SESSION "));
  // A replica keeps its own lockout: failures there count there.
  for (int i = 0; i < 5; ++i) cr.call("LOGIN alice@example.com wrong-password");
  CHECK(starts_with(cr.call("LOGIN alice@example.com second-password"), "ERR LOCKED "));
  CHECK(starts_with(cp.call("LOGIN alice@example.com second-password"), "OK "));
}

TEST_CASE("replication: a replica cut off from the database serves reads, falls behind, and applies an email swap as one unit", "[replication]") {
  PgServer pg;
  pg.sql("CREATE ROLE replica_r LOGIN SUPERUSER");
  Daemon primary(node(pg));
  primary.wait_ready();
  Client cp(primary.port());
  std::string a = active_account(cp, "a@example.com"), b = active_account(cp, "b@example.com");
  std::string token = ok_field(cp, "LOGIN_SESSION b@example.com first-password", "token");
  Settings settings = node(pg, false, "replica_r");
  settings["replication.session_max_lag_ms"] = "1000";
  Daemon replica(settings);
  replica.wait_ready();
  Client cr(replica.port());
  caught_up(cr, cp);

  cut_off(pg, "replica_r");
  REQUIRE(wait_for_log(replica, "replication: lost the database"));
  // The swap takes three commits on the primary (an address is free only once its release
  // committed). The replica, away, gets all three in one unit: memory holds a@ -> A and b@ -> B,
  // the unit says a@ -> B and b@ -> A.
  ok_field(cp, "CHANGE_EMAIL " + a + " swap@example.com", "id");
  ok_field(cp, "CHANGE_EMAIL " + b + " a@example.com", "id");
  ok_field(cp, "CHANGE_EMAIL " + a + " b@example.com", "id");
  // Reads go on from memory, and the lag shows.
  CHECK(field(cr.call("FIND a@example.com"), "id") == a);
  std::this_thread::sleep_for(1500ms);
  CHECK(std::stoll(role_field(cr, "lag_ms")) >= 1000);
  // Too far behind to vouch for a session: it may have missed a logout. GET and FIND go on.
  CHECK(starts_with(cr.call("WHOAMI " + token), "ERR UNAVAILABLE "));
  CHECK(starts_with(cr.call("GET " + a), "OK "));

  pg.sql("ALTER ROLE replica_r LOGIN");
  caught_up(cr, cp);
  CHECK(field(cr.call("FIND a@example.com"), "id") == b);
  CHECK(field(cr.call("FIND b@example.com"), "id") == a);
  CHECK(starts_with(cr.call("FIND swap@example.com"), "ERR NOT_FOUND "));
  CHECK(field(cr.call("GET " + a), "email") == "b@example.com");
  CHECK(role_field(cr, "reloads") == "0");  // applied in place: no reload was needed
  CHECK(role_field(cr, "lag_ms") == "0");
  CHECK(field(cr.call("WHOAMI " + token), "id") == b);  // the session moved with b's account, not its address
}

TEST_CASE("replication: one primary and two replicas under concurrent mixed writes converge, a replica killed and restarted catches up", "[replication]") {
  PgServer pg;
  Daemon primary(node(pg));
  primary.wait_ready();
  Daemon r1(node(pg, false));
  r1.wait_ready();
  auto r2 = std::make_unique<Daemon>(node(pg, false));
  r2->wait_ready();

  // Each writer owns its accounts and knows what it did to them; they run at once.
  struct Known {
    std::string email, password;
    bool deleted = false;
    std::vector<std::string> open, ended;  // session tokens
  };
  std::mutex mutex;
  std::map<std::string, Known> known;  // by id
  std::atomic<int> progress{0};
  std::vector<std::string> failures;
  auto write = [&](int w) {
    Client c(primary.port());
    std::mt19937 random(static_cast<unsigned>(w));
    std::vector<std::string> mine;
    auto remember = [&](const std::string& id, Known k) {
      std::lock_guard lock(mutex);
      known[id] = std::move(k);
    };
    auto get = [&](const std::string& id) {
      std::lock_guard lock(mutex);
      return known[id];
    };
    for (int i = 0; i < 120; ++i, ++progress) {
      int op = mine.size() < 4 ? 0 : static_cast<int>(random() % 7);
      if (op == 0) {
        std::string email = "w";  // in steps: g++ 12 warns falsely (-Wrestrict) on one expression
        email += std::to_string(w) + "-" + std::to_string(i) + "@example.com";
        std::string registered = c.call("REGISTER " + email + " first-password");
        std::string id = must(c, "CONFIRM " + field(registered, "id").value_or("?") + " " + field(registered, "token").value_or("?"), "id");
        mine.push_back(id);
        remember(id, Known{email, "first-password", false, {}, {}});
        continue;
      }
      std::string id = mine[random() % mine.size()];
      Known k = get(id);
      if (k.deleted) continue;
      if (op == 1) {  // swap addresses with another of mine, in three commits
        std::string other = mine[random() % mine.size()];
        Known o = get(other);
        if (other == id || o.deleted) continue;
        std::string parked = "parked-" + std::to_string(w) + "-" + std::to_string(i) + "@example.com";
        must(c, "CHANGE_EMAIL " + id + " " + parked, "id");
        must(c, "CHANGE_EMAIL " + other + " " + k.email, "id");
        must(c, "CHANGE_EMAIL " + id + " " + o.email, "id");
        std::swap(k.email, o.email);
        remember(other, o);
      } else if (op == 2) {
        std::string next = "password-" + std::to_string(i) + "-" + std::to_string(w);
        must(c, "CHANGE_PASSWORD " + id + " " + k.password + " " + next, "id");
        k.password = next;
        k.ended.insert(k.ended.end(), k.open.begin(), k.open.end());
        k.open.clear();
      } else if (op == 3) {
        k.open.push_back(must(c, "LOGIN_SESSION " + k.email + " " + k.password, "token"));
      } else if (op == 4 && !k.open.empty()) {
        must(c, "LOGOUT " + k.open.back(), "session");
        k.ended.push_back(k.open.back());
        k.open.pop_back();
      } else if (op == 5) {
        must(c, "DEACTIVATE " + id, "id");
        must(c, "REACTIVATE " + id, "id");
        k.ended.insert(k.ended.end(), k.open.begin(), k.open.end());
        k.open.clear();
      } else if (op == 6 && random() % 3 == 0) {
        must(c, "DELETE " + id, "id");
        k.deleted = true;
        k.ended.insert(k.ended.end(), k.open.begin(), k.open.end());
        k.open.clear();
      }
      remember(id, k);
    }
  };
  auto writer = [&](int w) {
    try {
      write(w);
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex);
      failures.push_back(e.what());
    }
  };
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) writers.emplace_back(writer, w);
  // Under load: kill -9 one replica, and start it again while the writers go on.
  while (progress < 160) std::this_thread::sleep_for(10ms);
  CHECK(r2->stop(SIGKILL) == 128 + SIGKILL);
  r2 = std::make_unique<Daemon>(node(pg, false));
  r2->wait_ready();
  for (auto& t : writers) t.join();
  for (const auto& failure : failures) FAIL_CHECK(failure);

  Client cp(primary.port()), c1(r1.port()), c2(r2->port());
  caught_up(c1, cp);
  caught_up(c2, cp);
  REQUIRE(known.size() > 20);
  for (const auto& [id, k] : known) {
    INFO(id << " " << k.email);
    std::string on_primary = cp.call("GET " + id);
    CHECK(c1.call("GET " + id) == on_primary);
    CHECK(c2.call("GET " + id) == on_primary);
    if (k.deleted) {
      CHECK(starts_with(on_primary, "ERR NOT_FOUND "));
      continue;
    }
    CHECK(field(on_primary, "email") == k.email);
    for (Client* c : {&cp, &c1, &c2}) {
      CHECK(field(c->call("FIND " + k.email), "id") == id);
      CHECK(starts_with(c->call("LOGIN " + k.email + " " + k.password), "OK "));  // the same password hash
      for (const auto& token : k.open) CHECK(field(c->call("WHOAMI " + token), "id") == id);
      for (const auto& token : k.ended) CHECK(starts_with(c->call("WHOAMI " + token), "ERR INVALID_SESSION "));
    }
  }
  CHECK(field(c1.call("STATS"), "accounts") == field(cp.call("STATS"), "accounts"));
  CHECK(field(c2.call("STATS"), "accounts") == field(cp.call("STATS"), "accounts"));
  CHECK(field(c1.call("STATS"), "sessions") == field(cp.call("STATS"), "sessions"));
  CHECK(role_field(c1, "reloads") == "0");
}

TEST_CASE("failover: after kill -9 of the primary under writes the standby takes over with every acknowledged change, and the old primary comes back as a replica", "[replication][failover]") {
  PgServer pg;
  auto primary = std::make_unique<Daemon>(node(pg));
  primary->wait_ready();
  Daemon standby(node(pg));
  standby.wait_ready();
  Client cs(standby.port());
  CHECK(role_field(cs, "role") == "replica");
  CHECK(role_field(cs, "promote") == "yes");

  std::mutex mutex;
  std::vector<std::string> acknowledged;  // ids whose REGISTER answered OK
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w)
    writers.emplace_back([&, w] {
      try {
        Client c(primary->port());
        for (int i = 0; !stop; ++i) {
          std::string reply = c.call("REGISTER f" + std::to_string(w) + "-" + std::to_string(i) + "@example.com some-password");
          if (!starts_with(reply, "OK ")) return;
          std::lock_guard lock(mutex);
          acknowledged.push_back(*field(reply, "id"));
        }
      } catch (const std::exception&) {
        // The primary died under this client: what it did not answer was not acknowledged.
      }
    });
  while (true) {
    {
      std::lock_guard lock(mutex);
      if (acknowledged.size() >= 100) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  int old_port = primary->port();
  CHECK(primary->stop(SIGKILL) == 128 + SIGKILL);
  stop = true;
  for (auto& t : writers) t.join();

  // The standby takes the lease, applies everything committed, and only then takes changes.
  std::string reply;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    reply = cs.call("REGISTER after-failover@example.com some-password");
    if (!starts_with(reply, "ERR READONLY ")) break;
    std::this_thread::sleep_for(20ms);
  }
  INFO(reply << "\n" << standby.log());
  REQUIRE(starts_with(reply, "OK "));
  CHECK(role_field(cs, "role") == "primary");
  CHECK(role_field(cs, "primary") == local(standby.port()));
  {
    std::lock_guard lock(mutex);
    for (const auto& id : acknowledged) CHECK(starts_with(cs.call("GET " + id), "OK "));
  }
  CHECK(field(cs.call("STATS"), "accounts") == pg.sql("SELECT count(*) FROM accounts").substr(0, pg.sql("SELECT count(*) FROM accounts").size() - 1));

  // The old primary, started again, finds the lease taken: it joins as a replica and never writes.
  Daemon again(node(pg));
  again.wait_ready();
  Client ca(again.port());
  CHECK(again.port() != old_port);
  CHECK(role_field(ca, "role") == "replica");
  CHECK(role_field(ca, "primary") == local(standby.port()));
  std::string refused = ca.call("REGISTER old-primary@example.com some-password");
  CHECK(starts_with(refused, "ERR READONLY "));
  CHECK(refused.find("primary=" + local(standby.port())) != std::string::npos);
  std::string id = *field(cs.call("REGISTER seen-everywhere@example.com some-password"), "id");
  caught_up(ca, cs);
  CHECK(starts_with(ca.call("GET " + id), "OK "));
  CHECK(pg.sql("SELECT count(*) FROM accounts WHERE email = 'old-primary@example.com'") == "0\n");
}

TEST_CASE("replication faults: no schema yet, a change log that cannot continue, and a node that may not promote", "[replication]") {
  PgServer pg;
  pg.sql("CREATE ROLE replica_r LOGIN SUPERUSER");
  // A replica on an empty database waits (LOADING) and says why; it never creates the schema.
  Daemon replica(node(pg, false, "replica_r"));
  REQUIRE(wait_for_log(replica, "the database has no accountsd schema yet"));
  Client cr(replica.port());
  CHECK(starts_with(cr.call("GET 00000000-0000-0000-0000-000000000001"), "ERR LOADING "));
  CHECK(role_field(cr, "role") == "replica");
  CHECK(pg.sql("SELECT to_regclass('accounts') IS NULL") == "t\n");

  Daemon primary(node(pg));
  primary.wait_ready();
  Client cp(primary.port());
  std::string a = active_account(cp, "first@example.com");
  std::string kept = active_account(cp, "kept@example.com");
  std::string moved = active_account(cp, "moving@example.com");
  replica.wait_ready();
  caught_up(cr, cp);
  CHECK(field(cr.call("GET " + a), "email") == "first@example.com");

  // The log loses entries this replica still needs (as trimming does to a replica away longer
  // than replication.log_retention_s): it reloads everything and converges.
  cut_off(pg, "replica_r");
  REQUIRE(wait_for_log(replica, "replication: lost the database"));
  std::string b = active_account(cp, "second@example.com");
  ok_field(cp, "DELETE " + a, "id");
  ok_field(cp, "CHANGE_EMAIL " + moved + " moved@example.com", "id");
  pg.sql("DELETE FROM changes");
  pg.sql("ALTER ROLE replica_r LOGIN");
  caught_up(cr, cp);
  CHECK(wait_for_log(replica, "the change log no longer holds every change after position"));
  CHECK(wait_for_log(replica, "replication: reloaded 3 accounts"));
  CHECK(role_field(cr, "reloads") == "1");
  CHECK(starts_with(cr.call("GET " + a), "ERR NOT_FOUND "));
  CHECK(field(cr.call("FIND second@example.com"), "id") == b);
  // An account the reload found unchanged keeps its address; one whose address moved, moves.
  CHECK(field(cr.call("FIND kept@example.com"), "id") == kept);
  CHECK(field(cr.call("FIND moved@example.com"), "id") == moved);
  CHECK(starts_with(cr.call("FIND moving@example.com"), "ERR NOT_FOUND "));
  CHECK(cr.call("GET " + kept) == cp.call("GET " + kept));
  CHECK(cr.call("GET " + moved) == cp.call("GET " + moved));
  CHECK(field(cr.call("STATS"), "accounts") == "3");

  // promote = false: when the primary goes, this node stays a replica and keeps serving reads.
  CHECK(primary.stop() == 0);
  std::this_thread::sleep_for(2s);
  CHECK(role_field(cr, "role") == "replica");
  CHECK(field(cr.call("GET " + b), "email") == "second@example.com");
  CHECK(starts_with(cr.call("REGISTER third@example.com some-password"), "ERR READONLY "));
}

TEST_CASE("replication: a row a replica cannot load stops that replica with the account named, and nothing else", "[replication]") {
  PgServer pg;
  Daemon primary(node(pg));
  primary.wait_ready();
  Client cp(primary.port());
  std::string id = active_account(cp, "broken@example.com");
  Daemon replica(node(pg, false));
  replica.wait_ready();
  Client cr(replica.port());
  caught_up(cr, cp);
  // Someone edits the table by hand, and the change log names the account.
  pg.sql("BEGIN; UPDATE accounts SET state = 'bogus' WHERE id = '" + id + "'; "
         "UPDATE writer_lease SET position = position + 1; "
         "INSERT INTO changes (position, committed_ms, accounts) SELECT position, 0, ARRAY['" + id + "'::uuid] FROM writer_lease; "
         "COMMIT; NOTIFY accountsd_changes");
  CHECK(replica.wait_exit(30s) == 1);  // it stops: it cannot show the truth
  CHECK(replica.log().find(id) != std::string::npos);
  CHECK(replica.log().find("cannot load") != std::string::npos);
  CHECK(starts_with(cp.call("GET " + id), "OK "));  // the primary goes on
}

TEST_CASE("replication.enabled needs a database", "[replication][config]") {
  auto [status, log] = run_to_exit({{"replication.enabled", "true"}});
  CHECK(status != 0);
  CHECK(log.find("replication.enabled needs database.url") != std::string::npos);
}

TEST_CASE("replication: a session checked only on a replica stays alive on the primary, its last use sent back", "[replication][sessions]") {
  PgServer pg;
  Settings settings = node(pg);
  settings["sessions.idle_timeout_s"] = "6";
  Daemon primary(settings);
  primary.wait_ready();
  Client cp(primary.port());
  active_account(cp, "idle@example.com");
  std::string token = ok_field(cp, "LOGIN_SESSION idle@example.com first-password", "token");
  settings = node(pg, false);
  settings["sessions.idle_timeout_s"] = "6";
  Daemon replica(settings);
  replica.wait_ready();
  Client cr(replica.port());
  caught_up(cr, cp);
  // For twice the idle timeout, only the replica sees the user.
  for (int i = 0; i < 12; ++i) {
    CHECK(starts_with(cr.call("WHOAMI " + token), "OK "));
    std::this_thread::sleep_for(1s);
  }
  CHECK(starts_with(cp.call("WHOAMI " + token), "OK "));
  // The primary wrote the last use it was sent (lazily: within a quarter of the idle timeout).
  CHECK(std::stoll(pg.sql("SELECT (extract(epoch FROM now()) * 1000)::bigint - last_used_ms FROM sessions")) < 6000);
}

namespace {
std::string count_changes(const PgServer& pg, const std::string& where) {
  std::string n = pg.sql("SELECT count(*) FROM changes WHERE " + where);
  return n.substr(0, n.find('\n'));
}
bool wait_for_count(const PgServer& pg, const std::string& where, const std::string& expected) {
  for (auto until = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < until;) {
    if (count_changes(pg, where) == expected) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}
}  // namespace

TEST_CASE("change log: entries older than log_retention_s go, by position and a bounded number per round", "[replication]") {
  PgServer pg;
  {
    Daemon first(Settings{{"database.url", pg.url_setting()}});
    first.wait_ready();
  }  // the schema
  // A log left by an earlier writer: 150,000 entries from two hours ago, then 5 from now.
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  pg.sql("UPDATE writer_lease SET position = 200000");
  pg.sql("INSERT INTO changes (position, committed_ms, accounts, sessions) SELECT g, " + std::to_string(now - 7'200'000) +
         ", '{}', '{}' FROM generate_series(1, 150000) g");
  pg.sql("INSERT INTO changes (position, committed_ms, accounts, sessions) SELECT g, " + std::to_string(now) +
         ", '{}', '{}' FROM generate_series(150001, 150005) g");

  Daemon d(Settings{{"database.url", pg.url_setting()}, {"replication.log_retention_s", "60"}});
  d.wait_ready();
  Client c(d.port());
  register_account(c, "first@example.com");  // a commit, and the first trimming round after it
  // The first round takes the oldest 100,000 and no more.
  REQUIRE(wait_for_count(pg, "position <= 150000", "50000"));
  CHECK(count_changes(pg, "position <= 100000") == "0");
  std::this_thread::sleep_for(10500ms);  // the next round is due ten seconds after the first
  register_account(c, "second@example.com");
  CHECK(wait_for_count(pg, "position <= 150000", "0"));
  // What is younger than the retention stays: the five recent entries and this writer's own.
  CHECK(count_changes(pg, "position BETWEEN 150001 AND 150005") == "5");
  CHECK(count_changes(pg, "position > 200000") == "2");
}

TEST_CASE("failover: a primary cut off from the database is fenced while the standby takes over, stops when it finds the epoch moved, and comes back as a replica", "[replication][failover]") {
  PgServer pg;
  pg.sql("CREATE ROLE primary_p LOGIN SUPERUSER");
  Daemon primary(node(pg, true, "primary_p"));
  primary.wait_ready();
  Client cp(primary.port());
  CHECK(role_field(cp, "role") == "primary");
  Daemon standby(node(pg));
  standby.wait_ready();
  Client cs(standby.port());
  std::string id = active_account(cp, "victim@example.com", "old-password");
  caught_up(cs, cp);

  // The primary loses the database (a network partition): its lease connection goes, and with it
  // the advisory lock the standby waits on.
  cut_off(pg, "primary_p");
  CHECK(wait_for_reply(cp, "LOGIN victim@example.com old-password", "ERR FENCED "));
  std::string reply;
  for (auto until = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < until;) {
    reply = cs.call("CHANGE_PASSWORD " + id + " old-password new-password");
    if (!starts_with(reply, "ERR READONLY ")) break;
    std::this_thread::sleep_for(20ms);
  }
  INFO(reply << "\n" << standby.log());
  REQUIRE(starts_with(reply, "OK "));
  CHECK(role_field(cs, "role") == "primary");

  // However often the old primary is asked, it never answers with the old truth.
  for (int i = 0; i < 10; ++i) {
    CHECK(starts_with(cp.call("LOGIN victim@example.com old-password"), "ERR FENCED "));
    CHECK(starts_with(cp.call("DEACTIVATE " + id), "ERR FENCED "));
    std::this_thread::sleep_for(100ms);
  }

  // The partition heals: the old primary finds the epoch moved and stops (systemd restarts it).
  pg.sql("ALTER ROLE primary_p LOGIN");
  CHECK(primary.wait_exit(30s) == 1);
  CHECK(primary.log().find("restarted, it joins as a replica") != std::string::npos);
  CHECK(pg.sql("SELECT state FROM accounts WHERE id = '" + id + "'") == "active\n");

  // Restarted, it is a replica of the new primary and has its changes.
  Daemon again(node(pg, true, "primary_p"));
  again.wait_ready();
  Client ca(again.port());
  CHECK(role_field(ca, "role") == "replica");
  caught_up(ca, cs);
  CHECK(starts_with(ca.call("LOGIN victim@example.com new-password"), "OK "));
  CHECK(starts_with(ca.call("LOGIN victim@example.com old-password"), "ERR INVALID_CREDENTIALS "));
}
