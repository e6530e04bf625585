#pragma once
// The writer lease: which daemon may write to this database and answer for its accounts.
//
// A daemon holds the lease while its lease connection holds the session advisory lock
// kDaemonLockKey. Taking the lease bumps the epoch in the writer_lease row; every write
// transaction (db/writer.cpp) first reads that epoch with a row lock (FOR SHARE) and commits only
// if it is still its daemon's. A new holder's bump waits for such transactions to end, and any
// that starts after the bump sees the new epoch and rolls back: nothing ever commits for a daemon
// that lost the lease, whatever its connections still believe.
//
// A heartbeat on the lease connection confirms the lease every timeout/4. A daemon with no
// confirmation for `timeout` must stop answering as the authority (reads too); the daemon asks
// valid_until() per request. When the lease connection breaks, the heartbeat thread reconnects
// and re-takes the lock: with the epoch unchanged nobody else wrote, and the lease is back; with
// a new epoch another daemon took over, and `taken` is called (the daemon stops).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "accounts/secrets.hpp"

namespace db {

// Another daemon holds the database: starting would break email uniqueness.
class DatabaseTaken : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LeaseSettings {
  std::string url;
  std::chrono::milliseconds timeout{2000};
  std::string holder;  // who we are, for the writer_lease row and for the operator
  std::string advertise;  // where clients send changes while we hold it (writer_lease.advertise)
};

class Lease {
 public:
  struct Events {
    std::function<void(const std::string& why)> lost;   // no confirmation any more; fence now
    std::function<void()> regained;                      // confirmed again, same epoch
    std::function<void(const std::string& why)> taken;   // another daemon holds it now; stop
    // Session uses that replicas saw (NOTIFY accountsd_touches): token digest and last use.
    std::function<void(const std::vector<std::pair<accounts::SessionKey, int64_t>>&)> touched = {};
  };

  explicit Lease(LeaseSettings settings);
  ~Lease();

  // Connects, takes the advisory lock, applies migrations and bumps the epoch. Throws
  // DatabaseTaken when another daemon holds the lock, pqxx exceptions when PostgreSQL cannot be
  // reached.
  void acquire();
  // The same, but false instead of DatabaseTaken when another daemon holds the lock.
  bool try_acquire();
  // A standby's wait: blocks until the lock comes free and takes it (then as acquire()), checking
  // `stop` every second; false when stopped first. Connection failures are retried with backoff.
  bool wait_acquire(const std::atomic<bool>& stop);
  // Any thread (STATS reads it while the start-up or standby thread takes the lease).
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Before acquire(): the address recorded for READONLY replies (known once the listener is open).
  void set_advertise(std::string address) { settings_.advertise = std::move(address); }

  // Starts the heartbeat thread; `events` run on it.
  void start(Events events);

  // accounts::steady_ms() until which the lease is confirmed (0: not confirmed now).
  int64_t valid_until_ms() const { return valid_until_ms_.load(std::memory_order_acquire); }

 private:
  struct Link;
  void run();
  std::unique_ptr<Link> connect_and_lock();  // null when the lock is held by someone else
  void take(std::unique_ptr<Link> link);      // with the lock held: migrate, bump the epoch
  void listen(Link& link);                    // LISTEN for replicas' session uses
  void deliver(const std::string& payload);
  uint64_t read_epoch(Link& link);

  LeaseSettings settings_;
  std::unique_ptr<Link> link_;
  std::atomic<uint64_t> epoch_{0};
  Events events_;
  std::atomic<int64_t> valid_until_ms_{0};
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace db
