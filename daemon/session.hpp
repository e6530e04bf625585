#pragma once
// One client connection: a loop that reads bytes, cuts them into lines, runs each request through
// the command table and writes the replies back in order. Everything a session owns (the socket,
// its timer, the framer, the deadlines) lives on one strand: the one the socket was accepted on.
// Includes Asio: daemon/*.cpp only.
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/server.hpp"
#include "protocol/framer.hpp"

namespace accountsd {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, Server& server, std::string peer);

  asio::any_io_executor executor() { return socket_.get_executor(); }
  asio::awaitable<void> run();
  // Any thread: finish the current request, then close. `now` closes at once.
  void request_stop(bool now);

  // AUTH: checks the secret. A wrong one is logged with the peer address and answered after a
  // delay that doubles with every failure; after kMaxAuthFailures the connection is closed.
  asio::awaitable<protocol::Reply> authenticate(std::string_view secret);
  static constexpr int kMaxAuthFailures = 5;

  void close_after_reply() { closing_ = true; }
  Server& server() { return server_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { working, reading, writing };
  asio::awaitable<void> watchdog();
  asio::awaitable<std::optional<protocol::Reply>> execute(std::string_view line);
  asio::awaitable<bool> flush();
  void arm_deadline();
  void set_authenticated();

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  Server& server_;
  std::string peer_;  // "address:port", for the log
  protocol::LineFramer framer_;
  std::vector<std::string> args_;
  std::string out_;
  Phase phase_ = Phase::working;
  Clock::time_point deadline_;
  std::optional<Clock::time_point> line_started_;  // the first byte of an unfinished request line
  std::optional<Clock::time_point> auth_deadline_;  // while a secret is required and not yet given
  int auth_failures_ = 0;
  bool closing_ = false;
};

}  // namespace accountsd
