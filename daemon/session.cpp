#include "daemon/session.hpp"

#include "daemon/role.hpp"

#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "daemon/audit.hpp"
#include "daemon/connection.hpp"
#include "daemon/metrics.hpp"
#include "protocol/tokenizer.hpp"

namespace accountsd {
namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto kFirstAuthDelay = std::chrono::milliseconds(100);
}  // namespace

Session::Session(asio::any_io_executor executor, Server& server, std::string peer, Transport transport)
    : timer_(std::move(executor)),
      server_(server),
      peer_(std::move(peer)),
      transport_(transport),
      framer_(server.config().server.max_line_bytes) {
  clients_generation_ = server_.clients_generation();
  auto clients = server_.clients();
  if (clients->required()) {
    auth_deadline_ = Clock::now() + std::chrono::seconds(server_.config().server.auth_timeout_s);
    server_.count_unauthenticated(+1);
  } else {
    set_client(clients->anyone());
  }
}

void Session::finished() {
  if (auth_deadline_) server_.count_unauthenticated(-1);
  auth_deadline_.reset();
  set_client(nullptr);
  server_.detach(this);
}

void Session::count_too_long() {
  if (auto* metrics = server_.metrics())
    metrics->record(metrics->no_command_slot(), RequestMetrics::code_of(false, protocol::Error::line_too_long),
                    std::chrono::nanoseconds(0));
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
    bool revoked = refresh_client();
    protocol::Args args(args_.data() + 1, args_.size() - 1);
    std::string progress = server_.loading() ? server_.loading_progress() : std::string();
    std::string fenced = server_.fenced_reason();
    std::string readonly = server_.readonly_message();
    protocol::RequestContext context{client_ != nullptr, !progress.empty(), progress, fenced, readonly};
    if (revoked) {
      reply = Reply::error(protocol::Error::auth_required,
                           "this connection's client was removed or its secret changed; reconnect and AUTH");
    } else if (auto refused = protocol::precheck(entry->spec, args.size(), context)) {
      reply = std::move(refused);
    } else if (!entry->spec.category.empty() && !client_->allows(entry->slot)) {
      reply = Reply::error(protocol::Error::forbidden, "client " + client_->name + " may not run " + entry->spec.name +
                                                           " (category " + entry->spec.category + ")");
    } else {
      // An if, not ?:. g++ 12 built the ?: form (one arm a co_await) so that it called the empty
      // immediate: every other command failed with bad_function_call.
      if (entry->immediate) reply = entry->immediate(args);
      else reply = co_await entry->handler(*this, args);
      // Read your writes: a change's reply says which position a replica must have applied to
      // show it (WAIT). Read after the change committed, so it is at least the change's own.
      if (reply->is_ok() && (entry->spec.flags & protocol::kMutating))
        if (const NodeRole* role = server_.role())
          if (uint64_t position = role->position()) reply->field("position", position);
      audit_reply(server_.audit(), entry->spec.name, args, *reply, client_name(), peer_);
    }
  }
  if (metrics != nullptr)
    metrics->record(slot, RequestMetrics::code_of(reply->is_ok(), reply->code()),
                    std::chrono::steady_clock::now() - started);
  co_return reply;
}

// Only for a connection that may run the reads it sends: nobody unauthenticated makes the daemon
// digest tokens it will not look up. The arguments are split as plainly as a guess may be (a
// quoted one is skipped): each request still runs its own lookup, and gets the reply it would.
// A line that came alone is shown too: its first cache miss then overlaps the parsing and checks
// that run before its lookup (docs/BENCHMARKS.md, "A lone line read ahead too").
void Session::read_ahead() {
  constexpr size_t kLines = 32;  // what accounts/read_ahead.cpp keeps per batch
  if (client_ == nullptr || server_.loading()) return;
  framer_.peek(kLines, [&](std::string_view line) {
    size_t space = line.find(' ');
    if (space == std::string_view::npos) return;
    const auto* entry = server_.commands().find(line.substr(0, space));
    if (entry == nullptr || !entry->read_ahead || !client_->allows(entry->slot)) return;
    std::string_view argument = line.substr(space + 1);
    entry->read_ahead(argument.substr(0, argument.find(' ')));
  });
}

