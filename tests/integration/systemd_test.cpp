// The systemd contracts, tested without a running systemd (issue 5): the test plays the service
// manager on NOTIFY_SOCKET, hands over a socket through systemd-socket-activate, and sends SIGHUP.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

// The service manager's end of sd_notify(): a Unix datagram socket.
class NotifySocket {
 public:
  NotifySocket() {
    char pattern[] = "/tmp/accountsd-notify-XXXXXX";
    dir_ = mkdtemp(pattern);
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

  // Every message that arrives within `window`.
  std::vector<std::string> collect(std::chrono::milliseconds window) {
    std::vector<std::string> messages;
    auto until = std::chrono::steady_clock::now() + window;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return messages;
      if (auto m = next(left)) messages.push_back(*m);
    }
  }
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buffer[4096];
    ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::optional<std::string>(std::string(buffer, static_cast<size_t>(n))) : std::nullopt;
  }

 private:
  std::string dir_, path_;
  int fd_;
};

size_t count_containing(const std::vector<std::string>& messages, const std::string& what) {
  size_t n = 0;
  for (const auto& m : messages) n += m.find(what) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("READY=1 only after the warm-load, STATUS lines, WATCHDOG=1 at the configured rate", "[systemd]") {
  PgServer pg;
  seed(pg, "ready@example.com");
  TableLock lock(pg, "accounts");  // keeps the warm-load from finishing until we let go
  NotifySocket manager;
  Daemon daemon(Settings{{"database.url", pg.url_setting()}},
                Environment{{"NOTIFY_SOCKET", manager.path()}, {"WATCHDOG_USEC", "200000"}});
  Client c(daemon.port());
  CHECK(starts_with(c.call("PING"), "ERR LOADING "));

  auto loading = manager.collect(1500ms);
  CHECK(count_containing(loading, "READY=1") == 0);
  CHECK(count_containing(loading, "STATUS=loading accounts") >= 1);
  // WatchdogSec=200ms: a ping every 100 ms, about 15 in 1.5 s; generous bounds either way.
  size_t pings = count_containing(loading, "WATCHDOG=1");
  CHECK(pings >= 5);
  CHECK(pings <= 60);
  CHECK(starts_with(c.call("PING"), "ERR LOADING "));

  lock.release();
  std::optional<std::string> ready;
  for (auto until = std::chrono::steady_clock::now() + 30s; !ready && std::chrono::steady_clock::now() < until;) {
    auto m = manager.next(1000ms);
    if (m && m->find("READY=1") != std::string::npos) ready = m;
  }
  REQUIRE(ready);
  CHECK(ready->find("STATUS=serving 1 accounts") != std::string::npos);
  CHECK(c.call("PING") == "OK pong");  // READY means served
  CHECK(count_containing(manager.collect(1500ms), "STATUS=serving") >= 1);

  CHECK(daemon.stop() == 0);
  CHECK(count_containing(manager.collect(200ms), "STOPPING=1") == 1);
}

TEST_CASE("socket activation: a socket handed over by systemd-socket-activate is served", "[systemd]") {
  // A free port: bind 0, read it back, let it go.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t length = sizeof addr;
  getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &length);
  int port = ntohs(addr.sin_port);
  close(probe);

  char pattern[] = "/tmp/accountsd-activate-XXXXXX";
  std::string dir = mkdtemp(pattern);
  std::ofstream(dir + "/config.toml") << "[server]\nlisten = \"127.0.0.1:1\"\n[password_hash]\nopslimit = 1\nmemlimit_kib = 8\n";
  std::string listen = "127.0.0.1:" + std::to_string(port);
  pid_t pid = fork();
  if (pid == 0) {
    int log = open((dir + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, 2);
    close_range(3, ~0U, 0);
    execlp("systemd-socket-activate", "systemd-socket-activate", "-l", listen.c_str(), ACCOUNTSD_BINARY, "--config",
           (dir + "/config.toml").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }

  std::unique_ptr<Client> client;
  for (int i = 0; i < 200 && !client; ++i) {
    try {
      client = std::make_unique<Client>(port);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(25ms);
    }
  }
  REQUIRE(client);
  CHECK(client->call("PING") == "OK pong");
  CHECK(client->call("REGISTER activated@example.com some-password").rfind("OK ", 0) == 0);
  std::ifstream log(dir + "/stderr.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(text.find("listening on 127.0.0.1:" + std::to_string(port) + " (sockets from systemd)") != std::string::npos);

  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("SIGHUP changes log.level and auth.secret live and reports the rest", "[systemd]") {
  Settings before{{"auth.secret", "\"first-secret\""}, {"log.level", "\"info\""}};
  Daemon daemon(before);
  {
    Client early(daemon.port());
    CHECK(early.call("AUTH first-secret") == "OK");
  }
  CHECK(daemon.log().find("connection from") == std::string::npos);  // debug is off

  Settings after{{"auth.secret", "\"second-secret\""}, {"log.level", "\"debug\""}, {"server.idle_timeout_s", "60"}};
  daemon.rewrite_config(after);
  kill(daemon.pid(), SIGHUP);
  REQUIRE(wait_for_log(daemon, "SIGHUP: log.level is now debug"));
  CHECK(daemon.log().find("SIGHUP: auth.secret changed") != std::string::npos);
  CHECK(daemon.log().find("SIGHUP: server.idle_timeout_s changed but takes effect only after a restart") != std::string::npos);
  CHECK(daemon.log().find("second-secret") == std::string::npos);  // secrets never reach the log

  Client c(daemon.port());
  CHECK(starts_with(c.call("AUTH first-secret"), "ERR AUTH_FAILED "));
  CHECK(c.call("AUTH second-secret") == "OK");
  CHECK(wait_for_log(daemon, "connection from 127.0.0.1"));  // debug is on now

  // A broken file on SIGHUP is reported and the running configuration stays.
  daemon.rewrite_config(Settings{{"server.threads", "\"many\""}});
  kill(daemon.pid(), SIGHUP);
  CHECK(wait_for_log(daemon, "SIGHUP: configuration not reloaded"));
  Client d(daemon.port());
  CHECK(d.call("AUTH second-secret") == "OK");
  CHECK(daemon.stop() == 0);
}

TEST_CASE("under journald (JOURNAL_STREAM set) log lines carry syslog priorities", "[systemd]") {
  Daemon daemon(Settings{{"log.level", "\"info\""}}, Environment{{"JOURNAL_STREAM", "8:12345"}});
  CHECK(daemon.log().find("<4>database.url is empty") != std::string::npos);
  CHECK(daemon.log().find("<6>accountsd listening on") != std::string::npos);
}
