#pragma once
// Test support: start the real build/accountsd with a generated config, find the port it bound,
// and talk to it over plain blocking sockets, the way a backend or netcat would.
#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace testing {

// "section.key" -> TOML value text; a key starting with "raw" holds TOML text added as it is
// (for [[clients]] tables).
using Settings = std::map<std::string, std::string>;
// Environment variables for the daemon. One pseudo-variable is not exported but applied:
// RLIMIT_NOFILE=N sets the daemon's soft and hard open-file limits to N.
using Environment = std::map<std::string, std::string>;

// A private PostgreSQL cluster for one test (scripts/pg), removed afterwards.
class PgServer {
 public:
  PgServer();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  std::string url() const;          // libpq connection string
  std::string url_setting() const;  // the same as a TOML string, for Settings
  // Runs SQL through psql; returns its unaligned output (one row per line). Throws on error.
  std::string sql(const std::string& statements) const;
  void stop();
  void start();
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// A transaction left open in a psql session: BEGIN, then `statements`, and COMMIT only at commit()
// (or destruction). Meanwhile what it wrote is invisible to others and the locks it took are held.
// The statements run at once; it is up to the caller to wait until they have.
class OpenTransaction {
 public:
  OpenTransaction(const PgServer& pg, const std::string& statements);
  ~OpenTransaction() { commit(); }
  OpenTransaction(const OpenTransaction&) = delete;
  OpenTransaction& operator=(const OpenTransaction&) = delete;
  void commit();

 private:
  FILE* psql_ = nullptr;
};

// Holds `LOCK TABLE table IN ACCESS EXCLUSIVE MODE` in a psql session until release(): a
// deterministic way to keep the daemon's warm-load from finishing while a test looks.
class TableLock {
 public:
  TableLock(const PgServer& pg, const std::string& table);
  void release() { transaction_.commit(); }

 private:
  OpenTransaction transaction_;
};

// Runs the daemon once against `pg` so that the schema exists, registering `email`.
void seed(const PgServer& pg, const std::string& email);

// Runs `accountsd --config <overrides> ARGUMENTS` (a subcommand such as import) to its end;
// returns its exit status and its stdout and stderr together.
// `piped_from`: a shell command whose output becomes accountsd's standard input ("" = none).
std::pair<int, std::string> run_accountsd(const Settings& overrides, const std::string& arguments,
                                          const std::string& piped_from = "");

// Runs accountsd with `overrides` until it exits by itself; returns its exit status and log.
std::pair<int, std::string> run_to_exit(const Settings& overrides, std::chrono::seconds timeout = std::chrono::seconds(60));

class Daemon {
 public:
  // Starts accountsd with cheap password hashing, a free port on 127.0.0.1, and `overrides`.
  explicit Daemon(const Settings& overrides = {}, const Environment& environment = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  int port() const { return port_; }
  // Waits until account commands are served (the warm-load is over).
  void wait_ready(std::chrono::seconds timeout = std::chrono::seconds(60));
  pid_t pid() const { return pid_; }
  // Sends `signal` and waits for the exit; returns the exit status (128+N when killed by N).
  int stop(int signal = 15, std::chrono::seconds timeout = std::chrono::seconds(30));
  int wait_exit(std::chrono::seconds timeout);
  // Replaces the configuration file (the daemon re-reads it on SIGHUP).
  void rewrite_config(const Settings& overrides);
  std::string log() const;  // everything the daemon wrote to stderr so far
  long rss_kib() const;     // resident memory, from /proc
  double cpu_seconds() const;  // user + system CPU time used so far, from /proc
  // Caps the daemon's address space `extra` bytes above what it has mapped now (RLIMIT_AS, soft
  // limit only), so that a large allocation fails while everything else goes on; and lifts it.
  void cap_address_space(size_t extra) const;
  void lift_address_space() const;

 private:
  friend std::pair<int, std::string> run_to_exit(const Settings&, std::chrono::seconds);
  Daemon(const Settings& overrides, const Environment& environment, bool wait_for_listen);
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class Client {
 public:
  explicit Client(int port);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(const std::string& bytes);
  // The next reply line without its LF; throws if none arrives within `timeout`.
  std::string line(std::chrono::seconds timeout = std::chrono::seconds(30));
  std::string call(const std::string& request) {
    send(request + "\n");
    return line();
  }
  // True when the server closes the connection within `timeout` (no further bytes arrive).
  bool closed_within(std::chrono::milliseconds timeout);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buffered_;
};

// A shell word for `s`, and a shell command's stdout and stderr (throws when it fails).
std::string shell_quote(const std::string& s);
std::string run_command(const std::string& command);

// The value of `key` in a reply such as `OK id=... email=...` (unquoting as the protocol says).
std::optional<std::string> field(const std::string& reply, const std::string& key);
bool starts_with(const std::string& text, const std::string& prefix);

}  // namespace testing
