#pragma once
// One client connection: a loop that reads bytes, cuts them into lines, runs each request through
// the command table and writes the replies back in order. Includes Asio: daemon/*.cpp only.
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "daemon/server.hpp"
#include "protocol/framer.hpp"

namespace accountsd {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, Server& server);

  asio::awaitable<void> run();
  // Any thread: finish the current request, then close. `now` closes at once.
  void request_stop(bool now);

  // For the session commands (AUTH, QUIT).
  bool authenticated() const { return authenticated_; }
  void set_authenticated() { authenticated_ = true; }
  void close_after_reply() { closing_ = true; }
  Server& server() { return server_; }

 private:
  enum class Phase { working, reading, writing };
  asio::awaitable<void> watchdog();
  asio::awaitable<std::optional<protocol::Reply>> execute(std::string_view line);
  asio::awaitable<bool> flush();
  void arm_deadline();

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  Server& server_;
  protocol::LineFramer framer_;
  std::vector<std::string> args_;
  std::string out_;
  Phase phase_ = Phase::working;
  std::chrono::steady_clock::time_point deadline_;
  bool authenticated_;
  bool closing_ = false;
};

}  // namespace accountsd
