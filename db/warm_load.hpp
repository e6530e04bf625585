#pragma once
// The warm-load: streams the accounts and sessions tables with COPY and hands each row over.
// A row that breaks an invariant stops the load with an exception naming the row's id.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "accounts/record.hpp"
#include "accounts/session.hpp"

namespace db {

struct LoadProgress {
  std::atomic<uint64_t> rows{0};      // account rows read so far
  std::atomic<uint64_t> sessions{0};  // session rows read so far
  std::atomic<uint64_t> expected{0};  // the planner's estimate of the table's rows (0 = unknown)
};

// Returns the number of accounts loaded. progress.expected is the planner's estimate, for showing
// progress only: it may be stale.
// Accounts first, then sessions, both from one REPEATABLE READ snapshot.
uint64_t warm_load(const std::string& url, LoadProgress& progress,
                   const std::function<void(accounts::AccountRecord&&)>& adopt,
                   const std::function<void(accounts::SessionRow&&)>& adopt_session);

}  // namespace db
