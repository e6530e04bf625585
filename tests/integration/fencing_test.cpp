// Fencing the single writer (issue 9, items 6 and 7): a daemon that lost the database lease never
// answers again as the authority, and nothing commits for it once another daemon holds the lease.
// The first daemon connects as its own PostgreSQL role, so that a test can cut it off (terminate
// its backends, forbid it to log in) while a second daemon, as postgres, takes over.
#include <catch2/catch.hpp>
#include <thread>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string role_url(const PgServer& pg, const std::string& role) {
  return "\"host=" + pg.dir() + " port=5432 user=" + role + " dbname=postgres\"";
}

void cut_off(const PgServer& pg, const std::string& application) {
  pg.sql("ALTER ROLE daemon_a NOLOGIN");
  pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'daemon_a' AND application_name LIKE '" +
         application + "'");
}

}  // namespace

TEST_CASE("after losing the lease a daemon answers FENCED, never the old truth, and stops once another took over", "[fencing]") {
  PgServer pg;
  pg.sql("CREATE ROLE daemon_a LOGIN SUPERUSER");
  Daemon a(Settings{{"database.url", role_url(pg, "daemon_a")}});
  a.wait_ready();
  Client ca(a.port());
  std::string id = ok_field(ca, "REGISTER victim@example.com old-password", "id");
  ok_field(ca, "CONFIRM " + id + " " + ok_field(ca, "RESEND " + id, "token"), "id");
  CHECK(starts_with(ca.call("LOGIN victim@example.com old-password"), "OK "));

  // What a PostgreSQL restart does to A: its sessions end, and with them the lock.
  cut_off(pg, "%");
  CHECK(wait_for_reply(ca, "LOGIN victim@example.com old-password", "ERR FENCED "));

  Daemon b(Settings{{"database.url", pg.url_setting()}});
  b.wait_ready();
  Client cb(b.port());
  CHECK(field(cb.call("DEACTIVATE " + id), "state") == "deactivated");
  CHECK(starts_with(cb.call("CHANGE_PASSWORD " + id + " old-password new-password"), "OK "));

  // However often A is asked, it never answers with what B has changed since.
  for (int i = 0; i < 20; ++i) {
    CHECK(starts_with(ca.call("LOGIN victim@example.com old-password"), "ERR FENCED "));
    CHECK(starts_with(ca.call("GET " + id), "ERR FENCED "));
    std::this_thread::sleep_for(100ms);
  }
  CHECK(field(ca.call("STATS"), "lease") == "lost");

  // A may reconnect: it finds the lease taken (a new epoch) and stops.
  pg.sql("ALTER ROLE daemon_a LOGIN");
  CHECK(a.wait_exit(30s) == 1);
  CHECK(a.log().find("another daemon took the database lease") != std::string::npos);
  CHECK(starts_with(cb.call("LOGIN victim@example.com new-password"), "ERR DEACTIVATED "));
}

TEST_CASE("a write still queued in a daemon that lost the lease never commits over the new holder's", "[fencing]") {
  PgServer pg;
  pg.sql("CREATE ROLE daemon_a LOGIN SUPERUSER");
  // Two writer connections, as in the probe: the lease connection is not the only one that writes.
  Daemon a(Settings{{"database.url", role_url(pg, "daemon_a")}, {"database.connections", "2"},
                    {"database.write_timeout_s", "1"}});
  a.wait_ready();
  Client ca(a.port());
  std::string id = ok_field(ca, "REGISTER moving@example.com some-password", "id");

  // A's writers are cut off while its lease holds: A accepts a change it cannot commit yet.
  cut_off(pg, "accountsd writer");
  CHECK(starts_with(ca.call("CHANGE_EMAIL " + id + " a-side@example.com"), "ERR UNAVAILABLE "));
  // Then the lease goes too, and B takes over and changes the same account, acknowledged.
  cut_off(pg, "accountsd lease");
  Daemon b(Settings{{"database.url", pg.url_setting()}});
  b.wait_ready();
  Client cb(b.port());
  CHECK(field(cb.call("GET " + id), "email") == "moving@example.com");

  // A gets its connections back. Unfenced, its queued change would now commit as version 2 behind
  // B's back, and B's own version 2 below would be skipped by the version guard although B
  // acknowledges it. Fenced, A's change finds the epoch moved, is dropped (never acknowledged),
  // and A stops.
  pg.sql("ALTER ROLE daemon_a LOGIN");
  CHECK(a.wait_exit(30s) == 1);
  CHECK(field(cb.call("CHANGE_EMAIL " + id + " b-side@example.com"), "version") == "2");
  CHECK(pg.sql("SELECT email, version FROM accounts WHERE id = '" + id + "'") == "b-side@example.com|2\n");

  // B's acknowledged change survives B's restart.
  CHECK(b.stop() == 0);
  Daemon b2(Settings{{"database.url", pg.url_setting()}});
  b2.wait_ready();
  Client c2(b2.port());
  CHECK(field(c2.call("GET " + id), "email") == "b-side@example.com");
}

// The writer's fence itself, without the lease connection's help: another holder's epoch bump is
// left uncommitted, so the lease connection still reads the old epoch, while a batch runs its
// statements and its fence waits for the lease row. Once the bump commits, the fence finds the
// epoch moved. The batch goes out as one pipeline in one implicit transaction, so the account's
// update, which PostgreSQL ran before the fence, must roll back with it.
TEST_CASE("a batch whose fence finds the epoch moved rolls back whole, and its daemon stops", "[fencing]") {
  PgServer pg;
  Daemon a(Settings{{"database.url", pg.url_setting()}, {"database.write_timeout_s", "1"}});
  a.wait_ready();
  Client c(a.port());
  std::string id = ok_field(c, "REGISTER before@example.com some-password", "id");

  OpenTransaction bump(pg, "UPDATE writer_lease SET epoch = epoch + 1 WHERE id = 1;");
  REQUIRE(wait_for_sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
                           " AND query LIKE 'UPDATE writer_lease%'", "1\n"));
  CHECK(starts_with(c.call("CHANGE_EMAIL " + id + " after@example.com"), "ERR UNAVAILABLE "));
  REQUIRE(wait_for_sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'accountsd writer'"
                           " AND wait_event_type = 'Lock'", "1\n"));
  bump.commit();

  CHECK(a.wait_exit(30s) == 1);
  CHECK(a.log().find("another daemon writes now") != std::string::npos);
  CHECK(pg.sql("SELECT email, version FROM accounts WHERE id = '" + id + "'") == "before@example.com|1\n");
  CHECK(pg.sql("SELECT count(*) FROM changes WHERE accounts @> ARRAY['" + id + "'::uuid]") == "1\n");  // REGISTER's
}
