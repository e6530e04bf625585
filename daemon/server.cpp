#include "daemon/server.hpp"

#include <sodium.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "daemon/session.hpp"

namespace accountsd {

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
  while (!stopping()) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      if (stopping() || ec == asio::error::operation_aborted) break;
      spdlog::warn("accept failed: {}", ec.message());
      continue;  // e.g. out of file descriptors: keep serving the connections we have
    }
    if (connections() >= config_.server.max_connections) {
      asio::co_spawn(socket.get_executor(), refuse(std::move(socket)),
                     [](std::exception_ptr e) { log_failure("refusing a connection", e); });
      continue;
    }
    asio::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    if (spdlog::should_log(spdlog::level::debug)) {
      auto peer = socket.remote_endpoint(ignored);
      spdlog::debug("connection from {}:{}", peer.address().to_string(), peer.port());
    }
    auto session = std::make_shared<Session>(std::move(socket), *this);
    attach(session);
    asio::co_spawn(asio::make_strand(io_), [session] { return session->run(); },
                   [](std::exception_ptr e) { log_failure("session", e); });
  }
}

asio::awaitable<void> Server::refuse(asio::ip::tcp::socket socket) {
  spdlog::warn("refusing a connection: max_connections ({}) reached", config_.server.max_connections);
  auto line = protocol::Reply::error(protocol::Error::too_many_connections,
                                     "server is at max_connections; try again later").line() + '\n';
  co_await asio::async_write(socket, asio::buffer(line), asio::experimental::as_tuple(asio::use_awaitable));
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

void Server::set_secret(std::string secret) {
  std::lock_guard lock(mutex_);
  secret_ = std::move(secret);
}

}  // namespace accountsd
