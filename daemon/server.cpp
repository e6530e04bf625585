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

#include "daemon/session.hpp"

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
    : io_(io), config_(config), commands_(commands), acceptor_(io), secret_(config.auth.secret) {}

void Server::open(int inherited_fd) {
  if (inherited_fd >= 0) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    ::getsockname(inherited_fd, reinterpret_cast<sockaddr*>(&address), &length);
    acceptor_.assign(address.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), inherited_fd);
    return;
  }
  auto address = asio::ip::make_address(config_.server.host);
  asio::ip::tcp::endpoint endpoint(address, config_.server.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

asio::awaitable<void> Server::accept_loop() {
  asio::steady_timer pause(io_);
  auto backoff = std::chrono::milliseconds(0);
  while (!stopping()) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), use_tuple);
    if (ec) {
      if (stopping() || ec == asio::error::operation_aborted) break;
      // Out of file descriptors (or memory): the pending connection stays in the backlog, so
      // retrying at once would spin. Pause, longer each time, and log at a bounded rate.
      backoff = std::clamp(backoff * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
      uint64_t suppressed = 0;
      if (accept_error_log_.allow(suppressed))
        spdlog::warn("accept failed: {}; pausing accepts for {} ms{}", ec.message(), backoff.count(),
                     suppressed ? " (" + std::to_string(suppressed) + " more not logged)" : std::string());
      pause.expires_after(backoff);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    backoff = std::chrono::milliseconds(0);
    if (connections() >= config_.server.max_connections) {
      asio::co_spawn(socket.get_executor(), refuse(std::move(socket), "max_connections"),
                     [](std::exception_ptr e) { log_failure("refusing a connection", e); });
      continue;
    }
    if (secret_required() && unauthenticated() >= config_.server.max_unauthenticated) {
      asio::co_spawn(socket.get_executor(), refuse(std::move(socket), "max_unauthenticated"),
                     [](std::exception_ptr e) { log_failure("refusing a connection", e); });
      continue;
    }
    asio::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    std::string peer = peer_of(socket);
    spdlog::debug("connection from {}", peer);
    auto session = std::make_shared<Session>(std::move(socket), *this, std::move(peer));
    attach(session);
    // The session runs on the strand its socket was accepted on: one strand per connection.
    auto strand = session->executor();
    asio::co_spawn(strand, [session] { return session->run(); },
                   [](std::exception_ptr e) { log_failure("session", e); });
  }
}

asio::awaitable<void> Server::refuse(asio::ip::tcp::socket socket, std::string why) {
  uint64_t suppressed = 0;
  if (refusal_log_.allow(suppressed))
    spdlog::warn("refusing a connection from {}: {} ({}) reached{}", peer_of(socket), why,
                 why == "max_connections" ? config_.server.max_connections : config_.server.max_unauthenticated,
                 suppressed ? "; " + std::to_string(suppressed) + " more refusals not logged" : std::string());
  auto line = protocol::Reply::error(protocol::Error::too_many_connections,
                                     why == "max_connections" ? "server is at max_connections; try again later"
                                                              : "too many connections waiting to authenticate; try again later")
                  .line() + '\n';
  co_await asio::async_write(socket, asio::buffer(line), use_tuple);
  asio::error_code ignored;
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void Server::stop() {
  stopping_.store(true, std::memory_order_release);
  asio::post(acceptor_.get_executor(), [this] {
    asio::error_code ignored;
    acceptor_.close(ignored);
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
  uint64_t rows = p->rows.load(), expected = p->expected.load();
  std::string text = "loading accounts: " + std::to_string(rows) + " rows";
  if (expected > 0) text += " of about " + std::to_string(expected) + " (" + std::to_string(std::min<uint64_t>(99, rows * 100 / expected)) + "%)";
  return text;
}

bool Server::secret_required() const {
  std::lock_guard lock(mutex_);
  return !secret_.empty();
}

bool Server::secret_matches(std::string_view presented) const {
  // Compare digests, so that neither the length nor the content leaks through timing.
  unsigned char expected[crypto_generichash_BYTES];
  unsigned char actual[crypto_generichash_BYTES];
  {
    std::lock_guard lock(mutex_);
    if (secret_.empty()) return true;
    crypto_generichash(expected, sizeof expected, reinterpret_cast<const unsigned char*>(secret_.data()),
                       secret_.size(), nullptr, 0);
  }
  crypto_generichash(actual, sizeof actual, reinterpret_cast<const unsigned char*>(presented.data()),
                     presented.size(), nullptr, 0);
  return sodium_memcmp(expected, actual, sizeof expected) == 0;
}

std::string Server::fenced_reason() const {
  if (fenced_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mutex_);
    if (!fenced_reason_.empty()) return fenced_reason_;
  }
  const db::Lease* lease = lease_.load(std::memory_order_acquire);
  if (lease == nullptr) return {};
  int64_t late = db::Lease::steady_ms() - lease->valid_until_ms();
  if (late <= 0) return {};
  return "this daemon could not confirm its database lease in time and does not answer for the accounts until it "
         "does; nothing was done; retry shortly";
}

void Server::set_fenced(std::string reason) {
  std::lock_guard lock(mutex_);
  fenced_reason_ = std::move(reason);
  fenced_.store(!fenced_reason_.empty(), std::memory_order_release);
}

void Server::set_secret(std::string secret) {
  std::lock_guard lock(mutex_);
  secret_ = std::move(secret);
}

}  // namespace accountsd
