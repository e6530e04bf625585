#pragma once
// Read-copy-update for the indexes (accounts/rcu_table.hpp), from liburcu's membarrier flavour:
// a reader marks the span in which it may hold pointers it found in an index (ReadLock: two
// thread-local stores, no fence and no shared write); a writer that takes an object out of an
// index hands it to defer(), which disposes of it only once every reader that was in such a span
// when it was taken out has left it. So a reader never waits, and never holds a freed object.
//
// Every thread that reads or writes an index must be registered with RCU: it holds an
// IndexThread (accounts/index.hpp) for as long as it does. liburcu's own headers stay in rcu.cpp
// (they define macros such as rcu_read_lock and call_rcu).
#include <cstddef>

namespace accounts::rcu {

// The calling thread's registration; nested scopes on one thread register it once.
void register_thread();
void unregister_thread();

class ReadLock {
 public:
  ReadLock();
  ~ReadLock();
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;
};

// Calls dispose(object) on liburcu's call_rcu thread once every read span that was open when
// defer() was called has ended. From a registered thread only.
void defer(void (*dispose)(void*), void* object);

// Waits until every disposal deferred so far has run (an index's last word before it goes). From a
// registered thread outside any ReadLock.
void barrier();

}  // namespace accounts::rcu
