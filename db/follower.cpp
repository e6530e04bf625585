#include "db/follower.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <stdexcept>

#include "accounts/clock.hpp"
#include "db/copy.hpp"
#include "db/rows.hpp"

namespace db {
namespace {

using namespace std::chrono_literals;

Result query(PGconn* c, const std::string& sql) { return exec(c, sql.c_str(), PGRES_TUPLES_OK, "replication query failed"); }

uint64_t number(const Result& r, int row = 0, int column = 0) {
  if (PQntuples(r.get()) <= row || PQgetisnull(r.get(), row, column)) return 0;
  return std::stoull(PQgetvalue(r.get(), row, column));
}

// The change log cannot bring memory from where it is to the database's position.
struct CannotContinue : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A row broke an invariant, or memory refused the unit: this snapshot cannot be applied as read.
struct ApplyFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Start over on a fresh connection (which then reloads): the old one may be in the middle of a COPY.
struct Reconnect {};

// Even a full reload cannot be applied: this node cannot follow, and stops.
struct Fatal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A COPY row callback that parses with `parse` into `out`; a bad row is an ApplyFailed.
template <class Row, class Parse>
auto rows_into(std::vector<Row>& out, Parse parse) {
  return [&out, parse](std::string_view line) {
    try {
      out.push_back(parse(line));
    } catch (const std::exception& e) {
      throw ApplyFailed(e.what());
    }
  };
}

}  // namespace

struct Follower::Link {
  explicit Link(const std::string& url) : connection(connect(url, "replication cannot connect")) {
    exec(c(), "SET application_name = 'accountsd follower'", PGRES_COMMAND_OK, "replication setup failed");
    exec(c(), "LISTEN accountsd_changes", PGRES_COMMAND_OK, "replication setup failed");
  }
  PGconn* c() { return connection.get(); }
  Connection connection;
};

Follower::Follower(FollowerSettings settings, uint64_t position)
    : settings_(std::move(settings)), applied_(position), head_(position), caught_up_ms_(accounts::steady_ms()) {}

Follower::~Follower() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Follower::lag_ms() const {
  if (connected() && !behind_.load(std::memory_order_relaxed)) return 0;
  return accounts::steady_ms() - caught_up_ms_.load(std::memory_order_relaxed);
}

void Follower::start() {
  thread_ = std::thread([this] { run(); });
}

void Follower::finish() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (thread_.joinable()) thread_.join();
  while (true) {
    try {
      Link link(settings_.url);
      while (step(link)) {
      }
      return;
    } catch (const Reconnect&) {
      // a reload is due: on a fresh connection
    }
  }
}

uint64_t Follower::read_head(Link& link) {
  auto r = query(link.c(), "SELECT position, advertise FROM writer_lease WHERE id = 1");
  if (PQntuples(r.get()) != 1) throw std::runtime_error("the writer_lease row is missing: is this an accountsd database?");
  std::string advertise = PQgetvalue(r.get(), 0, 1);
  if (advertise != primary_) {
    primary_ = advertise;
    if (settings_.primary_changed) settings_.primary_changed(advertise);
  }
  looked_.store(true, std::memory_order_release);
  return number(r);
}

