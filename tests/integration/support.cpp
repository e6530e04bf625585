#include "support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace testing {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string config_text(const Settings& overrides) {
  Settings settings = {
      {"server.listen", "\"127.0.0.1:0\""},
      {"server.shutdown_timeout_s", "10"},
      // Two loops whatever the machine's cores (the default leaves one core out): the races
      // between connections then run on two threads, as on a production machine.
      {"server.threads", "2"},
      {"password_hash.opslimit", "1"},
      {"password_hash.memlimit_kib", "8"},
      {"log.level", "\"debug\""},
  };
  for (const auto& [k, v] : overrides) settings[k] = v;
  std::map<std::string, std::vector<std::string>> sections;
  std::string raw;
  for (const auto& [k, v] : settings) {
    if (k.starts_with("raw")) {  // TOML text as it is, e.g. [[clients]] tables
      raw += v + "\n";
      continue;
    }
    auto dot = k.find('.');
    sections[k.substr(0, dot)].push_back(k.substr(dot + 1) + " = " + v);
  }
  std::string text;
  for (const auto& [section, lines] : sections) {
    text += "[" + section + "]\n";
    for (const auto& l : lines) text += l + "\n";
  }
  return text + raw;
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  if (status != 0) throw std::runtime_error(command + " failed:\n" + output);
  return output;
}

namespace {

const std::string kPg = std::string(ACCOUNTSD_SOURCE_DIR) + "/scripts/pg";

}  // namespace

