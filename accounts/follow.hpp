#pragma once
// What a replica applies: the primary's committed changes up to one change-log position, as one
// unit (docs/ARCHITECTURE.md, "Replication"). db/follower.cpp reads it from one snapshot of the
// database; AccountService::apply() makes memory agree with it, all at once for readers.
#include <cstdint>
#include <vector>

#include "accounts/record.hpp"
#include "accounts/session.hpp"

namespace accounts {

struct FollowUnit {
  // true: a complete reload. `records` and `sessions` are the whole database, and any account in
  // memory that is not among them is gone.
  bool full = false;
  uint64_t position = 0;      // the change-log position this unit brings memory to
  int64_t committed_ms = 0;   // when that position committed on the primary (0: unknown)
  std::vector<Uuid> changed;  // accounts named by the changes; those absent from `records` were deleted
  std::vector<AccountRecord> records;  // the current rows of the changed accounts that still exist
  std::vector<SessionRow> sessions;    // every current session of the changed accounts
  std::vector<SessionRow> touched;     // sessions whose last use alone moved (their accounts unchanged)
};

}  // namespace accounts