bool Follower::step(Link& link) {
  if (must_reload_) {
    reload(link);
    behind_ = false;
    caught_up_ms_ = accounts::steady_ms();
    applied_.store(head_.load(), std::memory_order_release);
    return true;
  }
  uint64_t from = applied();
  exec(link.c(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "replication query failed");
  struct Rollback {
    PGconn* c;
    ~Rollback() { PQclear(PQexec(c, "ROLLBACK")); }
  } rollback{link.c()};
  uint64_t head = read_head(link);
  head_ = head;
  if (head == from) {
    behind_ = false;
    caught_up_ms_ = accounts::steady_ms();
    return false;
  }
  behind_ = true;
  try {
    if (head < from)
      throw CannotContinue("the database's change log ends at position " + std::to_string(head) + ", behind the " +
                           std::to_string(from) + " this node applied (was the database restored from a backup?)");
    std::string past = std::to_string(from);
    auto span = query(link.c(), "SELECT count(*), coalesce(min(position), 0), coalesce(max(committed_ms), 0)"
                                " FROM changes WHERE position > " + past);
    if (number(span, 0, 0) != head - from || number(span, 0, 1) != from + 1)
      throw CannotContinue("the change log no longer holds every change after position " + past +
                           " (this node was away longer than replication.log_retention_s)");
    accounts::FollowUnit unit;
    unit.position = head;
    unit.committed_ms = static_cast<int64_t>(number(span, 0, 2));
    std::string changed = "SELECT DISTINCT unnest(accounts) FROM changes WHERE position > " + past;
    auto ids = query(link.c(), changed);
    for (int i = 0; i < PQntuples(ids.get()); ++i)
      if (auto id = accounts::Uuid::parse(PQgetvalue(ids.get(), i, 0))) unit.changed.push_back(*id);
    copy_out(link.c(), std::string("COPY (SELECT ") + kColumns + " FROM accounts WHERE id IN (" + changed + ")) TO STDOUT",
             rows_into(unit.records, parse_copy_line));
    copy_out(link.c(),
             std::string("COPY (SELECT ") + kSessionColumns + " FROM sessions WHERE account_id IN (" + changed + ")) TO STDOUT",
             rows_into(unit.sessions, parse_session_line));
    copy_out(link.c(),
             std::string("COPY (SELECT ") + kSessionColumns +
                 " FROM sessions WHERE id IN (SELECT unnest(sessions) FROM changes WHERE position > " + past +
                 ") AND account_id NOT IN (" + changed + ")) TO STDOUT",
             rows_into(unit.touched, parse_session_line));
    try {
      settings_.apply(std::move(unit));
    } catch (const std::exception& e) {
      throw ApplyFailed(e.what());
    }
  } catch (const CannotContinue& e) {
    spdlog::warn("replication: {}; reloading every account", e.what());
    must_reload_ = true;
    throw Reconnect{};
  } catch (const ApplyFailed& e) {
    spdlog::error("replication: cannot apply the changes up to position {}: {}; reloading every account", head, e.what());
    must_reload_ = true;
    throw Reconnect{};
  }
  // Everything this look saw is applied: caught up, as of this snapshot (before applied_, so that
  // whoever sees the new position also sees the lag it leaves).
  behind_ = false;
  caught_up_ms_ = accounts::steady_ms();
  applied_.store(head, std::memory_order_release);
  return true;
}

void Follower::reload(Link& link) {
  reloads_.fetch_add(1, std::memory_order_relaxed);
  exec(link.c(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "replication query failed");
  struct Rollback {
    PGconn* c;
    ~Rollback() { PQclear(PQexec(c, "ROLLBACK")); }
  } rollback{link.c()};
  accounts::FollowUnit unit;
  unit.full = true;
  unit.position = read_head(link);
  try {
    copy_out_binary(link.c(), std::string("COPY accounts (") + kColumns + ") TO STDOUT (FORMAT binary)",
                    rows_into(unit.records, parse_copy_tuple));
    copy_out(link.c(), std::string("COPY sessions (") + kSessionColumns + ") TO STDOUT",
             rows_into(unit.sessions, parse_session_line));
  } catch (const ApplyFailed& e) {
    std::string why = std::string("replication: the database holds a row this node cannot load: ") + e.what();
    if (settings_.fatal) settings_.fatal(why);
    throw Fatal(why);
  }
  uint64_t position = unit.position;
  size_t count = unit.records.size();
  try {
    settings_.apply(std::move(unit));
  } catch (const std::exception& e) {
    std::string why = std::string("replication: even a full reload could not be applied: ") + e.what();
    if (settings_.fatal) settings_.fatal(why);
    throw Fatal(why);
  }
  must_reload_ = false;
  head_ = position;
  spdlog::info("replication: reloaded {} accounts at position {}", count, position);
}

void Follower::forward_touches(Touches touches) {
  std::lock_guard lock(touches_mutex_);
  if (touches_.size() > 100000) return;  // the connection is down: do not grow without bound
  touches_.insert(touches_.end(), touches.begin(), touches.end());
}

void Follower::send_touches(Link& link) {
  Touches touches;
  {
    std::lock_guard lock(touches_mutex_);
    touches.swap(touches_);
  }
  // "digest:ms,digest:ms,...", each payload under NOTIFY's 8000-byte bound.
  std::string payload;
  auto flush = [&] {
    if (payload.empty()) return;
    const char* values[] = {payload.c_str()};
    Result r(PQexecParams(link.c(), "SELECT pg_notify('accountsd_touches', $1)", 1, nullptr, values, nullptr, nullptr, 0),
             &PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK)
      throw std::runtime_error(std::string("replication: sending session uses failed: ") + PQerrorMessage(link.c()));
    payload.clear();
  };
  for (const auto& [key, used] : touches) {
    if (payload.size() > 7000) flush();
    if (!payload.empty()) payload += ',';
    payload += hex(key);
    payload += ':';
    payload += std::to_string(used);
  }
  flush();
}

void Follower::run() {
  auto scope = settings_.thread_scope();
  std::unique_ptr<Link> link;
  auto backoff = 100ms;
  std::string last_problem;
  auto stopping = [this] {
    std::lock_guard lock(mutex_);
    return stopping_;
  };
  while (!stopping()) {
    try {
      if (!link) {
        link = std::make_unique<Link>(settings_.url);
        if (!connected_.exchange(true) && !last_problem.empty())
          spdlog::info("replication: the database connection is back; catching up from position {}", applied());
        last_problem.clear();
      }
      while (step(*link) && !stopping()) {
      }
      send_touches(*link);
      backoff = 100ms;
      // Wait for the primary's NOTIFY, and look once a second regardless (a notification sent
      // while this connection was being made is not delivered to it).
      for (int slice = 0; slice < 20 && !stopping(); ++slice) {
        pollfd ready{PQsocket(link->c()), POLLIN, 0};
        if (poll(&ready, 1, 50) > 0) {
          if (PQconsumeInput(link->c()) == 0)
            throw std::runtime_error(std::string("the connection failed: ") + PQerrorMessage(link->c()));
          bool woken = false;
          while (PGnotify* n = PQnotifies(link->c())) {
            PQfreemem(n);
            woken = true;
          }
          if (woken) break;
        }
      }
    } catch (const Reconnect&) {
      link.reset();  // and the next step reloads, on a fresh connection
    } catch (const Fatal&) {
      return;  // the daemon stops (settings_.fatal)
    } catch (const std::exception& e) {
      link.reset();
      std::string why = e.what();
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      if (connected_.exchange(false))
        spdlog::error("replication: lost the database ({}); reads are served from memory and fall behind until it is back",
                      why);
      else if (why != last_problem)
        spdlog::warn("replication: the database is still unreachable: {}", why);
      last_problem = why;
      std::unique_lock lock(mutex_);
      stop_.wait_for(lock, backoff, [this] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
}

}  // namespace db
