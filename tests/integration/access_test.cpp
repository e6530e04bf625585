// Access security (issue 13): named clients with least privilege, secrets from files and systemd
// credentials, revocation on SIGHUP, throttling across accounts per address, and the audit log.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string sha256(const std::string& secret) {
  return run_command("printf '%s' '" + secret + "' | sha256sum | cut -c1-64").substr(0, 64);
}

// What `accountsd digest-secret` prints for `secret` (given with a trailing newline, as echo does).
std::string digest_secret_tool(const std::string& secret) {
  auto [status, out] = run_accountsd({}, "digest-secret", "echo '" + secret + "'");
  REQUIRE(status == 0);
  return out.substr(0, 64);
}

std::string client_table(const std::string& name, const std::string& secret, const std::string& allow) {
  return "[[clients]]\nname = \"" + name + "\"\nsecret_sha256 = \"" + sha256(secret) + "\"\nallow = [" + allow + "]\n";
}

}  // namespace

TEST_CASE("clients: each may run only its categories, and the refusal has its own code", "[clients]") {
  Daemon daemon({{"raw1", client_table("web", "web-secret", "\"read\", \"login\", \"self_service\"") +
                              client_table("worker", "worker-secret", "\"read\", \"DEACTIVATE\"") +
                              client_table("admin", "admin-secret", "\"all\"") +
                              client_table("metrics", "metrics-secret", "\"monitor\"")}});
  Client web(daemon.port()), worker(daemon.port()), admin(daemon.port()), metrics(daemon.port());
  CHECK(starts_with(web.call("GET 01890a5d-ac96-7a4e-8c3a-1c2d3e4f5a6b"), "ERR AUTH_REQUIRED "));
  CHECK(web.call("AUTH web web-secret") == "OK");
  CHECK(worker.call("AUTH worker worker-secret") == "OK");
  CHECK(admin.call("AUTH admin admin-secret") == "OK");
  CHECK(metrics.call("AUTH metrics metrics-secret") == "OK");

  auto account = register_account(web, "least@example.com");
  CHECK(starts_with(web.call("LOGIN least@example.com \"correct horse\""), "ERR NOT_CONFIRMED "));
  CHECK(web.call("DELETE " + account.id) == "ERR FORBIDDEN client web may not run DELETE (category admin)");
  CHECK(starts_with(web.call("STATS"), "ERR FORBIDDEN "));
  CHECK(starts_with(worker.call("GET " + account.id), "OK "));
  CHECK(starts_with(worker.call("REGISTER other@example.com correct-horse"), "ERR FORBIDDEN "));
  CHECK(!starts_with(worker.call("DEACTIVATE " + account.id), "ERR FORBIDDEN "));  // allowed
  CHECK(starts_with(worker.call("DELETE " + account.id), "ERR FORBIDDEN "));
  CHECK(starts_with(metrics.call("GET " + account.id), "ERR FORBIDDEN "));
  std::string stats = metrics.call("STATS");
  CHECK(field(stats, "clients") == "admin:1,metrics:1,web:1,worker:1");
  CHECK(starts_with(admin.call("DELETE " + account.id), "OK "));
  // The public commands need no rights.
  CHECK(metrics.call("PING") == "OK pong");
  // A wrong secret, an unknown name: the same answer.
  Client guesser(daemon.port());
  CHECK(guesser.call("AUTH web wrong") == "ERR AUTH_FAILED wrong credential");
  CHECK(guesser.call("AUTH nosuch web-secret") == "ERR AUTH_FAILED wrong credential");
  CHECK(guesser.call("AUTH web-secret") == "ERR AUTH_FAILED wrong credential");  // "default" does not exist here
}

TEST_CASE("clients: accountsd digest-secret prints what sha256sum does for the secret", "[clients]") {
  CHECK(digest_secret_tool("web-secret") == sha256("web-secret"));
  auto [status, out] = run_accountsd({}, "digest-secret", "printf ''");
  CHECK(status == 2);
}

