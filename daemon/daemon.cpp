#include "daemon/daemon.hpp"

#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <csignal>
#include <thread>

#include "accounts/commands.hpp"
#include "accounts/service.hpp"
#include "daemon/server.hpp"
#include "daemon/session.hpp"

namespace accountsd {
namespace {

using protocol::Reply;
using namespace std::chrono_literals;

void add_session_commands(CommandTable& table, Server& server, const accounts::AccountService& service,
                          std::chrono::steady_clock::time_point started) {
  using namespace protocol;
  table.add({"PING", 0, 0, kPublic, "PING"}, [](Session&, Args) -> asio::awaitable<Reply> {
    co_return Reply::ok("pong");
  });
  table.add({"HELP", 0, 0, kPublic | kServedWhileLoading, "HELP"}, [&table](Session&, Args) -> asio::awaitable<Reply> {
    std::string names;
    for (const auto& name : table.names()) names += (names.empty() ? "" : " ") + name;
    co_return Reply::ok().field("commands", names);
  });
  table.add({"QUIT", 0, 0, kPublic | kServedWhileLoading, "QUIT"}, [](Session& session, Args) -> asio::awaitable<Reply> {
    session.close_after_reply();
    co_return Reply::ok("bye");
  });
  table.add({"AUTH", 1, 1, kPublic, "AUTH <secret>"}, [](Session& session, Args args) -> asio::awaitable<Reply> {
    if (!session.server().secret_matches(args[0])) co_return Reply::error(Error::auth_failed, "wrong secret");
    session.set_authenticated();
    co_return Reply::ok();
  });
  table.add({"STATS", 0, 0, kServedWhileLoading, "STATS"},
            [&server, &service, started](Session&, Args) -> asio::awaitable<Reply> {
              auto counts = service.counts();
              auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
              co_return Reply::ok()
                  .field("accounts", counts.total())
                  .field("unconfirmed", counts.unconfirmed)
                  .field("active", counts.active)
                  .field("deactivated", counts.deactivated)
                  .field("connections", server.connections())
                  .field("loading", 0)
                  .field("requests", server.requests())
                  .field("hash_workers", service.password_pool().workers())
                  .field("hash_queue", service.password_pool().queued())
                  .field("uptime_s", uptime.count());
            });
}

// SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded), close, stop the loop.
asio::awaitable<void> shut_down(Server& server, asio::io_context& io) {
  server.stop();
  asio::steady_timer timer(io);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(server.config().server.shutdown_timeout_s);
  while (server.connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    timer.expires_after(10ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
  if (server.connections() > 0) {
    spdlog::warn("closing {} connections that did not finish within {} s", server.connections(),
                 server.config().server.shutdown_timeout_s);
    server.close_all();
    for (int i = 0; i < 100 && server.connections() > 0; ++i) {
      timer.expires_after(10ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
  }
  spdlog::info("stopped");
  io.stop();
}

}  // namespace

int run_daemon(const Config& config) {
  accounts::init_secrets();
  accounts::IndexRuntime index_runtime(config.server.threads + 8);
  asio::io_context io(static_cast<int>(config.server.threads));
  auto work = asio::make_work_guard(io);

  if (config.database.url.empty())
    spdlog::warn("database.url is empty: MEMORY-ONLY mode, every account is LOST when accountsd stops");
  accounts::MemoryOnly memory_only;
  accounts::AccountService service(config.accounts, io.get_executor(), memory_only);

  CommandTable table;
  Server server(io, config, table);
  add_session_commands(table, server, service, std::chrono::steady_clock::now());
  for (auto& command : accounts::account_commands(service))
    table.add(command.spec, [handler = command.handler](Session&, protocol::Args args) { return handler(args); });

  server.open();
  auto endpoint = server.local_endpoint();
  spdlog::info("accountsd listening on {}:{} ({} threads, {} password workers)", endpoint.address().to_string(),
               endpoint.port(), config.server.threads, service.password_pool().workers());
  asio::co_spawn(io, server.accept_loop(), [](std::exception_ptr e) { log_failure("accept loop", e); });

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("received {}, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    asio::co_spawn(io, shut_down(server, io), [](std::exception_ptr e) { log_failure("shutdown", e); });
  });

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < config.server.threads; ++i)
    threads.emplace_back([&io] {
      accounts::IndexThread attached;
      io.run();
    });
  io.run();
  for (auto& t : threads) t.join();
  return 0;
}

}  // namespace accountsd
