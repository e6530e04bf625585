#pragma once
// accountsd's configuration: the TOML file, checked strictly. An unknown key, a wrong type or a
// value out of range is an error that names the file, the key and where it stands.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "accounts/service.hpp"
#include "daemon/clients.hpp"


namespace accountsd {

struct Config {
  struct Server {
    std::string listen = "127.0.0.1:7411";
    std::string host = "127.0.0.1";  // derived from listen
    uint16_t port = 7411;            // derived from listen; 0 picks a free port
    unsigned threads = 0;            // 0 = one per core
    size_t max_connections = 1024;
    size_t max_line_bytes = 4096;
    int64_t idle_timeout_s = 300;
    int64_t request_timeout_s = 10;     // a request line must arrive whole within this of its first byte
    int64_t auth_timeout_s = 10;        // with a secret set: AUTH within this of connecting, or closed
    size_t max_unauthenticated = 64;    // with a secret set: connections not yet authenticated
    int64_t shutdown_timeout_s = 10;
    std::string unix_socket;        // a path: also listen there ("" = no Unix socket)
    uint32_t unix_socket_mode = 0660;
    std::string unix_socket_group;  // "" = the daemon's own group
  } server;
  struct Auth {
    std::string secret;  // the client "default", allowed everything (also from secret_file)
  } auth;
  // [[clients]]: named clients; with auth.secret, the list AUTH checks. Empty: no AUTH needed.
  std::vector<ClientConfig> clients;
  struct Tls {
    std::string listen;  // HOST:PORT of the TLS listener ("" = none)
    std::string host;
    uint16_t port = 0;
    std::string cert_file, key_file;  // PEM; re-read on SIGHUP
    std::string client_ca_file;       // verify client certificates against it ("" = none asked)
    bool require_client_cert = false;
    std::string min_version = "1.2";  // "1.2" or "1.3"
    int64_t shutdown_timeout_ms = 2000;  // how long a close_notify exchange may take
  } tls;
  struct Database {
    std::string url;
    size_t batch_max = 1000;
    int64_t flush_interval_ms = 0;
    int64_t write_timeout_s = 5;
    unsigned connections = 1;
    int64_t lease_timeout_ms = 2000;  // without a successful lease check for this long: fenced
  } database;
  // [replication]: several nodes over one database (docs/OPERATIONS.md, "Running a cluster").
  struct Replication {
    bool enabled = false;      // false: single-node mode, a second daemon refuses to start
    bool promote = true;       // a replica takes over when the primary's lease comes free
    std::string advertise;     // where this node takes changes when primary ("" = server.listen)
    int64_t log_retention_s = 3600;  // change-log entries kept; a replica away longer reloads
    // A replica further behind than this answers WHOAMI with UNAVAILABLE: it may not have seen a
    // revocation yet (a logout, a password reset). GET and FIND go on.
    int64_t session_max_lag_ms = 5000;
  } replication;
  accounts::Settings accounts;  // [accounts], [password_hash] and most of [sessions]
  uint32_t session_sweep_per_tick = 1000;  // [sessions] sweep_per_tick: sessions looked at each second
  unsigned password_workers = 0;  // as configured; 0 = one per core
  struct Metrics {
    std::string listen;  // "" = no metrics endpoint
    std::string host;    // derived from listen
    uint16_t port = 0;   // derived from listen; 0 picks a free port
  } metrics;
  struct Log {
    std::string level = "info";
  } log;

  std::vector<std::string> warnings;  // things in the file that work but should change (logged at start)

  std::string source_path;  // the file it came from ("" = built-in defaults)
  std::string source_text;  // its text, to tell on SIGHUP which keys changed
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Config default_config();
// Reads and checks `path`; throws ConfigError with a message fit for the operator.
Config load_config(const std::string& path);
// The same for TOML text; `source` names it in messages.
Config parse_config(std::string_view text, std::string_view source);
// The keys ("section.key") whose values differ between two checked configuration texts.
std::vector<std::string> changed_keys(std::string_view before, std::string_view after);

}  // namespace accountsd
