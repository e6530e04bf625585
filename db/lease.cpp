#include "db/lease.hpp"

#include <spdlog/spdlog.h>

#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/notification>
#include <pqxx/transaction>

#include <charconv>

#include "accounts/clock.hpp"
#include "db/rows.hpp"
#include "db/schema.hpp"

namespace db {

struct Lease::Link {
  explicit Link(const std::string& url) : connection(url) {}
  pqxx::connection connection;
  std::unique_ptr<pqxx::notification_receiver> touches;  // before the connection goes
  ~Link() { touches.reset(); }
};

namespace {

class TouchReceiver final : public pqxx::notification_receiver {
 public:
  TouchReceiver(pqxx::connection_base& c, std::function<void(const std::string&)> deliver)
      : pqxx::notification_receiver(c, "accountsd_touches"), deliver_(std::move(deliver)) {}
  void operator()(const std::string& payload, int) override { deliver_(payload); }

 private:
  std::function<void(const std::string&)> deliver_;
};

}  // namespace

void Lease::listen(Link& link) {
  link.touches = std::make_unique<TouchReceiver>(link.connection, [this](const std::string& p) { deliver(p); });
}

void Lease::deliver(const std::string& payload) {
  if (!events_.touched) return;
  std::vector<std::pair<accounts::SessionKey, int64_t>> touches;
  size_t start = 0;
  while (start < payload.size()) {
    size_t comma = payload.find(',', start);
    std::string_view item(payload.data() + start, (comma == std::string::npos ? payload.size() : comma) - start);
    start = comma == std::string::npos ? payload.size() : comma + 1;
    size_t colon = item.find(':');
    if (colon == std::string_view::npos) continue;
    auto key = parse_hex_session_key(item.substr(0, colon));
    int64_t used = 0;
    auto digits = item.substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), used);
    if (!key || ec != std::errc() || end != digits.data() + digits.size()) continue;  // not ours: ignore
    touches.emplace_back(*key, used);
  }
  if (!touches.empty()) events_.touched(touches);
}

Lease::Lease(LeaseSettings settings) : settings_(std::move(settings)) {}

Lease::~Lease() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<Lease::Link> Lease::connect_and_lock() {
  auto link = std::make_unique<Link>(settings_.url);
  pqxx::nontransaction tx(link->connection);
  tx.exec("SET application_name = 'accountsd lease'");
  if (tx.exec1("SELECT pg_try_advisory_lock(" + std::to_string(kDaemonLockKey) + ")")[0].as<bool>()) return link;
  return nullptr;
}

uint64_t Lease::read_epoch(Link& link) {
  pqxx::nontransaction tx(link.connection);
  return tx.exec1("SELECT epoch FROM writer_lease WHERE id = 1")[0].as<uint64_t>();
}

void Lease::acquire() {
  if (try_acquire()) return;
  auto fresh = std::make_unique<Link>(settings_.url);
  pqxx::nontransaction tx(fresh->connection);
  auto holder = tx.exec(
      "SELECT a.pid, coalesce(a.client_addr::text, 'local') FROM pg_locks l "
      "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
      "AND ((l.classid::bigint << 32) | l.objid::bigint) = " + std::to_string(kDaemonLockKey));
  std::string who = holder.empty() ? "unknown" : "backend pid " + holder[0][0].as<std::string>() + " from " +
                                                     holder[0][1].as<std::string>();
  throw DatabaseTaken("another accountsd already serves this database (it holds the lease: " + who +
                      "); two daemons over one table would break email uniqueness");
}

bool Lease::try_acquire() {
  auto link = connect_and_lock();
  if (!link) return false;
  take(std::move(link));
  return true;
}

