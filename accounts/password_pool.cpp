#include "accounts/password_pool.hpp"

#include "accounts/argon2_area.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace accounts {

PasswordPool::PasswordPool(unsigned workers, size_t max_queue, size_t argon2_area_bytes) : max_queue_(max_queue) {
  if (workers == 0) workers = 1;
  for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this, argon2_area_bytes] {
    // Hashing is throughput work: it must never take the CPU from the I/O threads, or every
    // GET waits behind Argon2 whenever logins saturate the pool. Lowest priority (nice 19) and
    // the batch scheduling class let the kernel preempt a worker the moment an I/O thread wakes.
    sched_param none{};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
    argon2_area::keep_on_this_thread(argon2_area_bytes);
    work_loop();
  });
}

PasswordPool::~PasswordPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

bool PasswordPool::try_submit(Work& work) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= max_queue_) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(work));
  }
  wake_.notify_one();
  return true;
}

size_t PasswordPool::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void PasswordPool::work_loop() {
  while (true) {
    Work work;
    bool run;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to do
      work = std::move(queue_.front());
      queue_.pop_front();
      run = !stopping_;
    }
    argon2_area::Scope scope;
    work(run);
  }
}

}  // namespace accounts
