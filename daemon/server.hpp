#pragma once
// The network side of the daemon: the acceptor, the registry of live sessions, and what every
// session shares (the command table, the settings that may change while running).
// Includes Asio: only daemon/*.cpp include this.
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <map>
#include <optional>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "accounts/log_limiter.hpp"
#include "daemon/audit.hpp"
#include "daemon/clients.hpp"
#include "daemon/config.hpp"
#include "db/lease.hpp"
#include "db/warm_load.hpp"
#include "protocol/command_table.hpp"

namespace accountsd {

class Session;
class RequestMetrics;
class TlsContext;
class NodeRole;
using Handler = std::function<asio::awaitable<protocol::Reply>(Session&, protocol::Args)>;
using CommandTable = protocol::CommandTable<Handler>;

class Server {
 public:
  Server(asio::io_context& io, const Config& config, const CommandTable& commands);
  ~Server();

  // A socket systemd passed (socket activation): its fd and its FileDescriptorName.
  struct Inherited {
    int fd;
    std::string name;
  };
  // Opens every listener: server.listen (plain TCP), tls.listen, server.unix_socket; a listener
  // systemd passed takes the place of the one it stands for (a Unix socket for unix_socket, one
  // named "tls" for tls.listen, any other TCP socket for server.listen). Throws on failure.
  void open(const std::vector<Inherited>& inherited = {});
  std::optional<asio::ip::tcp::endpoint> tcp_endpoint() const;
  std::optional<asio::ip::tcp::endpoint> tls_endpoint() const;
  // One accept loop per listener; co_spawn each on accept_executor(), the strand on which the
  // acceptors are also closed (stop()), so that closing never races an accept being started.
  std::vector<asio::awaitable<void>> accept_loops();
  asio::strand<asio::io_context::executor_type> accept_executor() const { return accept_strand_; }
  // The event loops new connections are dealt to, in turn; each is run by one thread of its own.
  // Before open(); by default only the loop the server was made with.
  void set_connection_loops(std::vector<asio::io_context*> loops) { loops_ = std::move(loops); }

  // Stops accepting and asks every session to finish its current request and close.
  void stop();
  // Closes whatever sessions are still open (the end of the bounded shutdown wait).
  void close_all();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  size_t connections() const { return connections_.load(std::memory_order_relaxed); }

  const Config& config() const { return config_; }
  const CommandTable& commands() const { return commands_; }
  // The clients AUTH checks (daemon/clients.hpp); set once the command table is complete, before
  // open(), and replaced as a whole on SIGHUP. Throws
  // std::invalid_argument for an allow list naming no command.
  void set_clients(const std::vector<ClientConfig>& clients);
  std::shared_ptr<const ClientList> clients() const;
  uint64_t clients_generation() const { return clients_generation_.load(std::memory_order_acquire); }
  // Connections by the client they authenticated as, for STATS ("web:3,admin:1").
  void count_client(const std::string& name, int delta);
  std::string connections_by_client() const;
  Audit& audit() { return audit_; }

  // The TLS context new TLS connections use; SIGHUP re-reads the files (reload_tls). Throws
  // std::runtime_error naming the file that is wrong; the context in use then stays.
  void reload_tls(const Config::Tls& settings);

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
  // Non-empty on a replica: change commands answer READONLY with this text (naming the primary).
  void set_readonly(std::string message);
  std::string readonly_message() const;
  // The node's role: change replies carry its position (null: no positions, memory-only).
  void set_role(const NodeRole* role) { role_ = role; }
  const NodeRole* role() const { return role_; }

  // Connections that still have to AUTH: capped by server.max_unauthenticated.
  void count_unauthenticated(int delta) { unauthenticated_.fetch_add(delta, std::memory_order_relaxed); }
  size_t unauthenticated() const { return static_cast<size_t>(unauthenticated_.load(std::memory_order_relaxed)); }
  accounts::LogLimiter& auth_failure_log() { return auth_failure_log_; }

  void count_request() { requests_.fetch_add(1, std::memory_order_relaxed); }
  // Where requests are counted for Prometheus; null when metrics are off. Set before serving.
  void set_metrics(RequestMetrics* metrics) { metrics_ = metrics; }
  RequestMetrics* metrics() const { return metrics_; }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

  // Sessions register themselves for the lifetime of their connection.
  void attach(const std::shared_ptr<Session>& session);
  void detach(Session* session);

 private:
  template <class Socket>
  asio::awaitable<void> refuse(Socket socket, std::string peer, std::string why);
  // Whether a new connection may be served; logs and answers a refusal otherwise.
  template <class Socket>
  bool admit(Socket& socket, const std::string& peer);
  asio::awaitable<void> accept_tcp(asio::ip::tcp::acceptor& acceptor, bool tls);
  asio::awaitable<void> accept_unix();
  void start(const std::shared_ptr<Session>& session);

  asio::io_context& next_loop();

  asio::io_context& io_;
  std::vector<asio::io_context*> loops_;
  size_t next_loop_ = 0;  // on the accept strand only
  const Config& config_;
  const CommandTable& commands_;
  asio::strand<asio::io_context::executor_type> accept_strand_;
  asio::ip::tcp::acceptor acceptor_;      // server.listen
  asio::ip::tcp::acceptor tls_acceptor_;  // tls.listen
  asio::local::stream_protocol::acceptor unix_acceptor_;
  bool unix_owned_ = false;  // we created the socket file (and remove it at exit)
  std::atomic<bool> stopping_{false};
  std::atomic<bool> loading_{false};
  std::atomic<const db::LoadProgress*> progress_{nullptr};  // set before loading_, never cleared
  std::atomic<size_t> connections_{0};
  std::atomic<uint64_t> requests_{0};
  RequestMetrics* metrics_ = nullptr;
  std::atomic<int64_t> unauthenticated_{0};
  std::atomic<bool> fenced_{false};
  std::atomic<bool> readonly_{false};
  const NodeRole* role_ = nullptr;
  std::atomic<const db::Lease*> lease_{nullptr};
  accounts::LogLimiter accept_error_log_{5};
  accounts::LogLimiter refusal_log_{5};
  accounts::LogLimiter auth_failure_log_{20};
  mutable std::mutex mutex_;  // guards sessions_, clients_, by_client_, tls_, fenced_reason_ and readonly_message_
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;
  std::shared_ptr<const ClientList> clients_;
  std::atomic<uint64_t> clients_generation_{0};
  std::map<std::string, int64_t> by_client_;
  std::shared_ptr<TlsContext> tls_;
  Audit audit_;
  std::string fenced_reason_;
  std::string readonly_message_;
};

// Logs the exception a spawned coroutine ended with; every co_spawn in the daemon uses it.
void log_failure(const char* what, std::exception_ptr e);

}  // namespace accountsd
