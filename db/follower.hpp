#pragma once
// The replica's side of replication: follows the primary's change log (docs/ARCHITECTURE.md,
// "Replication"). One thread with one PostgreSQL connection LISTENs for the primary's commits;
// on each wake-up (and once a second regardless) it reads, in one REPEATABLE READ snapshot,
// every change past the position it has applied, and hands the result over as one unit. When the
// log cannot continue (trimmed past that position, or behind it), or memory refuses a unit, it
// reloads everything from one snapshot instead. A lost connection is retried with backoff; reads
// on the replica go on meanwhile, and its lag grows.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "accounts/follow.hpp"

namespace db {

struct FollowerSettings {
  std::string url;
  // Makes memory agree with the unit; throws (naming the account and why) when it cannot, and a
  // full reload follows. Runs on the follower's thread.
  std::function<void(accounts::FollowUnit&&)> apply;
  // Runs at the start of the follower's thread and holds what the thread needs until it ends.
  std::function<std::shared_ptr<void>()> thread_scope = [] { return std::shared_ptr<void>(); };
  // Memory refused even a full reload: this node cannot follow and must stop. On the thread.
  std::function<void(const std::string& why)> fatal;
  // The address the primary advertises (writer_lease.advertise), whenever it is first seen or
  // changes. On the thread.
  std::function<void(const std::string& address)> primary_changed;
};

class Follower {
 public:
  // `position`: where the warm-load left memory.
  Follower(FollowerSettings settings, uint64_t position);
  ~Follower();  // stops the thread
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  void start();
  // For a promotion, once this node holds the lease (so nothing else commits): stops the thread
  // and applies everything committed up to now on the calling thread. Throws when that fails.
  void finish();

  // Session uses seen on this replica, for the primary's idle timeouts: sent on the follower's
  // connection as NOTIFY accountsd_touches (token digest and last use), which the primary's lease
  // connection LISTENs to. Any thread. Lost if the connection is down: a replica forgets at most
  // what a primary's crash forgets (a quarter of the idle timeout).
  using Touches = std::vector<std::pair<accounts::SessionKey, int64_t>>;
  void forward_touches(Touches touches);

  uint64_t applied() const { return applied_.load(std::memory_order_acquire); }
  uint64_t head() const { return head_.load(std::memory_order_relaxed); }  // the latest position seen
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  // True once the follower has looked at the database at least once (and so knows the primary).
  bool looked() const { return looked_.load(std::memory_order_acquire); }
  uint64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }
  // How far behind the primary this node is: 0 when the last look found nothing unapplied;
  // otherwise the time since it was last caught up.
  int64_t lag_ms() const;

 private:
  struct Link;
  void run();
  // Reads and applies what is past applied(); false when there was nothing. Throws on a
  // connection failure (the caller reconnects).
  bool step(Link& link);
  uint64_t read_head(Link& link);  // the database's position, noting the primary's address
  void reload(Link& link);  // everything, from one snapshot, as one full unit
  void send_touches(Link& link);

  FollowerSettings settings_;
  std::atomic<uint64_t> applied_;
  std::atomic<uint64_t> head_{0};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> reloads_{0};
  std::atomic<int64_t> caught_up_ms_;  // steady clock, the last time nothing was left to apply
  std::atomic<bool> behind_{false};
  std::atomic<bool> looked_{false};
  std::string primary_;  // the follower thread's (finish(): the caller's, after the join)
  bool must_reload_ = false;  // the same
  std::mutex touches_mutex_;
  Touches touches_;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace db
