#pragma once
// A one-byte lock for short critical sections: an account's record and mailbox, a shard of an
// index (accounts/rcu_table.hpp). Waiters spin briefly, then sleep on the futex behind
// std::atomic::wait.
//
// The byte says whether anyone may be asleep on it (0 free, 1 held, 2 held and maybe waited for,
// the mutex of Drepper's "Futexes Are Tricky"), so that unlocking an uncontended lock is one
// exchange and nothing else. std::atomic_flag::notify_one cannot know that: for a one-byte atomic,
// libstdc++ bumps a counter in a process-wide table of waiter slots on every notify, one cache
// line that every thread unlocking anything then wrote (docs/BENCHMARKS.md, "A lock that notifies
// only sleepers").
#include <atomic>
#include <cstdint>

namespace accounts {

class SpinLock {
 public:
  void lock() {
    uint8_t state = kFree;
    if (state_.compare_exchange_strong(state, kHeld, std::memory_order_acquire, std::memory_order_relaxed)) return;
    lock_contended(state);
  }
  void unlock() {
    if (state_.exchange(kFree, std::memory_order_release) == kWaited) state_.notify_one();
  }

 private:
  static constexpr uint8_t kFree = 0, kHeld = 1, kWaited = 2;

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  void lock_contended(uint8_t state) {
    for (int spin = 0; spin < 64 && state != kWaited; ++spin) {  // the holder is most likely done soon
      pause();
      state = kFree;
      if (state_.compare_exchange_weak(state, kHeld, std::memory_order_acquire, std::memory_order_relaxed)) return;
    }
    // From here on, whoever holds the lock is told to wake someone when it lets go; a thread that
    // takes the lock this way keeps that mark, since others may still sleep.
    while (state_.exchange(kWaited, std::memory_order_acquire) != kFree) state_.wait(kWaited, std::memory_order_relaxed);
  }

  std::atomic<uint8_t> state_{kFree};
};

}  // namespace accounts
