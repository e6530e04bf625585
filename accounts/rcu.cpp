#include "accounts/rcu.hpp"

#include <urcu/urcu-memb.h>

#include <stdexcept>

// ThreadSanitizer cannot see liburcu's grace periods (membarrier, futexes and atomics in an
// uninstrumented library), so it would take every disposal for a race with the readers before it.
// In a TSan build the code tells it what RCU guarantees instead: the end of every read span, and
// every defer(), happen before each disposal that runs after them.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
namespace {
char grace_period;
void reader_done() { __tsan_release(&grace_period); }
void before_disposal() { __tsan_acquire(&grace_period); }
}  // namespace
#else
namespace {
void reader_done() {}
void before_disposal() {}
}  // namespace
#endif

namespace accounts::rcu {
namespace {

// How many registration scopes this thread is inside (the outermost one registers it).
thread_local int registrations = 0;

// A reader or writer on a thread RCU does not know would not delay a disposal: it could touch
// freed memory. That is a bug in the caller, reported loudly rather than risked.
void require_registered(const char* what) {
  if (registrations == 0)
    throw std::logic_error(std::string(what) + " on a thread not registered with RCU (hold an accounts::IndexThread)");
}

struct Deferred {
  rcu_head head;
  void (*dispose)(void*);
  void* object;
};

void run_deferred(rcu_head* head) {
  auto* deferred = caa_container_of(head, Deferred, head);
  before_disposal();
  deferred->dispose(deferred->object);
  delete deferred;
}

}  // namespace

void register_thread() {
  if (registrations++ == 0) urcu_memb_register_thread();
}

void unregister_thread() {
  if (--registrations == 0) urcu_memb_unregister_thread();
}

ReadLock::ReadLock() {
  require_registered("an index lookup");
  urcu_memb_read_lock();
}

ReadLock::~ReadLock() {
  reader_done();
  urcu_memb_read_unlock();
}

void defer(void (*dispose)(void*), void* object) {
  require_registered("an index change");
  auto* deferred = new Deferred{{}, dispose, object};
  reader_done();  // what this thread did to the object also happens before its disposal
  urcu_memb_call_rcu(&deferred->head, run_deferred);
}

void barrier() {
  require_registered("waiting for the index's disposals");
  urcu_memb_barrier();
}

}  // namespace accounts::rcu
