#pragma once
// The asynchronous group-commit writer: every account actor's changes flow into one queue, and
// `connections` threads, each with a PostgreSQL connection of its own, commit them in batches (up
// to batch_max changes, or whatever arrived within flush_interval_ms, per transaction). Batches
// on different connections never conflict: an account has at most one change in flight (its
// actor waits for it), and an email is only reserved anew once the change freeing it committed. A change's completion runs once its
// transaction has committed. The writer never drops a change it accepted: when PostgreSQL is
// unreachable it reconnects with backoff and retries the same batch, which is idempotent (a row
// is only ever overwritten by a higher version).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "accounts/durability.hpp"

namespace db {

struct WriterSettings {
  std::string url;
  size_t batch_max = 1000;
  std::chrono::milliseconds flush_interval{2};
  unsigned connections = 1;
};

// Another daemon holds the database: starting would break email uniqueness.
class DatabaseTaken : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Writer final : public accounts::Durability {
 public:
  explicit Writer(WriterSettings settings);
  ~Writer() override;  // stops the thread; call drain() first to commit what is queued

  // Connects, takes the daemon's advisory lock and applies migrations. Throws DatabaseTaken when
  // another daemon holds the lock, pqxx::broken_connection when PostgreSQL cannot be reached.
  void open();
  // Starts the writer thread. `fatal` runs (on that thread) if the lock is lost to another daemon.
  void start(std::function<void(const std::string&)> fatal);

  void persist(accounts::Change change, accounts::Completion<bool> done) override;

  // Waits until everything queued has been committed, or `timeout` passed; true when empty.
  bool drain(std::chrono::milliseconds timeout);

  size_t queued() const;
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    accounts::Change change;
    accounts::Completion<bool> done;
  };
  struct Link;  // a pqxx connection, kept out of this header
  void run(std::unique_ptr<Link> link, bool holds_lock);
  void commit(Link& link, std::deque<Pending>& batch);
  std::unique_ptr<Link> connect(bool take_lock);

  WriterSettings settings_;
  std::unique_ptr<Link> first_;  // from open(): holds the advisory lock, migrated the schema
  std::function<void(const std::string&)> fatal_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer waits for work
  std::condition_variable drained_;  // drain() waits for an empty queue
  std::deque<Pending> queue_;
  size_t in_flight_ = 0;
  bool stopping_ = false;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> commits_{0};
  std::vector<std::thread> threads_;
};

}  // namespace db