bool Lease::wait_acquire(const std::atomic<bool>& stop) {
  auto backoff = std::chrono::milliseconds(100);
  std::string last_problem;
  while (!stop) {
    try {
      auto link = std::make_unique<Link>(settings_.url);
      {
        pqxx::nontransaction tx(link->connection);
        tx.exec("SET application_name = 'accountsd standby'");
        tx.exec("SET lock_timeout = '1s'");  // wakes up every second to look at `stop`
      }
      while (!stop) {
        try {
          pqxx::nontransaction tx(link->connection);
          tx.exec("SELECT pg_advisory_lock(" + std::to_string(kDaemonLockKey) + ")");
          tx.exec("SET application_name = 'accountsd lease'");
          tx.exec("RESET lock_timeout");
        } catch (const pqxx::sql_error& e) {
          if (e.sqlstate() != "55P03") throw;  // lock_not_available: the primary still holds it
          continue;
        }
        take(std::move(link));
        return true;
      }
    } catch (const std::exception& e) {
      std::string why = e.what();
      if (why != last_problem) spdlog::warn("standby: cannot watch the database lease (retrying): {}", why);
      last_problem = why;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
  return false;
}

void Lease::take(std::unique_ptr<Link> link) {
  int applied = migrate(link->connection);
  if (applied > 0)
    spdlog::info("database schema migrated to version {} ({} migration(s) applied)", latest_schema_version(), applied);
  {
    // Waits for any write transaction of the previous holder that took its position already, and
    // fences out every later one (db/writer.cpp).
    pqxx::work tx(link->connection, "take-lease");
    uint64_t epoch = tx.exec_params1("UPDATE writer_lease SET epoch = epoch + 1, holder = $1, advertise = $2, "
                                     "acquired_at = now() WHERE id = 1 RETURNING epoch",
                                     settings_.holder, settings_.advertise)[0]
                         .as<uint64_t>();
    tx.commit();
    epoch_.store(epoch, std::memory_order_release);
  }
  listen(*link);
  link_ = std::move(link);
  valid_until_ms_ = accounts::steady_ms() + settings_.timeout.count();
  spdlog::info("holding the database lease (epoch {})", epoch());
}

void Lease::start(Events events) {
  events_ = std::move(events);
  thread_ = std::thread([this] { run(); });
}

void Lease::run() {
  const auto interval = settings_.timeout / 4;
  bool held = true;
  std::string last_problem;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (stop_.wait_for(lock, interval, [this] { return stopping_; })) return;
    }
    try {
      if (!link_) {
        link_ = connect_and_lock();
        if (link_) listen(*link_);
        if (!link_) {
          // Someone holds the lock. If the epoch moved, another daemon took over: our memory
          // is stale and must not answer again. If not, wait for the lock to come free.
          auto probe = std::make_unique<Link>(settings_.url);
          uint64_t now_epoch = read_epoch(*probe);
          if (now_epoch != epoch()) {
            events_.taken("another daemon took the database lease (epoch " + std::to_string(now_epoch) +
                          ", ours was " + std::to_string(epoch()) + ")");
            return;
          }
          if (last_problem != "locked") spdlog::warn("the database lease lock is held by another session; waiting for it");
          last_problem = "locked";
          continue;
        }
      }
      uint64_t now_epoch = read_epoch(*link_);
      if (now_epoch != epoch()) {
        events_.taken("the database lease epoch moved to " + std::to_string(now_epoch) + " while we held the lock (ours is " +
                      std::to_string(epoch()) + ")");
        return;
      }
      valid_until_ms_.store(accounts::steady_ms() + settings_.timeout.count(), std::memory_order_release);
      last_problem.clear();
      link_->connection.get_notifs();  // replicas' session uses, to events_.touched
      if (!held) {
        held = true;
        events_.regained();
      }
    } catch (const std::exception& e) {
      link_.reset();
      valid_until_ms_.store(0, std::memory_order_release);
      std::string why = e.what();
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      if (held) {
        held = false;
        events_.lost("the lease connection failed: " + why);
      } else if (why != last_problem) {
        spdlog::warn("database lease: still not confirmed: {}", why);
      }
      last_problem = why;
    }
  }
}

}  // namespace db
