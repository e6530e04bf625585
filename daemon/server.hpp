#pragma once
// The network side of the daemon: the acceptor, the registry of live sessions, and what every
// session shares (the command table, the settings that may change while running).
// Includes Asio: only daemon/*.cpp include this.
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "daemon/config.hpp"
#include "daemon/log_limiter.hpp"
#include "db/lease.hpp"
#include "db/warm_load.hpp"
#include "protocol/command_table.hpp"

namespace accountsd {

class Session;
class RequestMetrics;
using Handler = std::function<asio::awaitable<protocol::Reply>(Session&, protocol::Args)>;
using CommandTable = protocol::CommandTable<Handler>;

class Server {
 public:
  Server(asio::io_context& io, const Config& config, const CommandTable& commands);

  // Binds server.listen, or adopts an already-listening socket (socket activation) when fd >= 0.
  void open(int inherited_fd = -1);
  asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  asio::awaitable<void> accept_loop();

  // Stops accepting and asks every session to finish its current request and close.
  void stop();
  // Closes whatever sessions are still open (the end of the bounded shutdown wait).
  void close_all();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  size_t connections() const { return connections_.load(std::memory_order_relaxed); }

  const Config& config() const { return config_; }
  const CommandTable& commands() const { return commands_; }
  bool secret_required() const;
  bool secret_matches(std::string_view presented) const;  // constant time
  void set_secret(std::string secret);

  // While the warm-load runs, account commands answer LOADING with this progress.
  void set_loading(const db::LoadProgress* progress) {
    if (progress != nullptr) progress_.store(progress);
    loading_.store(progress != nullptr, std::memory_order_release);
  }
  bool loading() const { return loading_.load(std::memory_order_acquire); }
  std::string loading_progress() const;

  // Non-empty while this daemon does not hold the database lease: account commands answer FENCED
  // with this text. Set and cleared by the lease watcher (any thread).
  void set_fenced(std::string reason);
  // The lease whose confirmation every request checks (null: memory-only, always the authority).
  void set_lease(const db::Lease* lease) { lease_.store(lease, std::memory_order_release); }
  std::string fenced_reason() const;

  // Connections that still have to AUTH: capped by server.max_unauthenticated.
  void count_unauthenticated(int delta) { unauthenticated_.fetch_add(delta, std::memory_order_relaxed); }
  size_t unauthenticated() const { return static_cast<size_t>(unauthenticated_.load(std::memory_order_relaxed)); }
  LogLimiter& auth_failure_log() { return auth_failure_log_; }

  void count_request() { requests_.fetch_add(1, std::memory_order_relaxed); }
  // Where requests are counted for Prometheus; null when metrics are off. Set before serving.
  void set_metrics(RequestMetrics* metrics) { metrics_ = metrics; }
  RequestMetrics* metrics() const { return metrics_; }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

  // Sessions register themselves for the lifetime of their connection.
  void attach(const std::shared_ptr<Session>& session);
  void detach(Session* session);

 private:
  asio::awaitable<void> refuse(asio::ip::tcp::socket socket, std::string why);

  asio::io_context& io_;
  const Config& config_;
  const CommandTable& commands_;
  asio::ip::tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> loading_{false};
  std::atomic<const db::LoadProgress*> progress_{nullptr};  // set before loading_, never cleared
  std::atomic<size_t> connections_{0};
  std::atomic<uint64_t> requests_{0};
  RequestMetrics* metrics_ = nullptr;
  std::atomic<int64_t> unauthenticated_{0};
  std::atomic<bool> fenced_{false};
  std::atomic<const db::Lease*> lease_{nullptr};
  LogLimiter accept_error_log_{5};
  LogLimiter refusal_log_{5};
  LogLimiter auth_failure_log_{20};
  mutable std::mutex mutex_;  // guards sessions_, secret_ and fenced_reason_
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;
  std::string secret_;
  std::string fenced_reason_;
};

// Logs the exception a spawned coroutine ended with; every co_spawn in the daemon uses it.
void log_failure(const char* what, std::exception_ptr e);

}  // namespace accountsd