PgServer::PgServer() {
  char pattern[] = "/tmp/accountsd-pg-XXXXXX";
  if (mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  start();
}

PgServer::~PgServer() {
  try {
    stop();
  } catch (...) {
  }
  std::system(("rm -rf " + shell_quote(dir_)).c_str());
}

void PgServer::start() { run_command("PG_FAST=1 " + kPg + " start " + shell_quote(dir_)); }
void PgServer::stop() { run_command(kPg + " stop " + shell_quote(dir_)); }

std::string PgServer::url() const { return "host=" + dir_ + " port=5432 user=postgres dbname=postgres"; }
std::string PgServer::url_setting() const { return "\"" + url() + "\""; }

std::string PgServer::sql(const std::string& statements) const {
  return run_command(kPg + " psql " + shell_quote(dir_) + " -At -c " + shell_quote(statements));
}

OpenTransaction::OpenTransaction(const PgServer& pg, const std::string& statements) {
  signal(SIGPIPE, SIG_IGN);  // commit() may write to a psql that lost its server and exited
  // Close-on-exec ("e"): a daemon forked later must not hold psql's stdin open.
  psql_ = popen((kPg + " psql " + shell_quote(pg.dir())).c_str(), "we");
  if (psql_ == nullptr) throw std::runtime_error("cannot start psql");
  std::fputs(("BEGIN; " + statements + "\n").c_str(), psql_);
  std::fflush(psql_);
}

void OpenTransaction::commit() {
  if (psql_ == nullptr) return;
  std::fputs("COMMIT;\n", psql_);
  pclose(psql_);
  psql_ = nullptr;
}

TableLock::TableLock(const PgServer& pg, const std::string& table)
    : transaction_(pg, "LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE;") {
  for (int i = 0; i < 400; ++i) {
    if (pg.sql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation = '" +
               table + "'::regclass") == "1\n")
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  throw std::runtime_error("the table lock was not granted");
}

void seed(const PgServer& pg, const std::string& email) {
  Daemon daemon(Settings{{"database.url", pg.url_setting()}});
  daemon.wait_ready();
  Client c(daemon.port());
  if (!starts_with(c.call("REGISTER " + email + " some-password"), "OK ")) throw std::runtime_error("seeding failed");
  if (daemon.stop() != 0) throw std::runtime_error("seeding daemon did not stop cleanly");
}

std::pair<int, std::string> run_accountsd(const Settings& overrides, const std::string& arguments,
                                          const std::string& piped_from) {
  char pattern[] = "/tmp/accountsd-tool-XXXXXX";
  if (mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  std::string dir = pattern;
  std::ofstream(dir + "/config.toml") << config_text(overrides);
  std::string command = (piped_from.empty() ? "" : piped_from + " | ") + std::string(ACCOUNTSD_BINARY) + " --config " +
                        dir + "/config.toml " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  std::system(("rm -rf " + shell_quote(dir)).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

std::pair<int, std::string> run_to_exit(const Settings& overrides, std::chrono::seconds timeout) {
  Daemon daemon(overrides, {}, /*wait_for_listen=*/false);
  int status = daemon.wait_exit(timeout);
  return {status, daemon.log()};
}

Daemon::Daemon(const Settings& overrides, const Environment& environment) : Daemon(overrides, environment, true) {}

void Daemon::rewrite_config(const Settings& overrides) {
  std::ofstream(dir_ + "/config.toml.new") << config_text(overrides);
  std::rename((dir_ + "/config.toml.new").c_str(), (dir_ + "/config.toml").c_str());
}

void Daemon::wait_ready(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    Client c(port_);
    if (c.call("PING") == "OK pong") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("accountsd did not become ready:\n" + log());
}

int Daemon::wait_exit(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("accountsd did not exit within the timeout:\n" + log());
}

Daemon::Daemon(const Settings& overrides, const Environment& environment, bool wait_for_listen) {
  char pattern[] = "/tmp/accountsd-test-XXXXXX";
  if (mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  std::ofstream(dir_ + "/config.toml") << config_text(overrides);

  pid_ = fork();
  if (pid_ == 0) {
    int log = open((dir_ + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, 2);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    close_range(3, ~0U, 0);  // nothing of the test's (pipes, sockets) leaks into the daemon
    for (const auto& [name, value] : environment) {
      if (name == "RLIMIT_NOFILE") {
        rlimit limit{std::stoul(value), std::stoul(value)};
        setrlimit(RLIMIT_NOFILE, &limit);
      } else {
        setenv(name.c_str(), value.c_str(), 1);
      }
    }
    std::string config = dir_ + "/config.toml";
    execl(ACCOUNTSD_BINARY, ACCOUNTSD_BINARY, "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (!wait_for_listen) return;

  // The daemon binds port 0 and logs the port it got: no race for a "free" port.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string text = log();
    auto at = text.find("listening on 127.0.0.1:");
    if (at != std::string::npos) {
      port_ = std::stoi(text.substr(at + std::strlen("listening on 127.0.0.1:")));
      return;
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("accountsd exited at start:\n" + text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("accountsd did not start listening:\n" + log());
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::remove((dir_ + "/config.toml").c_str());
  std::remove((dir_ + "/stderr.log").c_str());
  rmdir(dir_.c_str());
}

int Daemon::stop(int signal, std::chrono::seconds timeout) {
  if (pid_ <= 0) throw std::runtime_error("daemon not running");
  kill(pid_, signal);
  return wait_exit(timeout);
}

std::string Daemon::log() const { return read_file(dir_ + "/stderr.log"); }

long Daemon::rss_kib() const {
  std::istringstream status(read_file("/proc/" + std::to_string(pid_) + "/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

void Daemon::cap_address_space(size_t extra) const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  rlim_t mapped = 0;
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmSize:")) mapped = std::stoull(line.substr(7)) * 1024;  // kB
  if (mapped == 0) throw std::runtime_error("no VmSize for the daemon");
  rlimit cap{mapped + extra, RLIM_INFINITY};
  if (prlimit(pid_, RLIMIT_AS, &cap, nullptr) != 0) throw std::runtime_error("prlimit failed");
}

void Daemon::lift_address_space() const {
  rlimit lifted{RLIM_INFINITY, RLIM_INFINITY};
  if (prlimit(pid_, RLIMIT_AS, &lifted, nullptr) != 0) throw std::runtime_error("prlimit failed");
}

double Daemon::cpu_seconds() const {
  std::string stat = read_file("/proc/" + std::to_string(pid_) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

Client::Client(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
}

Client::~Client() {
  if (fd_ >= 0) close(fd_);
}

void Client::send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
}

std::string Client::line(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto lf = buffered_.find('\n');
    if (lf != std::string::npos) {
      std::string out = buffered_.substr(0, lf);
      buffered_.erase(0, lf + 1);
      return out;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("no reply line within the timeout; got so far: " + buffered_);
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0) throw std::runtime_error("connection closed by the server; got so far: " + buffered_);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("recv failed: ") + std::strerror(errno));
    }
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

bool Client::closed_within(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) continue;
    char chunk[4096];
    ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n > 0) buffered_.append(chunk, static_cast<size_t>(n));
  }
  return false;
}

std::optional<std::string> field(const std::string& reply, const std::string& key) {
  std::string needle = " " + key + "=";
  auto at = reply.find(needle);
  if (at == std::string::npos) return std::nullopt;
  size_t i = at + needle.size();
  if (i < reply.size() && reply[i] == '"') {
    std::string value;
    for (++i; i < reply.size() && reply[i] != '"'; ++i) {
      if (reply[i] == '\\' && i + 1 < reply.size()) ++i;
      value += reply[i];
    }
    return value;
  }
  auto end = reply.find(' ', i);
  return reply.substr(i, end == std::string::npos ? std::string::npos : end - i);
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace testing
