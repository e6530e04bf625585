// The line protocol and the server, against the real daemon over real sockets (issue 2).
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <memory>
#include <thread>

#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

TEST_CASE("PING, HELP and QUIT answer as documented", "[server]") {
  Daemon daemon;
  Client c(daemon.port());
  CHECK(c.call("PING") == "OK pong");
  CHECK(c.call("ping") == "OK pong");  // command names are case-insensitive
  std::string help = c.call("HELP");
  for (const char* name : {"PING", "HELP", "QUIT", "AUTH", "STATS", "REGISTER", "CONFIRM", "RESEND", "LOGIN", "GET",
                           "FIND", "CHANGE_EMAIL", "CHANGE_PASSWORD", "RESET_REQUEST", "RESET_PASSWORD", "DEACTIVATE",
                           "REACTIVATE", "DELETE"})
    CHECK(help.find(name) != std::string::npos);
  CHECK(starts_with(help, "OK commands=\""));
  CHECK(c.call("QUIT") == "OK bye");
  CHECK(c.closed_within(5s));
}

TEST_CASE("many pipelined requests in one write get one reply each, in order", "[server]") {
  Daemon daemon;
  Client c(daemon.port());
  std::string batch;
  const int n = 3000;
  for (int i = 0; i < n; ++i) batch += (i % 3 == 0 ? "PING\n" : i % 3 == 1 ? "NOPE\n" : "GET not-an-id\n");
  c.send(batch);
  for (int i = 0; i < n; ++i) {
    std::string reply = c.line();
    if (i % 3 == 0) REQUIRE(reply == "OK pong");
    else if (i % 3 == 1) REQUIRE(starts_with(reply, "ERR UNKNOWN_COMMAND "));
    else REQUIRE(starts_with(reply, "ERR BAD_REQUEST "));
  }
  CHECK(c.call("PING") == "OK pong");
}

TEST_CASE("a request split across many writes is read as one line, CRLF works", "[server]") {
  Daemon daemon;
  Client c(daemon.port());
  for (const char* piece : {"P", "I", "N", "G", "\r", "\n"}) {
    c.send(piece);
    std::this_thread::sleep_for(20ms);
  }
  CHECK(c.line() == "OK pong");
  c.send("PING\r\n");
  CHECK(c.line() == "OK pong");
}

TEST_CASE("blank lines get no reply", "[server]") {
  Daemon daemon;
  Client c(daemon.port());
  c.send("\n\r\n  \t \nPING\n\n");
  CHECK(c.line() == "OK pong");
  CHECK(c.call("HELP").rfind("OK commands=", 0) == 0);  // not a stray reply to a blank line
}

TEST_CASE("a line longer than max_line_bytes gets LINE_TOO_LONG and the connection stays usable", "[server]") {
  Daemon daemon(Settings{{"server.max_line_bytes", "100"}});
  Client c(daemon.port());
  c.send(std::string(101, 'A') + "\nPING\n");
  CHECK(starts_with(c.line(), "ERR LINE_TOO_LONG "));
  CHECK(c.line() == "OK pong");

  // A line exactly at the limit is fine (it is just an unknown command).
  CHECK(starts_with(c.call(std::string(100, 'B')), "ERR UNKNOWN_COMMAND "));

  // A huge line arriving in pieces is answered once and never buffered whole.
  for (int i = 0; i < 200; ++i) c.send(std::string(10000, 'x'));
  c.send("\nPING\n");
  CHECK(starts_with(c.line(), "ERR LINE_TOO_LONG "));
  CHECK(c.line() == "OK pong");
}

TEST_CASE("binary garbage and malformed quoting get BAD_REQUEST, never a crash", "[server]") {
  Daemon daemon;
  Client c(daemon.port());
  const char garbage[] = "\x00\x01\xff\xfe garbage\x7f";
  c.send(std::string(garbage, sizeof garbage - 1) + "\n");
  CHECK(starts_with(c.line(), "ERR BAD_REQUEST "));
  CHECK(starts_with(c.call("PING \xc3\x28"), "ERR BAD_REQUEST "));  // invalid UTF-8
  CHECK(starts_with(c.call("FIND \"unterminated"), "ERR BAD_REQUEST "));
  CHECK(starts_with(c.call("FIND \"bad\\escape\""), "ERR BAD_REQUEST "));
  CHECK(starts_with(c.call("PING extra"), "ERR BAD_REQUEST "));  // wrong number of arguments
  std::string noise;
  for (int i = 0; i < 20000; ++i) noise += static_cast<char>((i * 7919) % 256);
  c.send(noise + "\n");
  // Whatever lines the noise contained, each got an error reply; the daemon is still serving.
  Client fresh(daemon.port());
  CHECK(fresh.call("PING") == "OK pong");
}

TEST_CASE("connections over max_connections get TOO_MANY_CONNECTIONS and are closed", "[server]") {
  Daemon daemon(Settings{{"server.max_connections", "2"}});
  auto a = std::make_unique<Client>(daemon.port());
  Client b(daemon.port());
  CHECK(a->call("PING") == "OK pong");
  CHECK(b.call("PING") == "OK pong");
  Client over(daemon.port());
  CHECK(starts_with(over.line(), "ERR TOO_MANY_CONNECTIONS "));
  CHECK(over.closed_within(5s));
  CHECK(b.call("PING") == "OK pong");  // the others are unaffected

  a.reset();  // a slot frees up once the server notices the close
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    Client again(daemon.port());
    served = again.call("PING") == "OK pong";
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);
}

