#include "daemon/daemon.hpp"

#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <csignal>
#include <sys/resource.h>
#include <thread>

#include "accounts/commands.hpp"
#include "accounts/service.hpp"
#include "daemon/server.hpp"
#include "daemon/logging.hpp"
#include "daemon/metrics.hpp"
#include "daemon/node.hpp"
#include "daemon/role.hpp"
#include "daemon/session.hpp"
#include "daemon/systemd.hpp"
#include "db/lease.hpp"
#include "db/warm_load.hpp"
#include "db/writer.hpp"
#include <unistd.h>

namespace accountsd {
namespace {

using protocol::Reply;
using namespace std::chrono_literals;

// What STATS reports beyond the server's own counters.
struct Sources {
  const accounts::AccountService& service;
  const db::Writer* writer;  // null in memory-only mode
  const db::Lease* lease;    // null in memory-only mode
  const db::LoadProgress& load;
  const NodeRole& role;
  std::chrono::steady_clock::time_point started;
};

void add_session_commands(CommandTable& table, Server& server, const Sources& sources) {
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
  table.add({"AUTH", 1, 2, kPublic, "AUTH [<client>] <secret>"}, [](Session& session, Args args) {
    // AUTH <secret> is the client "default" (auth.secret); named clients say who they are.
    return args.size() == 1 ? session.authenticate("default", args[0]) : session.authenticate(args[0], args[1]);
  });
  table.add({"STATS", 0, 0, kServedWhileLoading, "STATS", "monitor"}, [&server, sources](Session&, Args) -> asio::awaitable<Reply> {
    auto counts = sources.service.counts();
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - sources.started);
    // An idle writer finds out only at its next write that PostgreSQL is gone; the lease's
    // heartbeat asks every lease_timeout_ms/4. Either one failing means the database is down.
    bool lease_lost = sources.lease != nullptr && !server.fenced_reason().empty();
    auto role = sources.role.view();
    // A replica holds no lease and writes nothing: its database is up while its follower is connected.
    bool database_up = role.replica ? role.following : sources.writer != nullptr && sources.writer->connected() && !lease_lost;
    auto reply = Reply::ok();
    reply.field("accounts", counts.total())
        .field("unconfirmed", counts.unconfirmed)
        .field("active", counts.active)
        .field("deactivated", counts.deactivated)
        .field("connections", server.connections())
        .field("clients", server.connections_by_client())
        .field("loading", server.loading() ? 1 : 0)
        .field("loaded", sources.load.rows.load())
        .field("loaded_sessions", sources.load.sessions.load())
        .field("sessions", sources.service.session_count())
        .field("address_throttles", sources.service.address_throttles())
        .field("requests", server.requests())
        .field("hash_workers", sources.service.password_pool().workers())
        .field("hash_queue", sources.service.password_pool().queued())
        .field("database", sources.writer == nullptr ? "off" : database_up ? "up" : "down")
        .field("write_queue", sources.writer == nullptr ? 0 : sources.writer->queued())
        .field("commits", sources.writer == nullptr ? 0 : sources.writer->commits())
        .field("lease", sources.lease == nullptr ? "off" : role.replica ? "none" : lease_lost ? "lost" : "held")
        .field("epoch", sources.lease == nullptr ? 0 : sources.lease->epoch());
    reply.field("role", role.replica ? "replica" : "primary")
        .field("position", role.position)
        .field("lag_ms", role.lag_ms)
        .field("uptime_s", uptime.count());
    co_return reply;
  });
}

protocol::Reply too_far_behind(int64_t lag_ms) {
  std::string message = "this replica is ";  // in steps: g++ 12 warns falsely on one expression
  message += std::to_string(lag_ms);
  message += " ms behind the primary and may not have seen a logout; check the session on the primary or another replica";
  return protocol::Reply::error(protocol::Error::unavailable, message);
}

// SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded), close, stop the loop.
asio::awaitable<void> shut_down(Server& server, asio::io_context& io, db::Writer* writer) {
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
  if (writer != nullptr) {
    // Everything acknowledged is committed already; this commits what was still on its way.
    auto timeout = std::chrono::seconds(server.config().server.shutdown_timeout_s);
    if (!writer->drain(timeout)) spdlog::error("{} changes were still not committed at exit (none was acknowledged)", writer->queued());
  }
  spdlog::info("stopped");
  io.stop();
}

// Keeps systemd informed from the event loop itself: STATUS= every second, and WATCHDOG=1 at
// half the WatchdogSec interval, so that a wedged loop stops the pings and gets us restarted. The
// other loops are asked each tick to answer by the next one; a ping is sent only when all did.
asio::awaitable<void> report_to_systemd(Server& server, const accounts::AccountService& service, const NodeRole& role,
                                        std::vector<asio::io_context*> others) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto watchdog = systemd::watchdog_interval();
  auto tick = watchdog ? std::min<std::chrono::microseconds>(*watchdog, 1s) : std::chrono::microseconds(1s);
  auto next_status = std::chrono::steady_clock::now();
  auto answered = std::make_shared<std::vector<std::atomic<bool>>>(others.size());
  for (auto& a : *answered) a = true;
  while (true) {
    bool all_answered = true;
    for (size_t i = 0; i < others.size(); ++i) {
      if (!(*answered)[i].exchange(false)) all_answered = false;
      asio::post(*others[i], [answered, i] { (*answered)[i] = true; });
    }
    if (watchdog && all_answered) systemd::notify_watchdog();
    if (std::chrono::steady_clock::now() >= next_status) {
      systemd::notify_status(server.loading() ? server.loading_progress() : status_line(server, service, role));
      next_status += 1s;
    }
    timer.expires_after(tick);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// SIGHUP: re-read the configuration file; apply what is safe to change live (log.level, the
// clients and their secrets, the TLS certificate, key and CA) and name every other changed key as
// needing a restart. Secret files and certificate files are re-read even when the configuration
// text did not change: a rotation replaces the file, not the file name.
void reload(Server& server, std::string& active_text, const std::string& path) {
  if (path.empty()) {
    spdlog::warn("SIGHUP: no configuration file to reload (running on built-in defaults)");
    return;
  }
  Config fresh;
  try {
    fresh = load_config(path);
  } catch (const ConfigError& e) {
    spdlog::error("SIGHUP: configuration not reloaded, keeping the running one: {}", e.what());
    return;
  }
  try {
    server.set_clients(fresh.clients);
    server.audit().event("clients_reloaded", {{"clients", std::to_string(fresh.clients.size())}});
    spdlog::info("SIGHUP: {} clients in force; connections whose client is gone or whose secret changed are closed",
                 fresh.clients.size());
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: clients not reloaded, keeping the running ones: {}", e.what());
  }
  if (server.tls_endpoint()) {
    try {
      server.reload_tls(fresh.tls);
      spdlog::info("SIGHUP: TLS certificate {} reloaded for new connections", fresh.tls.cert_file);
    } catch (const std::exception& e) {
      spdlog::error("SIGHUP: TLS not reloaded, keeping the certificate in use: {}", e.what());
    }
  }
  auto changed = changed_keys(active_text, fresh.source_text);
  auto live = [](const std::string& key) {
    return key == "clients" || key.starts_with("auth.") || key == "tls.cert_file" || key == "tls.key_file" ||
           key == "tls.client_ca_file" || key == "tls.require_client_cert" || key == "tls.min_version";
  };
  for (const auto& key : changed) {
    if (key == "log.level") {
      set_log_level(fresh.log.level);
      spdlog::info("SIGHUP: log.level is now {}", fresh.log.level);
    } else if (live(key)) {
      // Applied above.
      if (key.starts_with("auth."))
        spdlog::info("SIGHUP: auth.secret changed; connections that used the old one are closed, new ones must use the new one");
      else if (key == "clients")
        spdlog::info("SIGHUP: the [[clients]] changed");
    } else {
      spdlog::warn("SIGHUP: {} changed but takes effect only after a restart; keeping the running value", key);
    }
  }
  active_text = fresh.source_text;
}

// Every connection is a file descriptor, and so is every database connection, the listener and a
// few more. Raise the soft limit toward the hard one as far as max_connections needs (as Redis
// does), and say so when even the hard limit is too low.
void raise_fd_limit(const Config& config) {
  const rlim_t needed = config.server.max_connections + config.database.connections + 32;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < needed) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max == RLIM_INFINITY ? needed : std::min<rlim_t>(needed, limit.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      spdlog::info("raised the open file limit from {} to {}", limit.rlim_cur, raised.rlim_cur);
      limit = raised;
    }
  }
  if (limit.rlim_cur < needed)
    spdlog::warn("the open file limit is {} (hard limit {}), below the {} that server.max_connections = {} needs: "
                 "connections beyond it are delayed in the backlog; raise LimitNOFILE= or lower max_connections",
                 limit.rlim_cur, limit.rlim_max, needed, config.server.max_connections);
}

}  // namespace

