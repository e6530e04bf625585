#pragma once
// The worker threads that hash and verify passwords, so that Argon2id never runs on an I/O
// thread. The queue is bounded: a full pool refuses work at once (the request gets ERR BUSY)
// instead of letting latency grow without bound. Each worker keeps Argon2's work area from one job
// to the next (accounts/argon2_area.hpp).
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "accounts/completion.hpp"

namespace accounts {

class PasswordPool {
 public:
  // `argon2_area_bytes`: the work area each worker keeps (password_hash.memlimit_kib in bytes).
  PasswordPool(unsigned workers, size_t max_queue, size_t argon2_area_bytes);
  ~PasswordPool();  // finishes queued work, then joins
  PasswordPool(const PasswordPool&) = delete;
  PasswordPool& operator=(const PasswordPool&) = delete;

  // A unit of work: called with true on a worker, or with false if the pool shuts down first.
  using Work = UniqueFunction<void(bool run)>;
  // Takes `work` and returns true, or leaves it with the caller and returns false when the queue
  // is full, so that the caller can answer at once (ERR BUSY).
  bool try_submit(Work& work);

  size_t queued() const;
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }  // try_submit refusals so far
  unsigned workers() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void work_loop();

  size_t max_queue_;
  std::atomic<uint64_t> rejected_{0};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Work> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace accounts
