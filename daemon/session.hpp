#pragma once
// One client connection: a loop that reads bytes, cuts them into lines, runs each request through
// the command table and writes the replies back in order. Everything a session owns (the stream,
// its timer, the framer, the deadlines) lives on the event loop the socket was accepted on, which
// one thread runs: nothing of a session is touched from two threads, without a strand.
//
// Session holds what every transport shares (framing, dispatch, authentication, deadlines);
// Connection<Stream> (daemon/connection.hpp) adds the loop over one kind of stream: plain TCP, a
// Unix socket, or TLS over TCP (daemon/tls.cpp). Includes Asio: daemon/*.cpp only.
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/clients.hpp"
#include "daemon/server.hpp"
#include "protocol/framer.hpp"

namespace accountsd {

class Session : public std::enable_shared_from_this<Session> {
 public:
  virtual ~Session() = default;
  virtual asio::awaitable<void> run() = 0;
  // Any thread: finish the current request, then close. `now` closes at once.
  virtual void request_stop(bool now) = 0;
  asio::any_io_executor executor() { return timer_.get_executor(); }

  // AUTH [name] secret: checks the credential. A wrong one is logged (and audited) with the peer
  // address and answered after a delay that doubles with every failure; after kMaxAuthFailures the
  // connection is closed.
  asio::awaitable<protocol::Reply> authenticate(std::string_view name, std::string_view secret);
  static constexpr int kMaxAuthFailures = 5;

  void close_after_reply() { closing_ = true; }
  Server& server() { return server_; }
  const std::string& peer() const { return peer_; }
  // The client this connection authenticated as ("" before it did).
  std::string client_name() const { return client_ ? client_->name : std::string(); }

 protected:
  using Clock = std::chrono::steady_clock;
  enum class Phase { working, reading, writing };
  Session(asio::any_io_executor executor, Server& server, std::string peer, Transport transport);

  asio::awaitable<std::optional<protocol::Reply>> execute(std::string_view line);
  // After a read: lets the commands that have a read-ahead (GET, FIND, WHOAMI) start fetching
  // what the lines it brought will read, before the first of them runs.
  void read_ahead();
  void arm_deadline();
  void count_too_long();  // a line over max_line_bytes, for the metrics
  bool refresh_client();  // after a SIGHUP changed the clients; true: this connection lost its client
  std::string deadline_reason() const;
  // Becomes `client` (AUTH, or a TLS client certificate); null: no client (not authenticated).
  void set_client(std::shared_ptr<const Client> client);
  // Called once the loop ends, whatever ended it.
  void finished();

  asio::steady_timer timer_;
  Server& server_;
  std::string peer_;  // "address:port" or "unix socket", for the log
  Transport transport_;
  protocol::LineFramer framer_;
  std::vector<std::string> args_;
  std::string out_;
  Phase phase_ = Phase::working;
  Clock::time_point deadline_;
  std::optional<Clock::time_point> line_started_;   // the first byte of an unfinished request line
  std::optional<Clock::time_point> auth_deadline_;  // while a credential is required and not yet given
  int auth_failures_ = 0;
  bool closing_ = false;
  std::shared_ptr<const Client> client_;  // null until authenticated (or when none is needed)
  uint64_t clients_generation_ = 0;       // of the client list client_ came from
  bool by_certificate_ = false;           // client_ came from a TLS client certificate
};

// The sessions each listener makes.
std::shared_ptr<Session> make_tcp_session(asio::ip::tcp::socket socket, Server& server, std::string peer);
std::shared_ptr<Session> make_unix_session(asio::local::stream_protocol::socket socket, Server& server, std::string peer);

}  // namespace accountsd
