#include "db/writer.hpp"

#include <spdlog/spdlog.h>

#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <unordered_map>

#include "accounts/uuid.hpp"
#include "db/rows.hpp"
#include "db/schema.hpp"

namespace db {

struct Writer::Link {
  explicit Link(const std::string& url) : connection(url) {}
  pqxx::connection connection;
};

Writer::Writer(WriterSettings settings) : settings_(std::move(settings)) {}

Writer::~Writer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Writer::connect() {
  link_ = std::make_unique<Link>(settings_.url);
  pqxx::nontransaction tx(link_->connection);
  bool locked = tx.exec1("SELECT pg_try_advisory_lock(" + std::to_string(kDaemonLockKey) + ")")[0].as<bool>();
  if (!locked) {
    auto holder = tx.exec(
        "SELECT a.pid, coalesce(a.client_addr::text, 'local'), a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = " + std::to_string(kDaemonLockKey));
    std::string who = holder.empty() ? "unknown" : "backend pid " + holder[0][0].as<std::string>() + " from " +
                                                       holder[0][1].as<std::string>();
    link_.reset();
    throw DatabaseTaken("another accountsd already serves this database (" + who +
                        "); two daemons over one table would break email uniqueness");
  }
  connected_ = true;
}

void Writer::open() {
  connect();
  int applied = migrate(link_->connection);
  if (applied > 0)
    spdlog::info("database schema migrated to version {} ({} migration(s) applied)", latest_schema_version(), applied);
}

void Writer::start(std::function<void(const std::string&)> fatal) {
  fatal_ = std::move(fatal);
  thread_ = std::thread([this] { run(); });
}

void Writer::persist(accounts::Change change, accounts::Completion<bool> done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Pending{std::move(change), std::move(done)});
  }
  wake_.notify_one();
}

size_t Writer::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + in_flight_;
}

bool Writer::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return drained_.wait_for(lock, timeout, [this] { return queue_.empty() && in_flight_ == 0; });
}

void Writer::run() {
  std::chrono::milliseconds backoff{100};
  while (true) {
    std::deque<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping with nothing left
      // Group commit: give the batch flush_interval to fill up, unless it is full already.
      if (!stopping_ && queue_.size() < settings_.batch_max)
        wake_.wait_for(lock, settings_.flush_interval,
                       [this] { return stopping_ || queue_.size() >= settings_.batch_max; });
      size_t take = std::min(queue_.size(), settings_.batch_max);
      for (size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      in_flight_ = batch.size();
    }

    while (true) {  // the same batch until it commits: nothing accepted is ever dropped
      try {
        if (!link_ || !link_->connection.is_open()) {
          connected_ = false;
          connect();
          spdlog::info("database connection restored; writing resumes");
        }
        commit(batch);
        backoff = std::chrono::milliseconds{100};
        break;
      } catch (const DatabaseTaken& e) {
        spdlog::critical("{}", e.what());
        if (fatal_) fatal_(e.what());
        return;
      } catch (const pqxx::broken_connection& e) {
        if (connected_) spdlog::error("database connection lost: {}", e.what());
      } catch (const pqxx::in_doubt_error& e) {
        spdlog::error("database commit in doubt, retrying the batch: {}", e.what());
      } catch (const pqxx::sql_error& e) {
        if (link_ && link_->connection.is_open()) {
          // The database refused the data itself: retrying cannot help. Fail these changes.
          spdlog::error("database rejected a batch of {} changes: {}", batch.size(), e.what());
          for (auto& p : batch) p.done(false);
          break;
        }
        spdlog::warn("database error: {}", e.what());
      } catch (const std::exception& e) {
        spdlog::warn("database unavailable: {}", e.what());
      }
      connected_ = false;
      link_.reset();
      {
        std::unique_lock lock(mutex_);
        if (stopping_) {
          spdlog::error("stopping with {} uncommitted changes (none of them was acknowledged)", batch.size());
          return;
        }
        wake_.wait_for(lock, backoff, [this] { return stopping_; });
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds{5000});
    }

    std::lock_guard lock(mutex_);
    in_flight_ = 0;
    if (queue_.empty()) drained_.notify_all();
  }
}

void Writer::commit(std::deque<Pending>& batch) {
  // Several changes to one account collapse into its latest version (a deletion is always last).
  std::unordered_map<accounts::Uuid, const accounts::Change*, accounts::UuidHash> latest;
  for (const auto& p : batch) {
    auto& slot = latest[p.change.record.id];
    if (slot == nullptr || slot->record.version < p.change.record.version) slot = &p.change;
  }
  std::string upserts, deletions;
  for (const auto& [id, change] : latest) {
    if (change->removed) {
      deletions += (deletions.empty() ? "'" : ",'") + id.to_string() + "'";
    } else {
      if (!upserts.empty()) upserts += ',';
      upserts += sql_values(change->record, [this](const std::string& s) { return link_->connection.quote(s); });
    }
  }

  pqxx::work tx(link_->connection, "write");
  if (!upserts.empty())
    tx.exec(std::string("INSERT INTO accounts (") + kColumns + ") VALUES " + upserts +
            " ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, state = EXCLUDED.state,"
            " password_hash = EXCLUDED.password_hash, updated_ms = EXCLUDED.updated_ms,"
            " confirmed_ms = EXCLUDED.confirmed_ms, version = EXCLUDED.version,"
            " confirm_digest = EXCLUDED.confirm_digest, confirm_expires_ms = EXCLUDED.confirm_expires_ms,"
            " reset_digest = EXCLUDED.reset_digest, reset_expires_ms = EXCLUDED.reset_expires_ms"
            " WHERE accounts.version < EXCLUDED.version");
  if (!deletions.empty()) tx.exec("DELETE FROM accounts WHERE id IN (" + deletions + ")");
  tx.commit();
  commits_.fetch_add(1, std::memory_order_relaxed);
  for (auto& p : batch) p.done(true);
}

}  // namespace db
