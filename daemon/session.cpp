#include "daemon/session.hpp"

#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "daemon/metrics.hpp"
#include "protocol/tokenizer.hpp"

namespace accountsd {
namespace {
constexpr size_t kReadBytes = 16 * 1024;
constexpr size_t kFlushBytes = 64 * 1024;  // bounds what a pipelining client that never reads can cost
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto kFirstAuthDelay = std::chrono::milliseconds(100);
}  // namespace

Session::Session(asio::ip::tcp::socket socket, Server& server, std::string peer)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      server_(server),
      peer_(std::move(peer)),
      framer_(server.config().server.max_line_bytes) {
  if (server_.secret_required()) {
    auth_deadline_ = Clock::now() + std::chrono::seconds(server_.config().server.auth_timeout_s);
    server_.count_unauthenticated(+1);
  }
}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  arm_deadline();
  asio::co_spawn(socket_.get_executor(), [self]() { return self->watchdog(); },
                 [](std::exception_ptr e) { log_failure("session watchdog", e); });

  bool connected = true;
  Clock::time_point last_read = Clock::now();
  while (connected && !closing_) {
    bool framed = false;
    while (connected && !closing_) {
      auto frame = framer_.next();
      if (!frame) break;
      framed = true;
      if (frame->kind == protocol::LineFramer::Kind::too_long) {
        auto limit = std::to_string(server_.config().server.max_line_bytes);
        out_ += protocol::Reply::error(protocol::Error::line_too_long, "line exceeds " + limit + " bytes").line();
        if (auto* metrics = server_.metrics())
          metrics->record(metrics->no_command_slot(), RequestMetrics::code_of(false, protocol::Error::line_too_long),
                          std::chrono::nanoseconds(0));
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
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()), use_tuple);
    phase_ = Phase::working;
    if (ec) break;  // the client left, a deadline passed, or the server is stopping
    last_read = Clock::now();
    if (!framer_.in_line()) line_started_ = last_read;
    framer_.commit(n);
  }

  asio::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  timer_.cancel();
  if (auth_deadline_) server_.count_unauthenticated(-1);
  server_.detach(this);
}

asio::awaitable<std::optional<protocol::Reply>> Session::execute(std::string_view line) {
  using protocol::Reply;
  RequestMetrics* metrics = server_.metrics();
  auto started = metrics != nullptr ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  size_t slot = metrics != nullptr ? metrics->no_command_slot() : 0;
  std::optional<Reply> reply;
  if (auto malformed = protocol::tokenize(line, args_)) {
    reply = Reply::error(protocol::Error::bad_request, *malformed);
  } else if (args_.empty()) {
    co_return std::nullopt;  // blank lines get no reply
  } else if (const auto* entry = server_.commands().find(args_[0]); entry == nullptr) {
    server_.count_request();
    reply = Reply::error(protocol::Error::unknown_command, "unknown command; try HELP");
  } else {
    server_.count_request();
    slot = entry->slot;
    protocol::Args args(args_.data() + 1, args_.size() - 1);
    std::string progress = server_.loading() ? server_.loading_progress() : std::string();
    std::string fenced = server_.fenced_reason();
    protocol::RequestContext context{!auth_deadline_, !progress.empty(), progress, fenced};
    if (auto refused = protocol::precheck(entry->spec, args.size(), context)) reply = std::move(refused);
    else reply = co_await entry->handler(*this, args);
  }
  if (metrics != nullptr)
    metrics->record(slot, RequestMetrics::code_of(reply->is_ok(), reply->code()),
                    std::chrono::steady_clock::now() - started);
  co_return reply;
}

asio::awaitable<protocol::Reply> Session::authenticate(std::string_view secret) {
  using protocol::Reply;
  if (server_.secret_matches(secret)) {
    set_authenticated();
    co_return Reply::ok();
  }
  ++auth_failures_;
  uint64_t suppressed = 0;
  if (server_.auth_failure_log().allow(suppressed))
    spdlog::warn("failed AUTH from {} ({} on this connection{})", peer_, auth_failures_,
                 suppressed ? ", " + std::to_string(suppressed) + " more failures not logged" : std::string());
  // Each failure costs the guesser more time: 0.1 s, 0.2 s, 0.4 s, ... and then the connection.
  asio::steady_timer delay(co_await asio::this_coro::executor, kFirstAuthDelay * (1 << (auth_failures_ - 1)));
  co_await delay.async_wait(use_tuple);
  if (auth_failures_ >= kMaxAuthFailures) {
    close_after_reply();
    co_return Reply::error(protocol::Error::auth_failed, "wrong secret; closing after " +
                                                             std::to_string(kMaxAuthFailures) + " failures");
  }
  co_return Reply::error(protocol::Error::auth_failed, "wrong secret");
}

void Session::set_authenticated() {
  if (!auth_deadline_) return;
  auth_deadline_.reset();
  server_.count_unauthenticated(-1);
}

asio::awaitable<bool> Session::flush() {
  if (out_.empty()) co_return true;
  phase_ = Phase::writing;
  arm_deadline();
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out_), use_tuple);
  phase_ = Phase::working;
  out_.clear();
  co_return !ec;
}

// The earliest of: idle_timeout_s from now; request_timeout_s from the first byte of a request
// line still incomplete; auth_timeout_s from the connection's start while it has not authenticated.
void Session::arm_deadline() {
  const auto& settings = server_.config().server;
  deadline_ = Clock::now() + std::chrono::seconds(settings.idle_timeout_s);
  if (phase_ == Phase::reading && framer_.in_line() && line_started_)
    deadline_ = std::min(deadline_, *line_started_ + std::chrono::seconds(settings.request_timeout_s));
  if (auth_deadline_) deadline_ = std::min(deadline_, *auth_deadline_);
  // The watchdog sleeps until the deadline it last saw; wake it when this one is earlier.
  if (deadline_ < timer_.expiry()) timer_.expires_at(deadline_);
}

// Closes the connection when a read or a write waits past the deadline. A request being executed
// is never cut short.
asio::awaitable<void> Session::watchdog() {
  while (socket_.is_open()) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(use_tuple);
    if (!socket_.is_open()) break;
    if (phase_ == Phase::working) {
      arm_deadline();
      continue;
    }
    if (deadline_ <= Clock::now()) {
      spdlog::debug("closing connection from {}: {}", peer_,
                    auth_deadline_ && *auth_deadline_ <= Clock::now() ? "did not authenticate in time"
                    : phase_ == Phase::reading && framer_.in_line()  ? "request line not finished in time"
                                                                     : "idle");
      asio::error_code ignored;
      socket_.close(ignored);
    }
  }
}

void Session::request_stop(bool now) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), now] {
    asio::error_code ignored;
    if (now) self->socket_.close(ignored);
    else if (self->phase_ == Phase::reading) self->socket_.cancel(ignored);
  });
}

}  // namespace accountsd
