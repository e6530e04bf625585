#pragma once
// The asynchronous group-commit writer: every account actor's changes flow into one queue, and a
// thread of its own commits them to PostgreSQL in batches (up to batch_max changes, or whatever
// arrived within flush_interval_ms, per transaction). A change's completion runs once its
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

#include "accounts/durability.hpp"

namespace db {

struct WriterSettings {
  std::string url;
  size_t batch_max = 1000;
  std::chrono::milliseconds flush_interval{2};
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
  void run();
  void commit(std::deque<Pending>& batch);
  void connect();

  WriterSettings settings_;
  struct Link;  // the pqxx connection, kept out of this header
  std::unique_ptr<Link> link_;
  std::function<void(const std::string&)> fatal_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer waits for work
  std::condition_variable drained_;  // drain() waits for an empty queue
  std::deque<Pending> queue_;
  size_t in_flight_ = 0;
  bool stopping_ = false;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> commits_{0};
  std::thread thread_;
};

}  // namespace db
