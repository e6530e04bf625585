#pragma once
// A one-byte lock for short critical sections: an account's record and mailbox, a shard of an
// index (accounts/rcu_table.hpp). Waiters sleep on the futex behind std::atomic_flag::wait rather
// than spinning.
#include <atomic>

namespace accounts {

class SpinLock {
 public:
  void lock() {
    while (flag_.test_and_set(std::memory_order_acquire)) flag_.wait(true, std::memory_order_relaxed);
  }
  void unlock() {
    flag_.clear(std::memory_order_release);
    flag_.notify_one();
  }

 private:
  std::atomic_flag flag_;
};

}  // namespace accounts
