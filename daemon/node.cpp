#include "daemon/node.hpp"

#include <spdlog/spdlog.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <charconv>
#include <pqxx/connection>
#include <thread>

#include "daemon/session.hpp"
#include "daemon/systemd.hpp"
#include "db/follower.hpp"
#include "db/schema.hpp"

namespace accountsd {
namespace {

using namespace std::chrono_literals;

std::string readonly_message(const std::string& primary) {
  return "this node is a replica and takes no changes; send them to the primary primary=" +
         (primary.empty() ? std::string("unknown") : primary);
}

// Sleeps up to `duration`, waking early when the daemon stops; false when it does.
bool pause(const std::atomic<bool>& stopping, std::chrono::milliseconds duration) {
  for (auto waited = 0ms; waited < duration; waited += 50ms) {
    if (stopping) return false;
    std::this_thread::sleep_for(50ms);
  }
  return !stopping;
}

db::Lease::Events lease_events(const NodeParts& p) {
  bool cluster = p.config.replication.enabled;
  return db::Lease::Events{
      [&server = p.server](const std::string& why) {
        spdlog::error("lost the database lease: {}; answering FENCED until it is confirmed again", why);
        server.set_fenced("this daemon lost its database lease and does not answer for the accounts until it "
                          "is back; nothing was done; retry shortly, or on the daemon that holds it now");
      },
      [&server = p.server, &lease = p.lease] {
        spdlog::warn("the database lease is confirmed again (epoch {}); serving", lease.epoch());
        server.set_fenced("");
      },
      [&server = p.server, shutdown = p.shutdown, cluster](const std::string& why) {
        if (cluster)
          spdlog::critical("stopping: {}; this node never writes again as this process: restarted, it joins as a "
                           "replica", why);
        else
          spdlog::critical("stopping: {}; this daemon's accounts in memory may be stale", why);
        server.set_fenced("this daemon lost its database lease to another daemon and is stopping");
        shutdown(1);
      },
      [&service = p.service](const accounts::AccountService::Touches& touches) {
        accounts::IndexThread attached;  // the lease's thread: attached only while it looks
        service.take_touches(touches);
      }};
}

// The warm-load into the service; the position of its snapshot goes to p.progress.position.
void load(NodeParts& p) {
  static_assert(db::LoadSinks::kAdoptBatch <= accounts::AccountService::kAdoptBatch,
                "the warm-load hands the service more rows at once than it takes");
  auto started = std::chrono::steady_clock::now();
  db::LoadSinks sinks;
  sinks.adopt = [&service = p.service](std::span<accounts::AccountRecord> records) { service.adopt(records); };
  sinks.adopt_sessions = [&service = p.service](std::span<accounts::SessionRow> rows) { service.adopt_sessions(rows); };
  sinks.expect_accounts = [&service = p.service](uint64_t accounts) { service.expect_accounts(accounts); };
  sinks.accounts_adopted = [&service = p.service] { service.accounts_adopted(); };
  sinks.expect_sessions = [&service = p.service](uint64_t sessions) { service.expect_sessions(sessions); };
  sinks.sessions_adopted = [&service = p.service] { service.sessions_adopted(); };
  sinks.legacy_session_digests = [&service = p.service] { service.legacy_session_digests(); };
  sinks.parser_scope = [] { return std::make_shared<accounts::IndexThread>(); };
  // The reader mostly waits for PostgreSQL; the parsers fill the index (lock-free, so they scale).
  sinks.parsers = std::max(1u, std::thread::hardware_concurrency());
  db::warm_load(p.config.database.url, p.progress, sinks);
  p.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

// With the lease held and memory at `position`: take changes from now on.
void serve_as_primary(NodeParts& p, uint64_t position) {
  p.server.set_lease(&p.lease);  // fenced from here on whenever the lease is not confirmed
  p.writer.start(p.lease.epoch(), position, [&server = p.server, shutdown = p.shutdown](const std::string& why) {
    spdlog::critical("stopping: {}", why);
    server.set_fenced("this daemon lost its database lease to another daemon and is stopping");
    shutdown(1);
  });
  p.service.set_read_only(false);
  p.role.become_primary(&p.writer, p.advertise);
  p.server.set_readonly("");
  p.server.set_loading(nullptr);
}

enum class Start { primary, replica, stopped };

// Takes the lease if this node may and it is free, or waits until the database has the schema
// a replica can load. Retries while PostgreSQL cannot be reached.
Start decide(NodeParts& p) {
  const bool cluster = p.config.replication.enabled;
  const bool may_write = !cluster || p.config.replication.promote;
  std::string last_wait;
  for (auto backoff = 100ms;; backoff = std::min(backoff * 2, std::chrono::milliseconds(5000))) {
    try {
      if (!cluster) {
        p.lease.acquire();  // throws DatabaseTaken when another daemon holds it
        return Start::primary;
      }
      if (may_write && p.lease.try_acquire()) return Start::primary;
      pqxx::connection connection(p.config.database.url);
      int version = db::current_schema_version(connection);
      if (version == db::latest_schema_version()) return Start::replica;
      if (version > db::latest_schema_version())
        throw db::SchemaTooNew("the database schema (version " + std::to_string(version) +
                                 ") is newer than this accountsd knows (" +
                                 std::to_string(db::latest_schema_version()) + "): upgrade accountsd");
      std::string wait = version == 0 ? "the database has no accountsd schema yet" :
                                        "the database schema is version " + std::to_string(version) + ", older than this "
                                        "build's " + std::to_string(db::latest_schema_version());
      if (wait != last_wait)
        spdlog::warn("replica: {}; a replica never creates or migrates it: waiting for a primary to do so", wait);
      last_wait = wait;
      backoff = 1000ms;
    } catch (const db::DatabaseTaken&) {
      throw;
    } catch (const db::SchemaTooNew&) {
      throw;
    } catch (const std::exception& e) {
      spdlog::warn("database not reachable yet ({}); retrying", e.what());
    }
    if (!pause(p.stopping, backoff)) return Start::stopped;
  }
}

}  // namespace

void run_node(NodeParts p) {
  accounts::IndexThread attached;
  Start start = decide(p);
  if (start == Start::stopped) throw std::runtime_error("stopped before the database was reachable");
  if (start == Start::primary) {
    // The heartbeat runs from here on: a lease lost during the warm-load is noticed too.
    p.lease.start(lease_events(p));
    load(p);
    serve_as_primary(p, p.progress.position.load());
    spdlog::info("ready: {} accounts loaded, serving{}", p.progress.rows.load(),
                 p.config.replication.enabled ? " as the primary" : "");
    systemd::notify_ready(status_line(p.server, p.service, p.role));
    return;
  }

  // A replica: load, then follow, serving reads.
  load(p);
  p.service.set_read_only(true);
  db::FollowerSettings settings;
  settings.url = p.config.database.url;
  settings.apply = [&service = p.service](accounts::FollowUnit&& unit) { service.apply(std::move(unit)); };
  settings.thread_scope = [] { return std::make_shared<accounts::IndexThread>(); };
  settings.fatal = [shutdown = p.shutdown](const std::string& why) {
    spdlog::critical("stopping: {}", why);
    shutdown(1);
  };
  settings.primary_changed = [&server = p.server, &role = p.role](const std::string& address) {
    spdlog::info("replica: the primary advertises {}", address.empty() ? "no address" : address);
    role.set_primary_address(address);
    server.set_readonly(readonly_message(address));
  };
  db::Follower follower(settings, p.progress.position.load());
  p.server.set_readonly(readonly_message(""));
  p.role.become_replica(&follower, p.config.replication.promote);
  follower.start();
  // Serve once the follower has looked once (it then knows the primary's address for READONLY),
  // or after 10 s without: reads are worth serving even while the database is away.
  for (int i = 0; i < 200 && !follower.looked() && pause(p.stopping, 50ms); ++i) {
  }
  p.server.set_loading(nullptr);
  spdlog::info("ready: {} accounts loaded at position {}, serving reads as a replica{}", p.progress.rows.load(),
               p.progress.position.load(), p.config.replication.promote ? " (standby: takes over when the primary goes)" : "");
  systemd::notify_ready(status_line(p.server, p.service, p.role));

  struct Forget {  // the role must not point at the follower once it is gone
    NodeRole& role;
    ~Forget() {
      if (role.replica()) role.become_replica(nullptr, false);
    }
  } forget{p.role};
  if (!p.config.replication.promote) {
    while (pause(p.stopping, 1000ms)) {
    }
    return;
  }
  if (!p.lease.wait_acquire(p.stopping)) return;

  // Promotion. The lease is ours, so nothing more commits elsewhere: apply what did, then write.
  auto started = std::chrono::steady_clock::now();
  spdlog::warn("standby: the primary's lease came free; taking over as the primary (epoch {})", p.lease.epoch());
  p.server.set_readonly("this node is taking over as the primary; retry in a moment primary=" + p.advertise);
  p.lease.start(lease_events(p));
  follower.finish();
  uint64_t position = follower.applied();
  serve_as_primary(p, position);
  spdlog::warn("standby: promoted to primary at position {} in {} ms; taking changes", position,
               std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
}

std::string status_line(const Server& server, const accounts::AccountService& service, const NodeRole& role) {
  if (!server.fenced_reason().empty()) return "FENCED: no database lease; not answering for accounts";
  return "serving " + std::to_string(service.counts().total()) + " accounts, " + std::to_string(server.connections()) +
         " connections; " + role_summary(role);
}

std::string role_summary(const NodeRole& role) {
  auto v = role.view();
  return v.replica ? "replica of " + (v.primary.empty() ? std::string("an unknown primary") : v.primary) + ", position " +
                         std::to_string(v.position) + ", lag " + std::to_string(v.lag_ms) + " ms"
                   : "primary";
}

void add_role_commands(CommandTable& table, const NodeRole& role) {
  using protocol::Reply;
  table.add({"ROLE", 0, 0, protocol::kServedWhileLoading, "ROLE", "monitor"},
            [&role](Session&, protocol::Args) -> asio::awaitable<Reply> {
              auto v = role.view();
              auto reply = Reply::ok();
              reply.field("role", v.replica ? "replica" : "primary")
                  .field("primary", v.primary.empty() ? std::string("unknown") : v.primary)
                  .field("position", v.position)
                  .field("lag_ms", v.lag_ms)
                  .field("since", accounts::format_time(v.since_ms));
              if (v.replica) reply.field("promote", v.promote ? "yes" : "no").field("reloads", v.reloads);
              co_return reply;
            });
  table.add({"WAIT", 1, 2, protocol::kNoFlags, "WAIT <position> [<timeout_ms>]", "read"},
            [&role](Session&, protocol::Args args) -> asio::awaitable<Reply> {
              auto number = [](const std::string& text, uint64_t& out) {
                auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
                return ec == std::errc() && end == text.data() + text.size();
              };
              uint64_t want = 0, timeout_ms = 1000;
              if (!number(args[0], want)) co_return Reply::error(protocol::Error::bad_request, "position must be a number");
              if (args.size() > 1 && (!number(args[1], timeout_ms) || timeout_ms > 60000))
                co_return Reply::error(protocol::Error::bad_request, "timeout_ms must be a number from 0 to 60000");
              asio::steady_timer timer(co_await asio::this_coro::executor);
              auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
              while (true) {
                uint64_t applied = role.position();
                if (applied >= want) co_return Reply::ok().field("position", applied);
                if (std::chrono::steady_clock::now() >= deadline)
                  co_return Reply::error(protocol::Error::timeout, "position " + std::to_string(want) +
                                                                       " not applied within " + std::to_string(timeout_ms) +
                                                                       " ms; this node is at " + std::to_string(applied));
                timer.expires_after(1ms);
                co_await timer.async_wait(asio::use_awaitable);
              }
            });
}

}  // namespace accountsd
