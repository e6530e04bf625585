// Hostile clients against the real daemon (issue 9): slow senders, secret guessers, connection
// hoarders and file-descriptor exhaustion. Each test is the attack itself.
#include <catch2/catch.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

TEST_CASE("a request line trickled one byte at a time is cut off request_timeout_s after its first byte", "[hostile]") {
  Daemon daemon(Settings{{"server.request_timeout_s", "2"}, {"server.idle_timeout_s", "300"}});
  Client slow(daemon.port());
  Client steady(daemon.port());
  auto started = std::chrono::steady_clock::now();
  bool closed = false;
  // One byte every 200 ms keeps the idle timeout (300 s) from ever firing.
  for (int i = 0; i < 100 && !closed; ++i) {
    try {
      slow.send("G");
    } catch (const std::exception&) {
      closed = true;
      break;
    }
    closed = slow.closed_within(200ms);
    if (i % 5 == 0) CHECK(steady.call("PING") == "OK pong");  // whole lines, slowly, are fine
  }
  if (!closed) closed = slow.closed_within(5s);
  CHECK(closed);
  auto took = std::chrono::steady_clock::now() - started;
  CHECK(took >= 2s);   // not before the deadline
  CHECK(took < 15s);   // and not at the idle timeout either
  CHECK(steady.call("PING") == "OK pong");
}

TEST_CASE("wrong AUTH secrets are logged with the peer, slowed down, and the connection closed after 5", "[hostile]") {
  Daemon daemon(Settings{{"auth.secret", "\"the-real-secret\""}});
  Client c(daemon.port());
  auto started = std::chrono::steady_clock::now();
  for (int i = 1; i < 5; ++i) CHECK(starts_with(c.call("AUTH guess" + std::to_string(i)), "ERR AUTH_FAILED "));
  CHECK(starts_with(c.call("AUTH guess5"), "ERR AUTH_FAILED "));
  // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of delays: a guesser gets a handful of tries per connection.
  CHECK(std::chrono::steady_clock::now() - started >= 3s);
  CHECK(c.closed_within(5s));
  std::string log = daemon.log();
  CHECK(log.find("failed AUTH from 127.0.0.1:") != std::string::npos);
  CHECK(log.find("guess") == std::string::npos);  // what was guessed is never logged
  CHECK(log.find("the-real-secret") == std::string::npos);

  Client honest(daemon.port());
  CHECK(honest.call("AUTH the-real-secret") == "OK");
  CHECK(starts_with(honest.call("STATS"), "OK "));
}

TEST_CASE("connections that do not AUTH are capped, and closed after auth_timeout_s", "[hostile]") {
  Daemon daemon(Settings{{"auth.secret", "\"s3cret\""}, {"server.max_unauthenticated", "3"},
                         {"server.auth_timeout_s", "2"}});
  std::vector<std::unique_ptr<Client>> hoarders;
  for (int i = 0; i < 3; ++i) {
    hoarders.push_back(std::make_unique<Client>(daemon.port()));
    CHECK(hoarders.back()->call("PING") == "OK pong");
  }
  Client over(daemon.port());
  CHECK(starts_with(over.line(), "ERR TOO_MANY_CONNECTIONS "));
  CHECK(over.closed_within(5s));

  // The hoarders are closed once auth_timeout_s has passed; then an honest client gets in.
  for (auto& h : hoarders) CHECK(h->closed_within(10s));
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    Client honest(daemon.port());
    try {
      served = honest.call("AUTH s3cret") == "OK";
    } catch (const std::exception&) {
    }
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);

  // An authenticated connection is not subject to the AUTH deadline.
  Client member(daemon.port());
  CHECK(member.call("AUTH s3cret") == "OK");
  std::this_thread::sleep_for(3s);
  CHECK(starts_with(member.call("STATS"), "OK "));
}

TEST_CASE("out of file descriptors: accept backs off, the log stays small, serving resumes", "[hostile]") {
  Daemon daemon(Settings{{"server.max_connections", "1000"}}, Environment{{"RLIMIT_NOFILE", "64"}});
  CHECK(daemon.log().find("the open file limit is 64") != std::string::npos);

  Client first(daemon.port());
  CHECK(first.call("PING") == "OK pong");
  std::vector<std::unique_ptr<Client>> flood;
  for (int i = 0; i < 150; ++i) flood.push_back(std::make_unique<Client>(daemon.port()));  // the backlog holds them

  double cpu_before = daemon.cpu_seconds();
  std::this_thread::sleep_for(3s);
  double cpu = daemon.cpu_seconds() - cpu_before;
  CHECK(cpu < 1.0);  // spinning on EMFILE used a whole core; backing off uses almost nothing
  CHECK(daemon.log().size() < 64 * 1024);
  CHECK(daemon.log().find("accept failed") != std::string::npos);
  CHECK(first.call("PING") == "OK pong");  // the connections already accepted are served

  flood.clear();
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    try {
      Client again(daemon.port());
      served = again.call("PING") == "OK pong";
    } catch (const std::exception&) {
    }
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);
}
