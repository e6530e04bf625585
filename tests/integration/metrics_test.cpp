// Prometheus metrics (issue 14): scraped with curl, checked with promtool, and compared with what
// the test did to the daemon.
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

int metrics_port(const Daemon& daemon) { return logged_port(daemon, "metrics on http://127.0.0.1:"); }

// The exposition as curl fetched it; promtool must find it well formed (it also lints names).
std::string scrape(int port) {
  std::string file = "/tmp/accountsd-metrics-" + std::to_string(getpid()) + ".txt";
  run_command("curl -sS --fail --max-time 10 -o " + file + " http://127.0.0.1:" + std::to_string(port) + "/metrics");
  run_command("promtool check metrics < " + file);
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(file.c_str());
  return text.str();
}

// The value of the sample whose name and labels are written exactly as `series`; NaN if absent.
double value(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line))
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  return std::nan("");
}

std::string read_source(const std::string& relative) {
  std::ifstream in(std::string(ACCOUNTSD_SOURCE_DIR) + "/" + relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("metrics: the scrape parses and counts what happened", "[metrics]") {
  PgServer pg;
  Daemon daemon({{"database.url", pg.url_setting()},
                 {"metrics.listen", "\"127.0.0.1:0\""},
                 {"accounts.lockout_threshold", "2"}});
  daemon.wait_ready();
  int port = metrics_port(daemon);
  Client c(daemon.port());
  auto account = register_account(c, "metered@example.com");
  CHECK(starts_with(c.call("LOGIN metered@example.com wrong-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("LOGIN metered@example.com wrong-password"), "ERR INVALID_CREDENTIALS "));
  CHECK(starts_with(c.call("LOGIN metered@example.com wrong-password"), "ERR LOCKED "));
  CHECK(starts_with(c.call("GET " + account.id), "OK "));
  CHECK(starts_with(c.call("GET " + account.id), "OK "));
  CHECK(starts_with(c.call("NOSUCHCOMMAND"), "ERR UNKNOWN_COMMAND "));

  std::string text = scrape(port);
  INFO(text.substr(0, 4000));
  CHECK(value(text, "accountsd_requests_total{code=\"OK\",command=\"REGISTER\"}") == 1);
  CHECK(value(text, "accountsd_requests_total{code=\"INVALID_CREDENTIALS\",command=\"LOGIN\"}") == 2);
  CHECK(value(text, "accountsd_requests_total{code=\"LOCKED\",command=\"LOGIN\"}") == 1);
  CHECK(value(text, "accountsd_requests_total{code=\"OK\",command=\"GET\"}") == 2);
  CHECK(value(text, "accountsd_requests_total{code=\"OK\",command=\"DELETE\"}") == 0);  // there from the start
  CHECK(value(text, "accountsd_requests_total{code=\"UNKNOWN_COMMAND\",command=\"(none)\"}") == 1);
  CHECK(value(text, "accountsd_request_duration_seconds_count{command=\"GET\"}") == 2);
  CHECK(value(text, "accountsd_request_duration_seconds_bucket{command=\"GET\",le=\"+Inf\"}") == 2);
  CHECK(value(text, "accountsd_request_duration_seconds_count{command=\"LOGIN\"}") == 3);
  CHECK(value(text, "accountsd_lockouts_total") == 1);
  CHECK(value(text, "accountsd_accounts{state=\"unconfirmed\"}") == 1);
  CHECK(value(text, "accountsd_accounts{state=\"active\"}") == 0);
  CHECK(value(text, "accountsd_connections") == 1);
  CHECK(value(text, "accountsd_ready") == 1);
  CHECK(value(text, "accountsd_database_up") == 1);
  CHECK(value(text, "accountsd_lease_held") == 1);
  CHECK(value(text, "accountsd_writer_commits_total") >= 1);
  CHECK(value(text, "accountsd_writer_batch_changes_count") >= 1);
  CHECK(value(text, "accountsd_writer_commit_duration_seconds_count") >= 1);
  CHECK(value(text, "accountsd_accounts_in_doubt") == 0);
  CHECK(value(text, "accountsd_password_workers") >= 1);
  CHECK(value(text, "accountsd_password_rejected_total") == 0);
  CHECK(value(text, "accountsd_warm_load_seconds") > 0);
  CHECK(value(text, "accountsd_warm_load_sessions") == 0);  // an empty database: nothing to load

  // The shipped dashboard and alert rules use only metrics that exist.
  std::set<std::string> exposed;
  std::regex sample_name("^(accountsd_[a-z_]+)");
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, sample_name)) continue;
    std::string name = m[1];
    exposed.insert(name);
    for (const char* suffix : {"_bucket", "_count", "_sum"})  // a histogram is named without them too
      if (name.ends_with(suffix)) exposed.insert(name.substr(0, name.size() - std::strlen(suffix)));
  }
  for (const char* file : {"monitoring/grafana-dashboard.json", "monitoring/alerts.yml"}) {
    std::string source = read_source(file);
    REQUIRE(!source.empty());
    std::regex used("accountsd_[a-z_]+");
    for (auto it = std::sregex_iterator(source.begin(), source.end(), used); it != std::sregex_iterator(); ++it) {
      INFO(file << " uses " << it->str());
      CHECK(exposed.count(it->str()) == 1);
    }
  }
}

TEST_CASE("metrics: a scraper that never finishes its request does not hold up the protocol", "[metrics]") {
  Daemon daemon(Settings{{"metrics.listen", "\"127.0.0.1:0\""}});
  int port = metrics_port(daemon);
  // Two stuck scrapers, as many as the endpoint has HTTP threads: each sends half a request.
  std::vector<int> stuck;
  for (int i = 0; i < 2; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const char half[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    REQUIRE(write(fd, half, sizeof half - 1) == static_cast<ssize_t>(sizeof half - 1));
    stuck.push_back(fd);
  }
  Client c(daemon.port());
  for (int i = 0; i < 100; ++i) REQUIRE(c.call("PING") == "OK pong");
  auto account = register_account(c, "unhindered@example.com");
  CHECK(starts_with(c.call("GET " + account.id), "OK "));
  for (int fd : stuck) close(fd);
  // And once they are gone, a scrape works and has counted the PINGs.
  CHECK(value(scrape(port), "accountsd_requests_total{code=\"OK\",command=\"PING\"}") == 100);
}

TEST_CASE("metrics: off unless configured, and a port in use stops the start with a clear error", "[metrics]") {
  {
    Daemon daemon;
    CHECK(daemon.log().find("metrics on") == std::string::npos);
  }
  Daemon first(Settings{{"metrics.listen", "\"127.0.0.1:0\""}});
  std::string taken = "\"127.0.0.1:" + std::to_string(metrics_port(first)) + "\"";
  auto [status, log] = run_to_exit({{"metrics.listen", taken}});
  CHECK(status == 1);
  CHECK(log.find("metrics.listen 127.0.0.1:") != std::string::npos);
  CHECK(log.find("cannot listen") != std::string::npos);
}

TEST_CASE("metrics: a database outage shows in the gauges the alerts watch, and clears", "[metrics][persistence]") {
  PgServer pg;
  Daemon daemon({{"database.url", pg.url_setting()}, {"database.write_timeout_s", "1"}, {"metrics.listen", "\"127.0.0.1:0\""}});
  daemon.wait_ready();
  int port = metrics_port(daemon);
  Client c(daemon.port());
  register_account(c, "before@example.com");
  auto wait_for = [&](const std::function<bool(const std::string&)>& condition) {
    std::string text;
    for (int i = 0; i < 200; ++i) {
      text = scrape(port);
      if (condition(text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO("last scrape, in part:\n" << text.substr(text.find("accountsd_accounts_in_doubt")));
    return false;
  };
  {
    // Deterministic: a table lock holds the writer's transaction, so the change outlives
    // write_timeout_s and its account is in doubt.
    TableLock lock(pg, "accounts");
    CHECK(starts_with(c.call("REGISTER held@example.com some-password"), "ERR UNAVAILABLE "));
    std::string text = scrape(port);
    CHECK(value(text, "accountsd_accounts_in_doubt") == 1);
    CHECK(value(text, "accountsd_writer_queue") >= 1);
    CHECK(value(text, "accountsd_writer_failures_total") == 0);
    CHECK(value(text, "accountsd_requests_total{code=\"UNAVAILABLE\",command=\"REGISTER\"}") == 1);
    // Its backend killed while it waits: a failed attempt, which the writer retries.
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
    CHECK(wait_for([](const std::string& t) { return value(t, "accountsd_writer_failures_total") >= 1; }));
  }
  // The lock is gone: the retried change commits, and nothing is in doubt any more.
  CHECK(wait_for([](const std::string& t) {
    return value(t, "accountsd_accounts_in_doubt") == 0 && value(t, "accountsd_writer_queue") == 0;
  }));
  CHECK(starts_with(c.call("FIND held@example.com"), "OK "));

  pg.stop();
  CHECK(wait_for([](const std::string& t) {
    return value(t, "accountsd_database_up") == 0 && value(t, "accountsd_lease_held") == 0;
  }));
  pg.start();
  CHECK(wait_for([](const std::string& t) {
    return value(t, "accountsd_database_up") == 1 && value(t, "accountsd_lease_held") == 1;
  }));
}