// A SIGHUP may have changed the clients: a connection whose client is gone or whose secret
// changed loses its authentication at once and is closed after this reply; one whose rights
// changed runs under the new ones from this request on.
bool Session::refresh_client() {
  uint64_t generation = server_.clients_generation();
  if (generation == clients_generation_) return false;
  clients_generation_ = generation;
  auto clients = server_.clients();
  if (!clients->required()) {
    set_client(clients->anyone());
    return false;
  }
  if (!client_) return false;  // not authenticated yet: AUTH decides
  auto now = clients->find(client_->name);
  bool kept = now && (by_certificate_ || (now->secret && now->secret == client_->secret));
  if (!kept) {
    server_.audit().event("client_revoked", {{"client", client_->name}, {"address", peer_}});
    set_client(nullptr);
    closing_ = true;
    return true;
  }
  set_client(std::move(now));
  return false;
}

asio::awaitable<protocol::Reply> Session::authenticate(std::string_view name, std::string_view secret) {
  using protocol::Reply;
  auto clients = server_.clients();
  if (!clients->required()) co_return Reply::ok();
  if (auto client = clients->authenticate(name, secret)) {
    set_client(std::move(client));
    co_return Reply::ok();
  }
  ++auth_failures_;
  server_.audit().event("auth_failed", {{"client", std::string(name)}, {"address", peer_},
                                        {"failures", std::to_string(auth_failures_)}});
  uint64_t suppressed = 0;
  if (server_.auth_failure_log().allow(suppressed))
    spdlog::warn("failed AUTH from {} ({} on this connection){}", peer_, auth_failures_,
                 accounts::LogLimiter::not_logged(suppressed, "failures"));
  // Each failure costs the guesser more time: 0.1 s, 0.2 s, 0.4 s, ... and then the connection.
  asio::steady_timer delay(co_await asio::this_coro::executor, kFirstAuthDelay * (1 << (auth_failures_ - 1)));
  co_await delay.async_wait(use_tuple);
  if (auth_failures_ >= kMaxAuthFailures) {
    close_after_reply();
    co_return Reply::error(protocol::Error::auth_failed, "wrong credential; closing after " +
                                                             std::to_string(kMaxAuthFailures) + " failures");
  }
  co_return Reply::error(protocol::Error::auth_failed, "wrong credential");
}

void Session::set_client(std::shared_ptr<const Client> client) {
  if (client_) server_.count_client(client_->name, -1);
  client_ = std::move(client);
  if (!client_) return;
  server_.count_client(client_->name, +1);
  if (!auth_deadline_) return;
  auth_deadline_.reset();
  server_.count_unauthenticated(-1);
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

std::string Session::deadline_reason() const {
  return auth_deadline_ && *auth_deadline_ <= Clock::now()      ? "did not authenticate in time"
         : phase_ == Phase::reading && framer_.in_line()        ? "request line not finished in time"
                                                                : "idle";
}

// ---- Plain TCP and Unix sockets ---------------------------------------------------------------

template <>
struct StreamTraits<asio::ip::tcp::socket> {
  static asio::ip::tcp::socket& lowest(asio::ip::tcp::socket& s) { return s; }
  static asio::awaitable<bool> start(Connection<asio::ip::tcp::socket>&) { co_return true; }
  static asio::awaitable<void> finish(Connection<asio::ip::tcp::socket>&) { co_return; }
};

template <>
struct StreamTraits<asio::local::stream_protocol::socket> {
  using Socket = asio::local::stream_protocol::socket;
  static Socket& lowest(Socket& s) { return s; }
  static asio::awaitable<bool> start(Connection<Socket>&) { co_return true; }
  static asio::awaitable<void> finish(Connection<Socket>&) { co_return; }
};

std::shared_ptr<Session> make_tcp_session(asio::ip::tcp::socket socket, Server& server, std::string peer) {
  auto executor = socket.get_executor();
  return std::make_shared<Connection<asio::ip::tcp::socket>>(executor, server, std::move(peer), Transport::tcp, nullptr,
                                                             std::move(socket));
}

std::shared_ptr<Session> make_unix_session(asio::local::stream_protocol::socket socket, Server& server, std::string peer) {
  auto executor = socket.get_executor();
  return std::make_shared<Connection<asio::local::stream_protocol::socket>>(executor, server, std::move(peer),
                                                                           Transport::unix_socket, nullptr,
                                                                           std::move(socket));
}

}  // namespace accountsd
