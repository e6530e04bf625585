#pragma once
// The asynchronous group-commit writer: every account actor's changes flow into one queue, and
// `connections` threads, each with a PostgreSQL connection of its own, commit them in batches (up
// to batch_max changes per transaction: what arrived while the last batch committed, and with a
// flush_interval, what keeps arriving for that long). Each batch is one libpq pipeline: one round
// trip, one implicit transaction (db/pipeline.hpp). Batches
// on different connections never conflict: an account has at most one change in flight (its
// actor waits for it), and an email is only reserved anew once the change freeing it committed.
// A change's completion runs once its transaction has committed. The writer never drops a change
// it accepted: when PostgreSQL is unreachable it reconnects with backoff and retries the same
// batch, which is idempotent (a row is only ever overwritten by a higher version).
//
// Every transaction is fenced (db/lease.hpp): as its last statement it takes the next change-log
// position from the lease row, on the condition that the epoch there is still this daemon's, and
// commits only then (otherwise the statement fails and the batch rolls back). When it is not, the
// batch and everything queued fail (not committed, never
// acknowledged), and `fatal` is called. Taking the position locks the lease row until the commit,
// so transactions on different connections commit in position order: a replica that sees
// position p has seen every position below it (docs/ARCHITECTURE.md, "Replication").
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
#include "db/lease.hpp"

namespace db {

struct WriterSettings {
  std::string url;
  size_t batch_max = 1000;
  std::chrono::milliseconds flush_interval{0};
  unsigned connections = 1;
  // Called on a writer thread after every transaction attempt: the changes in the batch, how long
  // it took, and whether it committed. For metrics; must be quick.
  std::function<void(size_t changes, std::chrono::nanoseconds took, bool committed)> observer;
  // Change-log entries older than this are trimmed; a replica further behind reloads.
  std::chrono::seconds log_retention{3600};
  // Wake replicas at each commit (NOTIFY accountsd_changes). Off in single-node mode, where a
  // notifying commit's global lock would cost for nobody; replicas also look once a second.
  bool notify = true;
};

class Writer final : public accounts::Durability {
 public:
  explicit Writer(WriterSettings settings);
  ~Writer() override;  // stops the thread; call drain() first to commit what is queued

  // Starts the writer threads, writing for the lease `epoch`. `fatal` runs (on a writer thread)
  // when a transaction finds that epoch gone: another daemon took the lease.
  // `position` is the last committed change-log position (from the warm-load or the follower).
  void start(uint64_t epoch, uint64_t position, std::function<void(const std::string&)> fatal);

  void persist(accounts::Change change, accounts::Completion<bool> done) override;

  // Waits until everything queued has been committed, or `timeout` passed; true when empty.
  bool drain(std::chrono::milliseconds timeout);

  size_t queued() const;
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  // The highest change-log position committed so far. Read after a change's completion, it is at
  // least that change's position: what a replica must have applied to show it (WAIT).
  uint64_t position() const { return position_.load(std::memory_order_acquire); }

 private:
  struct Pending {
    accounts::Change change;
    accounts::Completion<bool> done;
  };
  struct Link;  // a libpq connection, kept out of this header
  void run();
  void commit(Link& link, std::deque<Pending>& batch);
  void trim(Link& link);  // drops change-log entries past log_retention, at most every 10 s
  void fail_everything(std::deque<Pending>& batch, const std::string& why);

  WriterSettings settings_;
  uint64_t epoch_ = 0;
  std::function<void(const std::string&)> fatal_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer waits for work
  std::condition_variable drained_;  // drain() waits for an empty queue
  std::deque<Pending> queue_;
  size_t in_flight_ = 0;
  bool stopping_ = false;
  bool fenced_ = false;  // the lease is gone: every change fails at once
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> position_{0};
  std::atomic<int64_t> last_trim_ms_{0};
  std::vector<std::thread> threads_;
};

}  // namespace db