int run_daemon(const Config& config) {
  raise_fd_limit(config);
  accounts::init_secrets();
  accounts::IndexRuntime index_runtime;
  // One event loop per I/O thread, as memcached and Dragonfly run theirs: `io` on this thread
  // (the accept loops, signals, timers, actors and its share of the connections), and one more
  // loop per further thread, each holding only connections. A loop run by one thread needs no
  // wake-up of another thread to hand over the next ready socket. The other loops are made first
  // and so outlive `io`: an accept still pending in `io` when it goes holds an executor of theirs.
  // Each loop is run by exactly one thread: sessions rely on that instead of a strand each.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> loop_work;
  for (unsigned i = 1; i < config.server.threads; ++i) {
    loops.push_back(std::make_unique<asio::io_context>(1));
    loop_work.push_back(asio::make_work_guard(*loops.back()));
  }
  asio::io_context io(1);
  auto work = asio::make_work_guard(io);

  WriterMetrics write_metrics;
  std::unique_ptr<db::Writer> writer;
  std::unique_ptr<db::Lease> lease;
  accounts::MemoryOnly memory_only;
  accounts::Durability* durability = &memory_only;
  if (config.database.url.empty()) {
    spdlog::warn("database.url is empty: MEMORY-ONLY mode, every account is LOST when accountsd stops");
  } else {
    db::WriterSettings settings{.url = config.database.url,
                                .batch_max = config.database.batch_max,
                                .flush_interval = std::chrono::milliseconds(config.database.flush_interval_ms),
                                .connections = config.database.connections,
                                .observer = {},
                                .log_retention = std::chrono::seconds(config.replication.log_retention_s),
                                .notify = config.replication.enabled};
    if (!config.metrics.listen.empty())
      settings.observer = [&write_metrics](size_t changes, std::chrono::nanoseconds took, bool committed) {
        write_metrics.observe(changes, took, committed);
      };
    writer = std::make_unique<db::Writer>(std::move(settings));
    durability = writer.get();
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    lease = std::make_unique<db::Lease>(db::LeaseSettings{
        config.database.url, std::chrono::milliseconds(config.database.lease_timeout_ms),
        std::string(host) + " pid " + std::to_string(getpid()) + " listening on " + config.server.listen, ""});
  }
  accounts::AccountService service(config.accounts, io.get_executor(), *durability);
  db::LoadProgress progress;
  NodeRole role;

  CommandTable table;
  Server server(io, config, table);
  std::vector<asio::io_context*> connection_loops{&io};
  for (auto& loop : loops) connection_loops.push_back(loop.get());
  server.set_connection_loops(std::move(connection_loops));
  server.set_role(&role);
  add_session_commands(table, server,
                       Sources{service, writer.get(), lease.get(), progress, role, std::chrono::steady_clock::now()});
  add_role_commands(table, role);
  std::vector<std::pair<std::string, std::function<void(std::string_view)>>> table_read_ahead;
  for (auto& command : accounts::account_commands(service)) {
    if (command.read_ahead) table_read_ahead.emplace_back(command.spec.name, command.read_ahead);
    if (command.spec.name == "WHOAMI") {
      // A replica that may have missed a revocation does not vouch for a session (docs/PROTOCOL.md).
      table.add_immediate(command.spec, [read = command.immediate, &role, bound = config.replication.session_max_lag_ms](
                                            protocol::Args args) -> protocol::Reply {
        if (int64_t lag = role.lag_ms(); lag > bound) return too_far_behind(lag);
        return read(args);
      });
    } else if (command.immediate) {
      table.add_immediate(command.spec, command.immediate);
    } else {
      table.add(command.spec, [handler = command.handler](Session&, protocol::Args args) { return handler(args); });
    }
  }
  for (auto& [name, read_ahead] : table_read_ahead) table.set_read_ahead(name, std::move(read_ahead));
  server.set_clients(config.clients);  // after the last command: rights are kept per command

  // Metrics: counted per thread on the request path, served by prometheus-cpp's own HTTP threads.
  std::atomic<double> load_seconds{0};
  std::unique_ptr<RequestMetrics> request_metrics;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  if (!config.metrics.listen.empty()) {
    request_metrics = std::make_unique<RequestMetrics>(table.names_by_slot());
    server.set_metrics(request_metrics.get());
    metrics_endpoint = std::make_unique<MetricsEndpoint>(
        config.metrics.host, config.metrics.port,
        MetricSources{server, service, writer.get(), lease.get(), progress, *request_metrics, write_metrics,
                      std::chrono::system_clock::now(), load_seconds, role});
    spdlog::info("metrics on http://{}:{}/metrics", config.metrics.host, metrics_endpoint->port());
  }

  // The sockets open at once; until the accounts are loaded, account commands answer LOADING.
  if (writer) server.set_loading(&progress);
  std::vector<Server::Inherited> inherited;
  for (auto& [fd, name] : systemd::inherited_listeners()) inherited.push_back({fd, name});
  server.open(inherited);
  std::string from_systemd = inherited.empty() ? "" : " (sockets from systemd)";
  if (auto endpoint = server.tcp_endpoint())
    spdlog::info("accountsd listening on {}:{}{} ({} threads, {} password workers)", endpoint->address().to_string(),
                 endpoint->port(), from_systemd, config.server.threads, service.password_pool().workers());
  if (auto endpoint = server.tls_endpoint())
    spdlog::info("accountsd TLS listening on {}:{}{} (TLS {} or later{})", endpoint->address().to_string(),
                 endpoint->port(), from_systemd, config.tls.min_version,
                 config.tls.client_ca_file.empty() ? "" : config.tls.require_client_cert ? ", client certificate required"
                                                                                         : ", client certificates verified");
  if (!config.server.unix_socket.empty())
    spdlog::info("accountsd listening on the Unix socket {} (mode {:o})", config.server.unix_socket,
                 config.server.unix_socket_mode);
  // Where clients send changes while this node is the primary: replication.advertise, or the
  // address the plain listener got (its real port, when server.listen asked for port 0).
  std::string advertise = config.replication.advertise;
  if (advertise.empty()) {
    if (auto endpoint = server.tcp_endpoint())
      advertise = config.server.host + ":" + std::to_string(endpoint->port());
    else if (auto tls = server.tls_endpoint())
      advertise = config.tls.host + ":" + std::to_string(tls->port());
  }
  if (lease) lease->set_advertise(advertise);
  // A cluster node is a replica until it holds the lease (run_node); a single node is the primary.
  if (config.replication.enabled) role.become_replica(nullptr, config.replication.promote);
  else role.become_primary(writer.get(), advertise);
  if (!writer) systemd::notify_ready(status_line(server, service, role));
  std::vector<asio::io_context*> others;
  for (auto& loop : loops) others.push_back(loop.get());
  asio::co_spawn(io, report_to_systemd(server, service, role, std::move(others)), [](std::exception_ptr e) { log_failure("systemd reporting", e); });
  for (auto& loop : server.accept_loops())
    asio::co_spawn(server.accept_executor(), std::move(loop), [](std::exception_ptr e) { log_failure("accept loop", e); });

  std::atomic<int> exit_status{0};
  std::atomic<bool> shutting_down{false};
  auto shutdown = [&](int status) {
    if (shutting_down.exchange(true)) return;
    systemd::notify_stopping();
    exit_status = status;
    asio::co_spawn(io, shut_down(server, io, writer.get()), [](std::exception_ptr e) { log_failure("shutdown", e); });
  };

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("received {}, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    shutdown(0);
  });

  std::string active_text = config.source_text;
  asio::signal_set hangups(io, SIGHUP);
  std::function<void(const asio::error_code&, int)> on_hangup = [&](const asio::error_code& ec, int) {
    if (ec) return;
    reload(server, active_text, config.source_path);
    hangups.async_wait(on_hangup);
  };
  hangups.async_wait(on_hangup);

  std::thread startup;
  if (writer) {
    startup = std::thread([&] {
      try {
        run_node(NodeParts{config, io, server, service, *lease, *writer, progress, role, shutting_down,
                           [&](int status) { asio::post(io, [&shutdown, status] { shutdown(status); }); },
                           load_seconds, advertise});
      } catch (const std::exception& e) {
        if (!shutting_down) spdlog::critical("cannot start: {}", e.what());
        asio::post(io, [&] { shutdown(1); });
      }
    });
  }

  service.set_touch_forwarder([&role](accounts::AccountService::Touches touches) { role.forward_touches(std::move(touches)); });
  // The session expiry sweep: once a second, one bounded step (AccountService::sweep_sessions), on
  // a thread of its own (registered with RCU for the walk), off the event loops.
  std::thread sweeper([&] {
    accounts::IndexThread attached;
    accounts::SessionIndex::Cursor cursor(service.session_index());
    while (!shutting_down) {
      for (int i = 0; i < 20 && !shutting_down; ++i) std::this_thread::sleep_for(50ms);
      // On a replica the sweep ends nothing and writes nothing: it forwards session uses to the
      // primary, whose sweep ends sessions (and the ending replicates).
      if (!shutting_down && !server.loading() && server.fenced_reason().empty())
        service.sweep_sessions(cursor, config.session_sweep_per_tick);
    }
  });

  std::vector<std::thread> threads;
  for (auto& loop : loops)
    threads.emplace_back([&loop] {
      accounts::IndexThread attached;
      loop->run();
    });
  io.run();
  // shut_down closed every connection before it stopped `io`: the other loops hold nothing more.
  loop_work.clear();
  for (auto& loop : loops) loop->stop();
  for (auto& t : threads) t.join();
  if (startup.joinable()) startup.join();
  sweeper.join();
  // The lease heartbeat and the writer threads call back into `server`: stop them before it goes.
  // The metrics endpoint reads all of them: it goes first.
  metrics_endpoint.reset();
  lease.reset();
  writer.reset();
  return exit_status;
}

}  // namespace accountsd
