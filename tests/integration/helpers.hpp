#pragma once
// Protocol steps that many integration tests take, with Catch's assertions: a failed step stops
// the test case and says what was asked and answered.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "support.hpp"

namespace testing {

// The value of `key` in the reply to `request`, which must be OK.
inline std::string ok_field(Client& c, const std::string& request, const std::string& key) {
  std::string reply = c.call(request);
  INFO(request << " -> " << reply);
  REQUIRE(starts_with(reply, "OK "));
  return *field(reply, key);
}

struct Registered {
  std::string id;
  std::string token;  // the confirmation token
};

inline Registered register_account(Client& c, const std::string& email, const std::string& password = "correct horse") {
  std::string reply = c.call("REGISTER " + email + " \"" + password + "\"");
  INFO(reply);
  REQUIRE(starts_with(reply, "OK "));
  return {*field(reply, "id"), *field(reply, "token")};
}

// True once the daemon's log holds `text`, polling for up to `timeout`.
inline bool wait_for_log(const Daemon& daemon, const std::string& text,
                         std::chrono::seconds timeout = std::chrono::seconds(15)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (daemon.log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// True once `request` is answered with a reply that starts with `prefix`, asking every 100 ms
// for up to `timeout` (a daemon that lost its lease answers FENCED within lease_timeout_ms).
inline bool wait_for_reply(Client& c, const std::string& request, const std::string& prefix,
                           std::chrono::seconds timeout = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (starts_with(c.call(request), prefix)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// True once `query` answers `expected` (psql's unaligned output, e.g. "1\n"), asking every 20 ms
// for up to `timeout`.
inline bool wait_for_sql(const PgServer& pg, const std::string& query, const std::string& expected,
                         std::chrono::seconds timeout = std::chrono::seconds(15)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pg.sql(query) == expected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The port the daemon logged right after `marker` (e.g. "TLS listening on 127.0.0.1:"). The
// Daemon is started once the plain listener is logged; other listeners are logged a moment
// later, so this waits for the line rather than reading the log once.
inline int logged_port(const Daemon& daemon, const std::string& marker) {
  REQUIRE(wait_for_log(daemon, marker));
  std::string log = daemon.log();
  return std::stoi(log.substr(log.find(marker) + marker.size()));
}

}  // namespace testing
