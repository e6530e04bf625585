#pragma once
// The loop of one connection over one kind of stream. Included by session.cpp (TCP, Unix socket)
// and tls.cpp (TLS) only, which give each stream its StreamTraits:
//   static auto& lowest(Stream&)                        the socket under it (close, cancel)
//   static asio::awaitable<bool> start(Connection&)     e.g. the TLS handshake; false: close
//   static asio::awaitable<void> finish(Connection&)    e.g. close_notify, bounded; then closed
#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "daemon/session.hpp"

namespace accountsd {

template <class Stream>
struct StreamTraits;

namespace connection_detail {
constexpr size_t kReadBytes = 16 * 1024;
constexpr size_t kFlushBytes = 64 * 1024;  // bounds what a pipelining client that never reads can cost
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
}  // namespace connection_detail

template <class Stream>
class Connection final : public Session {
 public:
  using Traits = StreamTraits<Stream>;

  // `executor`: the event loop the socket was accepted on, which the whole connection runs on.
  template <class... StreamArgs>
  Connection(asio::any_io_executor executor, Server& server, std::string peer, Transport transport,
             std::shared_ptr<void> keep, StreamArgs&&... args)
      : Session(std::move(executor), server, std::move(peer), transport),
        keep_(std::move(keep)),
        stream_(std::forward<StreamArgs>(args)...) {}

  Stream& stream() { return stream_; }
  // For StreamTraits: the phases and the deadline they run under.
  void set_phase_reading() {
    phase_ = Phase::reading;
    arm_deadline();
  }
  void set_phase_working() { phase_ = Phase::working; }
  void authenticate_as(std::shared_ptr<const Client> client) {
    by_certificate_ = true;
    set_client(std::move(client));
  }

  asio::awaitable<void> run() override {
    using namespace connection_detail;
    auto self = shared_from_this();
    arm_deadline();
    asio::co_spawn(executor(), [self, this]() { return watchdog(); },
                   [](std::exception_ptr e) { log_failure("session watchdog", e); });

    bool connected = co_await Traits::start(*this);
    Clock::time_point last_read = Clock::now();
    bool first_read = true;
    while (connected && !closing_) {
      bool framed = false;
      while (connected && !closing_) {
        auto frame = framer_.next();
        if (!frame) break;
        framed = true;
        if (frame->kind == protocol::LineFramer::Kind::too_long) {
          auto limit = std::to_string(server_.config().server.max_line_bytes);
          out_ += protocol::Reply::error(protocol::Error::line_too_long, "line exceeds " + limit + " bytes").line();
          count_too_long();
          out_ += '\n';
        } else if (auto reply = co_await execute(frame->line)) {
          out_ += reply->line();
          out_ += '\n';
        }
        if (out_.size() >= kFlushBytes) connected = co_await flush();
      }
      if (!connected || !co_await flush() || closing_ || server_.stopping()) break;
      // A request line must arrive whole within request_timeout_s of its first byte, so a client
      // that trickles one byte a second does not hold a connection forever. What is left unframed
      // after a line was cut off arrived with the last read.
      if (framed) line_started_ = last_read;

      auto buffer = framer_.prepare(kReadBytes);
      phase_ = Phase::reading;
      arm_deadline();
      auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buffer.data(), buffer.size()), use_tuple);
      phase_ = Phase::working;
      if (ec) break;  // the client left, a deadline passed, or the server is stopping
      if (first_read && transport_ == Transport::tcp && n >= 3 && buffer[0] == 0x16 && buffer[1] == 0x03) {
        // A TLS ClientHello on the plain port: no line protocol will come.
        spdlog::debug("closing connection from {}: it speaks TLS to the plain port", peer_);
        break;
      }
      first_read = false;
      last_read = Clock::now();
      if (!framer_.in_line()) line_started_ = last_read;
      framer_.commit(n);
      read_ahead();
    }
    co_await Traits::finish(*this);
    close_now();
    finished();
  }

  void request_stop(bool now) override {
    asio::post(executor(), [self = shared_from_this(), this, now] {
      asio::error_code ignored;
      if (now) close_now();
      else if (phase_ == Phase::reading) Traits::lowest(stream_).cancel(ignored);
    });
  }

  void close_now() {
    asio::error_code ignored;
    auto& socket = Traits::lowest(stream_);
    if (!socket.is_open()) return;
    socket.shutdown(asio::socket_base::shutdown_both, ignored);
    socket.close(ignored);
    timer_.cancel();
  }

 private:
  asio::awaitable<bool> flush() {
    using namespace connection_detail;
    if (out_.empty()) co_return true;
    phase_ = Phase::writing;
    arm_deadline();
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(out_), use_tuple);
    phase_ = Phase::working;
    out_.clear();
    co_return !ec;
  }

  // Closes the connection when a read or a write (or a TLS handshake) waits past the deadline. A
  // request being executed is never cut short.
  asio::awaitable<void> watchdog() {
    using namespace connection_detail;
    while (Traits::lowest(stream_).is_open()) {
      timer_.expires_at(deadline_);
      co_await timer_.async_wait(use_tuple);
      if (!Traits::lowest(stream_).is_open()) break;
      if (phase_ == Phase::working) {
        arm_deadline();
        continue;
      }
      if (deadline_ <= Clock::now()) {
        spdlog::debug("closing connection from {}: {}", peer_, deadline_reason());
        asio::error_code ignored;
        Traits::lowest(stream_).close(ignored);
      }
    }
  }

  std::shared_ptr<void> keep_;  // what the stream refers to and must outlive it (the TLS context)
  Stream stream_;
};

}  // namespace accountsd