TEST_CASE("an idle connection is closed after idle_timeout_s, an active one is not", "[server]") {
  Daemon daemon(Settings{{"server.idle_timeout_s", "1"}});
  Client idle(daemon.port());
  Client busy(daemon.port());
  for (int i = 0; i < 6; ++i) {  // 3 s of activity, three times the timeout
    CHECK(busy.call("PING") == "OK pong");
    std::this_thread::sleep_for(500ms);
  }
  CHECK(idle.closed_within(10s));
  CHECK(busy.call("PING") == "OK pong");
}

TEST_CASE("AUTH: commands other than PING, HELP, QUIT and AUTH need the secret", "[server]") {
  Daemon daemon(Settings{{"auth.secret", "\"s3cret with space\""}});
  Client c(daemon.port());
  CHECK(c.call("PING") == "OK pong");
  CHECK(starts_with(c.call("HELP"), "OK commands="));
  CHECK(starts_with(c.call("GET 01a20cc1-7344-7dae-aa15-339ece76400d"), "ERR AUTH_REQUIRED "));
  CHECK(starts_with(c.call("STATS"), "ERR AUTH_REQUIRED "));
  CHECK(starts_with(c.call("AUTH wrong"), "ERR AUTH_FAILED "));
  CHECK(starts_with(c.call("AUTH \"s3cret with spac\""), "ERR AUTH_FAILED "));
  CHECK(starts_with(c.call("GET 01a20cc1-7344-7dae-aa15-339ece76400d"), "ERR AUTH_REQUIRED "));
  CHECK(c.call("AUTH \"s3cret with space\"") == "OK");
  CHECK(starts_with(c.call("GET 01a20cc1-7344-7dae-aa15-339ece76400d"), "ERR NOT_FOUND "));

  Client other(daemon.port());  // authentication belongs to the connection
  CHECK(starts_with(other.call("STATS"), "ERR AUTH_REQUIRED "));
  CHECK(daemon.log().find("s3cret") == std::string::npos);  // the secret is never logged
}

TEST_CASE("a client that never reads its replies cannot make the server buffer without bound", "[server]") {
  Daemon daemon;
  Client c(daemon.port());
  long rss_before = daemon.rss_kib();
  fcntl(c.fd(), F_SETFL, fcntl(c.fd(), F_GETFL) | O_NONBLOCK);
  std::string pings;
  for (int i = 0; i < 100000; ++i) pings += "PING\n";  // 500 kB per write
  size_t accepted = 0;
  auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until && accepted < (size_t{200} << 20)) {
    ssize_t n = ::send(c.fd(), pings.data(), pings.size(), MSG_NOSIGNAL);
    if (n > 0) accepted += static_cast<size_t>(n);
    else std::this_thread::sleep_for(10ms);  // the kernel buffers are full: back-pressure
  }
  // With back-pressure, only the socket buffers' worth is taken; without it, all 200 MB would be.
  CHECK(accepted < (size_t{64} << 20));
  CHECK(daemon.rss_kib() - rss_before < 64 * 1024);
  Client other(daemon.port());
  CHECK(other.call("PING") == "OK pong");
}

TEST_CASE("SIGTERM with open connections: in-flight requests finish, the daemon exits 0", "[server]") {
  // A slow hash makes the LOGIN still in flight when the signal arrives.
  Daemon daemon(Settings{{"password_hash.opslimit", "3"}, {"password_hash.memlimit_kib", "65536"}});
  Client idle(daemon.port());
  Client working(daemon.port());
  CHECK(idle.call("PING") == "OK pong");
  working.send("LOGIN nobody@example.com some-password\n");
  std::this_thread::sleep_for(50ms);
  kill(daemon.pid(), SIGTERM);
  CHECK(starts_with(working.line(), "ERR INVALID_CREDENTIALS "));
  CHECK(idle.closed_within(15s));
  CHECK(working.closed_within(15s));
  CHECK(daemon.stop(0) == 0);  // signal 0: just wait for the exit
}

namespace {
// AnonHugePages of the daemon, in KiB: its anonymous memory in transparent huge pages.
long huge_pages_kib(pid_t pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(rollup, line);)
    if (line.starts_with("AnonHugePages:")) return std::stol(line.substr(14));
  return -1;
}

// The kernel's transparent huge page mode: "always", "madvise" or "never" ("" if unknown).
std::string huge_page_mode() {
  std::ifstream setting("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(setting, modes);
  auto open = modes.find('['), close = modes.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : modes.substr(open + 1, close - open - 1);
}
}  // namespace

// daemon/allocator.cpp: jemalloc reads its settings from a symbol in the executable, which a
// build that moved it into a library nothing references would silently lose.
TEST_CASE("a release build keeps its heap in huge pages through jemalloc, and MALLOC_CONF changes its settings", "[server]") {
  if (!ACCOUNTSD_JEMALLOC_BUILD) {
    Daemon daemon;
    CHECK(daemon.log().find("memory: the C library") != std::string::npos);
    return;
  }
  {
    Daemon daemon;
    daemon.wait_ready();
    CHECK(daemon.log().find("memory: jemalloc, thp:always, dirty_decay_ms:-1") != std::string::npos);
    if (huge_page_mode() == "madvise" || huge_page_mode() == "always") CHECK(huge_pages_kib(daemon.pid()) >= 2048);
  }
  Daemon daemon({}, Environment{{"MALLOC_CONF", "thp:never,dirty_decay_ms:10000"}});
  daemon.wait_ready();
  CHECK(daemon.log().find("memory: jemalloc, thp:never, dirty_decay_ms:10000") != std::string::npos);
  // Where the kernel gives huge pages only to memory that asks, nothing asked. (In "always" mode
  // it gives them to other mappings too, such as thread stacks.)
  if (huge_page_mode() == "madvise") CHECK(huge_pages_kib(daemon.pid()) == 0);
  Client c(daemon.port());
  CHECK(c.call("PING") == "OK pong");
}
