#include "daemon/server.hpp"

#include <sodium.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "accounts/clock.hpp"
#include "daemon/session.hpp"
#include "daemon/tls.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace accountsd {
namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

template <class Socket>
std::string peer_of(const Socket& socket) {
  asio::error_code ec;
  auto peer = socket.remote_endpoint(ec);
  if (ec) return "unknown peer";
  return peer.address().to_string() + ":" + std::to_string(peer.port());
}
}  // namespace

void log_failure(const char* what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{} failed: {}", what, ex.what());
  }
}

Server::Server(asio::io_context& io, const Config& config, const CommandTable& commands)
    : io_(io),
      loops_{&io},
      config_(config),
      commands_(commands),
      accept_strand_(asio::make_strand(io)),
      acceptor_(io),
      tls_acceptor_(io),
      unix_acceptor_(io) {}

Server::~Server() {
  if (unix_owned_) ::unlink(config_.server.unix_socket.c_str());
}

namespace {

void listen_tcp(asio::ip::tcp::acceptor& acceptor, const std::string& host, uint16_t port) {
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
}

void adopt_tcp(asio::ip::tcp::acceptor& acceptor, int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  acceptor.assign(address.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
}

int family_of(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return address.ss_family;
}

// The peer of a Unix socket connection, from the kernel: "unix:uid=1000,pid=4242".
template <class Socket>
std::string unix_peer(Socket& socket) {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return "unix";
  return "unix:uid=" + std::to_string(credentials.uid) + ",pid=" + std::to_string(credentials.pid);
}

}  // namespace

void Server::open(const std::vector<Inherited>& inherited) {
  bool have_tcp = false, have_tls = false, have_unix = false;
  for (const auto& socket : inherited) {
    if (family_of(socket.fd) == AF_UNIX) {
      unix_acceptor_.assign(asio::local::stream_protocol(), socket.fd);
      have_unix = true;
    } else if (socket.name == "tls") {
      if (config_.tls.listen.empty()) throw std::runtime_error("systemd passed a socket named tls, but tls.listen is not set");
      adopt_tcp(tls_acceptor_, socket.fd);
      have_tls = true;
    } else {
      adopt_tcp(acceptor_, socket.fd);
      have_tcp = true;
    }
  }
  if (!have_tcp && !config_.server.listen.empty()) listen_tcp(acceptor_, config_.server.host, config_.server.port);
  if (!have_tls && !config_.tls.listen.empty()) {
    reload_tls(config_.tls);
    listen_tcp(tls_acceptor_, config_.tls.host, config_.tls.port);
  } else if (have_tls) {
    reload_tls(config_.tls);
  }
  if (!have_unix && !config_.server.unix_socket.empty()) {
    const std::string& path = config_.server.unix_socket;
    // A socket file left by a daemon that died is removed; one that still answers is not ours.
    asio::local::stream_protocol::socket probe(io_);
    asio::error_code ec;
    probe.connect(asio::local::stream_protocol::endpoint(path), ec);
    if (!ec) throw std::runtime_error("server.unix_socket " + path + ": another process listens there");
    ::unlink(path.c_str());
    unix_acceptor_.open(asio::local::stream_protocol());
    unix_acceptor_.bind(asio::local::stream_protocol::endpoint(path));
    unix_owned_ = true;
    if (::chmod(path.c_str(), config_.server.unix_socket_mode) != 0)
      throw std::runtime_error("server.unix_socket " + path + ": chmod: " + std::strerror(errno));
    if (!config_.server.unix_socket_group.empty()) {
      group* g = ::getgrnam(config_.server.unix_socket_group.c_str());
      if (g == nullptr) throw std::runtime_error("server.unix_socket_group " + config_.server.unix_socket_group + ": no such group");
      if (::chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0)
        throw std::runtime_error("server.unix_socket " + path + ": chown to group " + config_.server.unix_socket_group +
                                 ": " + std::strerror(errno));
    }
    unix_acceptor_.listen(asio::socket_base::max_listen_connections);
  }
}

std::optional<asio::ip::tcp::endpoint> Server::tcp_endpoint() const {
  if (!acceptor_.is_open()) return std::nullopt;
  return acceptor_.local_endpoint();
}

std::optional<asio::ip::tcp::endpoint> Server::tls_endpoint() const {
  if (!tls_acceptor_.is_open()) return std::nullopt;
  return tls_acceptor_.local_endpoint();
}

std::vector<asio::awaitable<void>> Server::accept_loops() {
  std::vector<asio::awaitable<void>> loops;
  if (acceptor_.is_open()) loops.push_back(accept_tcp(acceptor_, false));
  if (tls_acceptor_.is_open()) loops.push_back(accept_tcp(tls_acceptor_, true));
  if (unix_acceptor_.is_open()) loops.push_back(accept_unix());
  return loops;
}

template <class Socket>
bool Server::admit(Socket& socket, const std::string& peer) {
  if (connections() >= config_.server.max_connections) {
    asio::co_spawn(socket.get_executor(), refuse(std::move(socket), peer, "max_connections"),
                   [](std::exception_ptr e) { log_failure("refusing a connection", e); });
    return false;
  }
  if (clients()->required() && unauthenticated() >= config_.server.max_unauthenticated) {
    asio::co_spawn(socket.get_executor(), refuse(std::move(socket), peer, "max_unauthenticated"),
                   [](std::exception_ptr e) { log_failure("refusing a connection", e); });
    return false;
  }
  return true;
}

// Round robin, as memcached deals connections to its worker threads: a connection's reads,
// writes and requests then stay on one thread, with no hand-off between threads and no wake-up of
// another thread per request.
asio::io_context& Server::next_loop() {
  asio::io_context& loop = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  return loop;
}

void Server::start(const std::shared_ptr<Session>& session) {
  attach(session);
  // The session runs on the loop its socket was accepted on. Each loop is run by one thread, which
  // serialises everything of the session; a strand per connection would only add a queue and a
  // lock to every completion (docs/BENCHMARKS.md, "Sessions without a strand").
  asio::co_spawn(session->executor(), [session] { return session->run(); },
                 [](std::exception_ptr e) { log_failure("session", e); });
}

asio::awaitable<void> Server::accept_tcp(asio::ip::tcp::acceptor& acceptor, bool tls) {
  asio::steady_timer pause(io_);
  auto backoff = std::chrono::milliseconds(0);
  while (!stopping()) {
    auto [ec, socket] = co_await acceptor.async_accept(next_loop(), use_tuple);
    if (ec) {
      if (stopping() || ec == asio::error::operation_aborted) break;
      // Out of file descriptors (or memory): the pending connection stays in the backlog, so
      // retrying at once would spin. Pause, longer each time, and log at a bounded rate.
      backoff = std::clamp(backoff * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
      uint64_t suppressed = 0;
      if (accept_error_log_.allow(suppressed))
        spdlog::warn("accept failed: {}; pausing accepts for {} ms{}", ec.message(), backoff.count(),
                     accounts::LogLimiter::not_logged(suppressed, "accept errors"));
      pause.expires_after(backoff);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    backoff = std::chrono::milliseconds(0);
    std::string peer = peer_of(socket);
    if (!admit(socket, peer)) continue;
    asio::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    spdlog::debug("connection from {}{}", peer, tls ? " (TLS)" : "");
    if (tls) {
      std::shared_ptr<TlsContext> context;
      {
        std::lock_guard lock(mutex_);
        context = tls_;
      }
      start(make_tls_session(std::move(socket), *this, std::move(peer), std::move(context)));
    } else {
      start(make_tcp_session(std::move(socket), *this, std::move(peer)));
    }
  }
}

asio::awaitable<void> Server::accept_unix() {
  asio::steady_timer pause(io_);
  while (!stopping()) {
    auto [ec, socket] = co_await unix_acceptor_.async_accept(next_loop(), use_tuple);
    if (ec) {
      if (stopping() || ec == asio::error::operation_aborted) break;
      uint64_t suppressed = 0;
      if (accept_error_log_.allow(suppressed)) spdlog::warn("accept on the Unix socket failed: {}", ec.message());
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    std::string peer = unix_peer(socket);
    if (!admit(socket, peer)) continue;
    spdlog::debug("connection from {}", peer);
    start(make_unix_session(std::move(socket), *this, std::move(peer)));
  }
}

template <class Socket>
asio::awaitable<void> Server::refuse(Socket socket, std::string peer, std::string why) {
  uint64_t suppressed = 0;
  if (refusal_log_.allow(suppressed))
    spdlog::warn("refusing a connection from {}: {} ({}) reached{}", peer, why,
                 why == "max_connections" ? config_.server.max_connections : config_.server.max_unauthenticated,
                 accounts::LogLimiter::not_logged(suppressed, "refusals"));
  auto line = protocol::Reply::error(protocol::Error::too_many_connections,
                                     why == "max_connections" ? "server is at max_connections; try again later"
                                                              : "too many connections waiting to authenticate; try again later")
                  .line() + '\n';
  co_await asio::async_write(socket, asio::buffer(line), use_tuple);
  asio::error_code ignored;
  socket.shutdown(asio::socket_base::shutdown_both, ignored);
  socket.close(ignored);
}

void Server::stop() {
  stopping_.store(true, std::memory_order_release);
  asio::post(accept_strand_, [this] {
    asio::error_code ignored;
    acceptor_.close(ignored);
    tls_acceptor_.close(ignored);
    unix_acceptor_.close(ignored);
  });
  std::lock_guard lock(mutex_);
  for (const auto& [raw, session] : sessions_) session->request_stop(false);
}

void Server::close_all() {
  std::lock_guard lock(mutex_);
  for (const auto& [raw, session] : sessions_) session->request_stop(true);
}

void Server::attach(const std::shared_ptr<Session>& session) {
  std::lock_guard lock(mutex_);
  sessions_.emplace(session.get(), session);
  connections_.fetch_add(1, std::memory_order_relaxed);
}

void Server::detach(Session* session) {
  std::lock_guard lock(mutex_);
  if (sessions_.erase(session) > 0) connections_.fetch_sub(1, std::memory_order_relaxed);
}

std::string Server::loading_progress() const {
  const db::LoadProgress* p = progress_.load();
  if (p == nullptr) return "starting";
  auto counted = [](const char* what, uint64_t rows, uint64_t expected) {
    std::string text = std::string("loading ") + what + ": " + std::to_string(rows) + " rows";
    if (expected > 0)
      text += " of about " + std::to_string(expected) + " (" + std::to_string(std::min<uint64_t>(99, rows * 100 / expected)) + "%)";
    return text;
  };
  if (p->loading_sessions.load())
    return "loaded " + std::to_string(p->rows.load()) + " accounts; " +
           counted("sessions", p->sessions.load(), p->expected_sessions.load());
  return counted("accounts", p->rows.load(), p->expected.load());
}

void Server::set_clients(const std::vector<ClientConfig>& clients) {
  std::vector<std::string> names = commands_.names_by_slot(), categories(names.size());
  for (const auto& name : names) categories[commands_.find(name)->slot] = commands_.find(name)->spec.category;
  auto list = std::make_shared<const ClientList>(clients, names, categories);
  {
    std::lock_guard lock(mutex_);
    clients_ = std::move(list);
  }
  clients_generation_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const ClientList> Server::clients() const {
  std::lock_guard lock(mutex_);
  return clients_;
}

void Server::count_client(const std::string& name, int delta) {
  std::lock_guard lock(mutex_);
  auto& n = by_client_[name];
  n += delta;
  if (n <= 0) by_client_.erase(name);
}

std::string Server::connections_by_client() const {
  std::lock_guard lock(mutex_);
  std::string text;
  for (const auto& [name, n] : by_client_) text += (text.empty() ? "" : ",") + name + ":" + std::to_string(n);
  return text;
}

void Server::reload_tls(const Config::Tls& settings) {
  auto context = make_tls_context(settings);
  std::lock_guard lock(mutex_);
  tls_ = std::move(context);
}

std::string Server::fenced_reason() const {
  if (fenced_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mutex_);
    if (!fenced_reason_.empty()) return fenced_reason_;
  }
  const db::Lease* lease = lease_.load(std::memory_order_acquire);
  if (lease == nullptr) return {};
  // Asked on every request: the coarse clock answers while the lease is well inside its time,
  // the exact one near the end (accounts/clock.hpp).
  if (accounts::deadline_ahead(lease->valid_until_ms() + 1, accounts::coarse_steady_ms(), accounts::steady_ms))
    return {};
  return "this daemon could not confirm its database lease in time and does not answer for the accounts until it "
         "does; nothing was done; retry shortly";
}

void Server::set_readonly(std::string message) {
  std::lock_guard lock(mutex_);
  readonly_message_ = std::move(message);
  readonly_.store(!readonly_message_.empty(), std::memory_order_release);
}

std::string Server::readonly_message() const {
  if (!readonly_.load(std::memory_order_acquire)) return {};
  std::lock_guard lock(mutex_);
  return readonly_message_;
}

void Server::set_fenced(std::string reason) {
  std::lock_guard lock(mutex_);
  fenced_reason_ = std::move(reason);
  fenced_.store(!fenced_reason_.empty(), std::memory_order_release);
}


}  // namespace accountsd
