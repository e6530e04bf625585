#include "daemon/session.hpp"

#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "protocol/tokenizer.hpp"

namespace accountsd {
namespace {
constexpr size_t kReadBytes = 16 * 1024;
constexpr size_t kFlushBytes = 64 * 1024;  // bounds what a pipelining client that never reads can cost
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
}  // namespace

Session::Session(asio::ip::tcp::socket socket, Server& server)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      server_(server),
      framer_(server.config().server.max_line_bytes),
      authenticated_(!server.secret_required()) {}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  arm_deadline();
  asio::co_spawn(socket_.get_executor(), [self]() { return self->watchdog(); },
                 [](std::exception_ptr e) { log_failure("session watchdog", e); });

  bool connected = true;
  while (connected && !closing_) {
    while (connected && !closing_) {
      auto frame = framer_.next();
      if (!frame) break;
      if (frame->kind == protocol::LineFramer::Kind::too_long) {
        auto limit = std::to_string(server_.config().server.max_line_bytes);
        out_ += protocol::Reply::error(protocol::Error::line_too_long, "line exceeds " + limit + " bytes").line() + '\n';
      } else if (auto reply = co_await execute(frame->line)) {
        out_ += reply->line() + '\n';
      }
      if (out_.size() >= kFlushBytes) connected = co_await flush();
    }
    if (!connected || !co_await flush() || closing_ || server_.stopping()) break;

    auto buffer = framer_.prepare(kReadBytes);
    phase_ = Phase::reading;
    arm_deadline();
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()), use_tuple);
    phase_ = Phase::working;
    if (ec) break;  // the client left, the idle deadline passed, or the server is stopping
    framer_.commit(n);
  }

  asio::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  timer_.cancel();
  server_.detach(this);
}

asio::awaitable<std::optional<protocol::Reply>> Session::execute(std::string_view line) {
  using protocol::Reply;
  if (auto malformed = protocol::tokenize(line, args_)) co_return Reply::error(protocol::Error::bad_request, *malformed);
  if (args_.empty()) co_return std::nullopt;  // blank lines get no reply
  server_.count_request();

  const auto* entry = server_.commands().find(args_[0]);
  if (entry == nullptr) co_return Reply::error(protocol::Error::unknown_command, "unknown command; try HELP");
  protocol::Args args(args_.data() + 1, args_.size() - 1);
  std::string progress = server_.loading() ? server_.loading_progress() : std::string();
  protocol::RequestContext context{authenticated_, !progress.empty(), progress};
  if (auto refused = protocol::precheck(entry->spec, args.size(), context)) co_return *refused;
  co_return co_await entry->handler(*this, args);
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

void Session::arm_deadline() {
  deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(server_.config().server.idle_timeout_s);
}

// Closes the connection when a read waits longer than idle_timeout_s for a request, or a write
// waits as long for a client that does not read. A request being executed is never cut short.
asio::awaitable<void> Session::watchdog() {
  while (socket_.is_open()) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(use_tuple);
    if (!socket_.is_open()) break;
    if (phase_ == Phase::working) {
      arm_deadline();
      continue;
    }
    if (deadline_ <= std::chrono::steady_clock::now()) {
      spdlog::debug("closing connection idle for {} s", server_.config().server.idle_timeout_s);
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