TEST_CASE("clients: secrets from a file and from systemd's credentials directory", "[clients]") {
  char pattern[] = "/tmp/accountsd-creds-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  std::string dir = pattern;
  std::ofstream(dir + "/frontend") << "from-credentials\n";  // a trailing newline is not part of it
  std::ofstream(dir + "/worker.secret") << "from-a-file";
  std::ofstream(dir + "/legacy") << "the-old-single-secret\n";
  Settings settings{{"auth.secret_file", "\"" + dir + "/legacy\""},
                    {"raw1", "[[clients]]\nname = \"frontend\"\nsecret_credential = \"frontend\"\nallow = [\"read\"]\n"
                             "[[clients]]\nname = \"worker\"\nsecret_file = \"" + dir + "/worker.secret\"\nallow = [\"read\"]\n"}};
  Daemon daemon(settings, {{"CREDENTIALS_DIRECTORY", dir}});
  Client a(daemon.port()), b(daemon.port()), c(daemon.port());
  CHECK(a.call("AUTH frontend from-credentials") == "OK");
  CHECK(b.call("AUTH worker from-a-file") == "OK");
  CHECK(c.call("AUTH the-old-single-secret") == "OK");  // auth.secret: the client "default", allowed all
  CHECK(starts_with(c.call("STATS"), "OK "));
  CHECK(daemon.log().find("from-credentials") == std::string::npos);

  // Without CREDENTIALS_DIRECTORY the configuration says what is missing.
  auto [status, log] = run_to_exit(settings);
  CHECK(status == 2);
  CHECK(log.find("clients[0].secret_credential") != std::string::npos);
  CHECK(log.find("CREDENTIALS_DIRECTORY is not set") != std::string::npos);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("clients: SIGHUP revokes at once: a removed client or a changed secret closes its connections", "[clients]") {
  Settings before{{"raw1", client_table("web", "web-secret", "\"read\"") + client_table("ops", "ops-secret", "\"all\"") +
                               client_table("narrow", "narrow-secret", "\"read\"")}};
  Daemon daemon(before);
  Client web(daemon.port()), ops(daemon.port()), narrow(daemon.port());
  CHECK(web.call("AUTH web web-secret") == "OK");
  CHECK(ops.call("AUTH ops ops-secret") == "OK");
  CHECK(narrow.call("AUTH narrow narrow-secret") == "OK");
  CHECK(starts_with(narrow.call("STATS"), "ERR FORBIDDEN "));

  // web is gone, ops has a new secret, narrow may now run monitor commands too.
  daemon.rewrite_config({{"raw1", client_table("ops", "new-ops-secret", "\"all\"") +
                                      client_table("narrow", "narrow-secret", "\"read\", \"monitor\"")}});
  kill(daemon.pid(), SIGHUP);
  REQUIRE(wait_for_log(daemon, "clients in force"));
  CHECK(starts_with(web.call("PING"), "ERR AUTH_REQUIRED this connection's client was removed"));
  CHECK(web.closed_within(5000ms));
  CHECK(starts_with(ops.call("PING"), "ERR AUTH_REQUIRED "));
  CHECK(ops.closed_within(5000ms));
  CHECK(starts_with(narrow.call("STATS"), "OK "));  // the same secret: kept, with its new rights
  Client again(daemon.port());
  CHECK(starts_with(again.call("AUTH ops ops-secret"), "ERR AUTH_FAILED "));
  CHECK(again.call("AUTH ops new-ops-secret") == "OK");
  CHECK(wait_for_log(daemon, "audit: event=client_revoked client=web"));
  CHECK(wait_for_log(daemon, "audit: event=client_revoked client=ops"));
}

TEST_CASE("attack: credential stuffing from one address is throttled across accounts, and a flood of addresses is bounded", "[security][lockout]") {
  Daemon daemon({{"accounts.address_failures", "5"}, {"accounts.address_throttles", "16"},
                 {"accounts.lockout_threshold", "3"}, {"accounts.lockout_hourly_limit", "1000"}});
  Client c(daemon.port());
  std::vector<std::string> emails;
  for (int i = 0; i < 8; ++i) {
    emails.push_back("victim" + std::to_string(i) + "@example.com");
    auto account = register_account(c, emails.back(), "victim password");
    ok_field(c, "CONFIRM " + account.id + " " + account.token, "id");
  }
  // One try per account (the per-account lockout never sees more than one), all from one address.
  const std::string stuffer = "203.0.113.66";
  for (int i = 0; i < 4; ++i)
    CHECK(starts_with(c.call("LOGIN " + emails[i] + " guess " + stuffer), "ERR INVALID_CREDENTIALS wrong email or password"));
  CHECK(c.call("LOGIN " + emails[4] + " guess " + stuffer) ==
        "ERR INVALID_CREDENTIALS wrong email or password; this source is now locked out for 900 s");
  // From now on that address is refused for every account, right password or not, existing
  // email or not: the reply does not depend on the account.
  std::string refused = c.call("LOGIN " + emails[5] + " \"victim password\" " + stuffer);
  CHECK(starts_with(refused, "ERR LOCKED too many failed logins from this address"));
  CHECK(starts_with(c.call("LOGIN nobody@example.com guess " + stuffer), "ERR LOCKED too many failed logins from this address"));
  // An IPv6 attacker counts per /64: hopping inside the prefix does not help.
  for (int i = 0; i < 5; ++i)
    c.call("LOGIN " + emails[i] + " guess 2001:db8:1:2::" + std::to_string(i + 1));
  CHECK(starts_with(c.call("LOGIN " + emails[6] + " \"victim password\" 2001:db8:1:2:ffff::9"), "ERR LOCKED "));
  // The owners, elsewhere, are not affected.
  CHECK(starts_with(c.call("LOGIN " + emails[5] + " \"victim password\" 198.51.100.7"), "OK "));

  // 200 addresses, one failure each across the accounts: none is throttled, and the table stays
  // within its bound (the oldest are forgotten).
  for (int i = 0; i < 200; ++i) {
    std::string reply = c.call("LOGIN " + emails[7] + " guess 10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250));
    INFO(i << ": " << reply);
    // The account's own lockout (3 per source) is per source too, so each address gets its one try.
    CHECK(starts_with(reply, "ERR INVALID_CREDENTIALS "));
  }
  std::string stats = c.call("STATS");
  CHECK(std::stoul(*field(stats, "address_throttles")) <= 16);
  // Without an address, the address throttle does not apply (it would lock every caller out).
  CHECK(starts_with(c.call("LOGIN " + emails[6] + " \"victim password\""), "OK "));
  CHECK(wait_for_log(daemon, "audit: event=address_throttled"));
}

TEST_CASE("audit: security events are logged with client, account and address, and never a secret", "[clients][audit]") {
  Daemon daemon({{"raw1", client_table("web", "web-secret-value", "\"all\"")}, {"accounts.lockout_threshold", "2"}});
  Client c(daemon.port());
  CHECK(starts_with(c.call("AUTH web wrong-secret-value"), "ERR AUTH_FAILED "));
  CHECK(c.call("AUTH web web-secret-value") == "OK");
  auto account = register_account(c, "audited@example.com", "first password");
  ok_field(c, "CONFIRM " + account.id + " " + account.token, "id");
  c.call("LOGIN audited@example.com wrong-password-1 198.51.100.23");
  c.call("LOGIN audited@example.com wrong-password-2 198.51.100.23");
  CHECK(starts_with(c.call("LOGIN audited@example.com wrong-password-3 198.51.100.23"), "ERR LOCKED "));
  std::string token = ok_field(c, "RESET_REQUEST audited@example.com", "token");
  ok_field(c, "RESET_PASSWORD " + account.id + " " + token + " \"second password\"", "id");
  ok_field(c, "CHANGE_PASSWORD " + account.id + " \"second password\" \"third password\" 198.51.100.24", "id");
  ok_field(c, "DEACTIVATE " + account.id, "id");
  ok_field(c, "DELETE " + account.id, "id");

  std::string log = daemon.log();
  INFO(log);
  CHECK(log.find("audit: event=auth_failed client=web address=127.0.0.1:") != std::string::npos);
  CHECK(log.find("audit: event=login_locked email=audited@example.com address=198.51.100.23 client=web peer=127.0.0.1:") !=
        std::string::npos);
  CHECK(log.find("audit: event=password_reset_requested account=" + account.id + " address=- client=web") != std::string::npos);
  CHECK(log.find("audit: event=password_reset account=" + account.id) != std::string::npos);
  CHECK(log.find("audit: event=password_changed account=" + account.id + " address=198.51.100.24 client=web") != std::string::npos);
  CHECK(log.find("audit: event=account_deactivated account=" + account.id) != std::string::npos);
  CHECK(log.find("audit: event=account_deleted account=" + account.id + " address=- client=web") != std::string::npos);
  CHECK(log.find("audit: event=lockout email=audited@example.com address=198.51.100.23 client=web") != std::string::npos);
  for (const std::string& secret : std::vector<std::string>{"web-secret-value", "wrong-secret-value", "first password", "second password",
                                    "third password", "wrong-password-1", token, account.token})
    CHECK(log.find(secret) == std::string::npos);
}

TEST_CASE("audit: a flood of LOCKED logins cannot grow the log without bound", "[audit][security]") {
  Daemon daemon(Settings{{"accounts.address_failures", "1"}});
  Client c(daemon.port());
  c.call("LOGIN flood@example.com guess 203.0.113.99");  // locks the address out
  // Each LOCKED reply is cheap for the attacker (no hashing): 3000 of them, pipelined.
  std::string burst;
  for (int i = 0; i < 3000; ++i) burst += "LOGIN flood@example.com guess 203.0.113.99\n";
  c.send(burst);
  for (int i = 0; i < 3000; ++i) REQUIRE(starts_with(c.line(), "ERR LOCKED "));
  std::string log = daemon.log();
  size_t lines = 0;
  for (size_t at = log.find("event=address_throttled"); at != std::string::npos; at = log.find("event=address_throttled", at + 1))
    ++lines;
  CHECK(lines >= 1);
  CHECK(lines < 3000);  // bounded per second; the count of those left out follows
  c.call("PING");
  std::this_thread::sleep_for(1100ms);
  c.call("LOGIN flood@example.com guess 203.0.113.99");
  CHECK(wait_for_log(daemon, " suppressed="));
}
