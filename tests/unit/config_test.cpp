// daemon/config: defaults, every key, and the errors an operator sees.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "accounts/secrets.hpp"
#include "daemon/clients.hpp"
#include "daemon/config.hpp"

using namespace accountsd;

static std::string error_of(std::string_view text) {
  try {
    parse_config(text, "test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("defaults match the documented ones", "[config]") {
  Config c = parse_config("", "empty.toml");
  CHECK(c.server.listen == "127.0.0.1:7411");
  CHECK(c.server.port == 7411);
  // 0 means one fewer than the cores, at least one.
  CHECK(c.server.threads == std::max(1u, std::max(1u, std::thread::hardware_concurrency()) - 1));
  CHECK(c.server.max_connections == 1024);
  CHECK(c.server.max_line_bytes == 4096);
  CHECK(c.server.idle_timeout_s == 300);
  CHECK(c.auth.secret.empty());
  CHECK(c.database.url.empty());
  CHECK(c.database.connections == 1);
  CHECK(c.database.batch_max == 1000);
  CHECK(c.database.flush_interval_ms == 0);
  CHECK(c.database.write_timeout_s == 5);
  CHECK(c.metrics.listen.empty());  // no metrics endpoint unless asked for
  CHECK(c.accounts.min_password_length == 8);
  CHECK(c.accounts.confirm_token_ttl_s == 86400);
  CHECK(c.accounts.reset_token_ttl_s == 3600);
  CHECK(c.accounts.lockout_threshold == 5);
  CHECK(c.accounts.lockout_window_s == 900);
  CHECK(c.accounts.lockout_hourly_limit == 50);
  CHECK(c.server.request_timeout_s == 10);
  CHECK(c.server.auth_timeout_s == 10);
  CHECK(c.server.max_unauthenticated == 64);
  CHECK(c.database.lease_timeout_ms == 2000);
  CHECK(c.accounts.session_lifetime_s == 2592000);
  CHECK(c.accounts.session_idle_s == 604800);
  CHECK(c.accounts.sessions_per_account == 20);
  CHECK(c.session_sweep_per_tick == 1000);
  CHECK(c.accounts.hash.opslimit == 2);
  CHECK(c.accounts.hash.memlimit_kib == 65536);
  // One core is left free of hashing, and a one-core machine still gets a worker.
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  CHECK(c.accounts.hash_workers == std::max(1u, cores - 1));
  CHECK(c.log.level == "info");
}

TEST_CASE("every key is read", "[config]") {
  Config c = parse_config(R"(
[server]
listen = "[::1]:9000"
threads = 3
max_connections = 10
max_line_bytes = 512
idle_timeout_s = 7
request_timeout_s = 6
auth_timeout_s = 8
max_unauthenticated = 11
shutdown_timeout_s = 4
[auth]
secret = "s"
[database]
url = "host=/tmp dbname=x"
connections = 3
batch_max = 10
flush_interval_ms = 3
write_timeout_s = 9
lease_timeout_ms = 1500
[accounts]
min_password_length = 12
confirm_token_ttl_s = 60
reset_token_ttl_s = 30
lockout_threshold = 2
lockout_window_s = 5
lockout_hourly_limit = 77
expected_accounts = 5000
[sessions]
lifetime_s = 100
idle_timeout_s = 50
max_per_account = 4
sweep_per_tick = 7
[password_hash]
opslimit = 3
memlimit_kib = 1024
workers = 5
max_queue = 9
[log]
level = "debug"
)", "full.toml");
  CHECK(c.server.host == "::1");
  CHECK(c.server.port == 9000);
  CHECK(c.server.threads == 3);
  CHECK(c.server.max_connections == 10);
  CHECK(c.server.max_line_bytes == 512);
  CHECK(c.server.idle_timeout_s == 7);
  CHECK(c.server.shutdown_timeout_s == 4);
  CHECK(c.server.request_timeout_s == 6);
  CHECK(c.server.auth_timeout_s == 8);
  CHECK(c.server.max_unauthenticated == 11);
  CHECK(c.database.lease_timeout_ms == 1500);
  CHECK(c.auth.secret == "s");
  CHECK(c.database.url == "host=/tmp dbname=x");
  CHECK(c.database.connections == 3);
  CHECK(c.database.batch_max == 10);
  CHECK(c.database.flush_interval_ms == 3);
  CHECK(c.accounts.write_timeout == std::chrono::seconds(9));
  CHECK(c.accounts.min_password_length == 12);
  CHECK(c.accounts.confirm_token_ttl_s == 60);
  CHECK(c.accounts.reset_token_ttl_s == 30);
  CHECK(c.accounts.lockout_threshold == 2);
  CHECK(c.accounts.lockout_window_s == 5);
  CHECK(c.accounts.lockout_hourly_limit == 77);
  REQUIRE(c.warnings.size() == 1);  // expected_accounts is obsolete: accepted, ignored, warned about
  CHECK(c.warnings[0].find("accounts.expected_accounts") != std::string::npos);
  CHECK(c.warnings[0].find("obsolete") != std::string::npos);
  CHECK(c.accounts.session_lifetime_s == 100);
  CHECK(c.accounts.session_idle_s == 50);
  CHECK(c.accounts.sessions_per_account == 4);
  CHECK(c.session_sweep_per_tick == 7);
  CHECK(c.accounts.hash.opslimit == 3);
  CHECK(c.accounts.hash.memlimit_kib == 1024);
  CHECK(c.accounts.hash_workers == 5);
  CHECK(c.accounts.hash_max_queue == 9);
  CHECK(c.log.level == "debug");
}

TEST_CASE("metrics.listen takes HOST:PORT, and an empty string turns metrics off", "[config]") {
  Config on = parse_config("[metrics]\nlisten = \"[::1]:9411\"\n", "m.toml");
  CHECK(on.metrics.listen == "[::1]:9411");
  CHECK(on.metrics.host == "::1");
  CHECK(on.metrics.port == 9411);
  Config off = parse_config("[metrics]\nlisten = \"\"\n", "m.toml");
  CHECK(off.metrics.listen.empty());
}

TEST_CASE("config errors name the file, the key and the position", "[config]") {
  CHECK(error_of("[server]\nlisten = \n") .find("test.toml (line 2") != std::string::npos);
  CHECK(error_of("[server]\nlistn = \"x\"\n") == "test.toml: server.listn (line 2, column 9): unknown key");
  CHECK(error_of("[srever]\nlisten = \"x\"\n").find("srever.listen") != std::string::npos);
  CHECK(error_of("threads = 2\n").find("unknown key") != std::string::npos);
  CHECK(error_of("[server]\nthreads = \"2\"\n") == "test.toml: server.threads (line 2, column 11): must be an integer");
  CHECK(error_of("[server]\nthreads = 2.5\n").find("must be an integer") != std::string::npos);
  CHECK(error_of("[server]\nmax_connections = 0\n").find("must be between 1 and") != std::string::npos);
  CHECK(error_of("[server]\nidle_timeout_s = -5\n").find("must be between") != std::string::npos);
  CHECK(error_of("[server]\nlisten = \"nohost\"\n").find("HOST:PORT") != std::string::npos);
  CHECK(error_of("[server]\nlisten = \"1.2.3.4:99999\"\n").find("HOST:PORT") != std::string::npos);
  CHECK(error_of("[auth]\nsecret = 5\n").find("must be a string") != std::string::npos);
  CHECK(error_of("[log]\nlevel = \"loud\"\n").find("must be one of") != std::string::npos);
  CHECK(error_of("[metrics]\nlisten = \"9411\"\n").find("metrics.listen (line 2, column 10): must be HOST:PORT") !=
        std::string::npos);
  CHECK(error_of("[password_hash]\nmemlimit_kib = 4\n").find("between 8 and") != std::string::npos);
}

TEST_CASE("a missing file is an error, not defaults", "[config]") {
  CHECK_THROWS_AS(load_config("/nonexistent/accountsd.toml"), ConfigError);
}

TEST_CASE("[[clients]]: names, secrets as digests, allow lists, and the mistakes named", "[config][clients]") {
  Config c = parse_config(R"(
[auth]
secret = "legacy"
[[clients]]
name = "web"
secret_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
allow = ["read", "login"]
[[clients]]
name = "cert-only"
allow = ["monitor"]
)", "c.toml");
  REQUIRE(c.clients.size() == 3);
  CHECK(c.clients[0].name == "web");
  CHECK(c.clients[0].secret == digest_secret("test"));  // the SHA-256 of "test"
  CHECK(c.clients[0].allow == std::vector<std::string>{"read", "login"});
  CHECK_FALSE(c.clients[1].secret);
  CHECK(c.clients[2].name == "default");  // auth.secret
  CHECK(c.clients[2].secret == digest_secret("legacy"));
  CHECK(c.clients[2].allow == std::vector<std::string>{"all"});

  CHECK(error_of("[[clients]]\nallow = [\"read\"]\n").find("a client needs a name") != std::string::npos);
  CHECK(error_of("[[clients]]\nname = \"a b\"\nallow = [\"read\"]\n").find("clients[0].name") != std::string::npos);
  CHECK(error_of("[[clients]]\nname = \"a\"\n").find("needs an allow list") != std::string::npos);
  CHECK(error_of("[[clients]]\nname = \"a\"\nsecret_sha256 = \"abc\"\nallow = [\"read\"]\n").find("64 hex digits") != std::string::npos);
  CHECK(error_of("[[clients]]\nname = \"a\"\nsecret = \"plain\"\nallow = [\"read\"]\n").find("clients[0].secret (line 3") !=
        std::string::npos);
  CHECK(error_of("[[clients]]\nname = \"a\"\nallow = [\"read\"]\n[[clients]]\nname = \"a\"\nallow = [\"read\"]\n")
            .find("two clients named a") != std::string::npos);
  CHECK(error_of("[auth]\nsecret = \"x\"\n[[clients]]\nname = \"default\"\nallow = [\"read\"]\n").find("\"default\"") !=
        std::string::npos);
  CHECK(error_of("[[clients]]\nname = \"a\"\nsecret_file = \"/nonexistent/secret\"\nallow = [\"read\"]\n")
            .find("cannot read /nonexistent/secret") != std::string::npos);
  CHECK(error_of("[tls]\nlisten = \"127.0.0.1:0\"\n").find("tls.listen needs tls.cert_file and tls.key_file") !=
        std::string::npos);
  CHECK(error_of("[server]\nlisten = \"\"\n").find("nothing to listen on") != std::string::npos);
  CHECK(error_of("[tls]\nmin_version = \"1.1\"\n").find("must be \"1.2\" or \"1.3\"") != std::string::npos);
  CHECK(error_of("[server]\nunix_socket = \"relative.sock\"\n").find("absolute path") != std::string::npos);
}

TEST_CASE("client lists: rights by command and category, unknown words refused", "[clients]") {
  accounts::init_secrets();
  std::vector<std::string> commands = {"GET", "DELETE", "STATS", "PING"}, categories = {"read", "admin", "monitor", ""};
  ClientList list({{"web", digest_secret("s"), {"read"}}, {"ops", digest_secret("t"), {"read", "DELETE"}}}, commands,
                  categories);
  CHECK(list.required());
  auto web = list.authenticate("web", "s");
  REQUIRE(web);
  CHECK(web->allows(0));
  CHECK_FALSE(web->allows(1));
  CHECK_FALSE(web->allows(2));
  auto ops = list.authenticate("ops", "t");
  REQUIRE(ops);
  CHECK(ops->allows(1));
  CHECK_FALSE(list.authenticate("web", "t"));
  CHECK_FALSE(list.authenticate("nobody", "s"));
  CHECK_THROWS_AS(ClientList({{"x", std::nullopt, {"DELET"}}}, commands, categories), std::invalid_argument);
  ClientList open({}, commands, categories);
  CHECK_FALSE(open.required());
  CHECK(open.anyone()->allows(1));
}
