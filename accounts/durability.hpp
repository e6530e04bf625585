#pragma once
// The seam between account actors and whatever makes their changes durable. accounts/ knows no
// SQL: the daemon plugs in the PostgreSQL writer (db/) when database.url is set, or MemoryOnly.
#include "accounts/completion.hpp"
#include <utility>
#include <vector>

#include "accounts/record.hpp"
#include "accounts/session.hpp"

namespace accounts {

// One atomic unit of durable change: the account's new version (or its deletion), and the
// sessions it opens and ends, committed together or not at all.
struct Change {
  bool removed = false;  // true: the account is deleted (its sessions with it); record carries its last state
  AccountRecord record;
  bool account = true;   // false: only sessions change; record carries just the id
  std::vector<SessionRow> opened{};
  std::vector<Uuid> ended{};
  std::vector<std::pair<Uuid, int64_t>> touched{};  // sessions' last use, written lazily (never resurrects one)
};

class Durability {
 public:
  virtual ~Durability() = default;
  // Makes `change` durable, then calls done(true); or calls done(false) when that could not be
  // confirmed in time (the change may or may not be stored). `done` may run on any thread.
  virtual void persist(Change change, Completion<bool> done) = 0;
};

// Nothing persists: every change is "durable" at once. For database.url = "".
class MemoryOnly final : public Durability {
 public:
  void persist(Change, Completion<bool> done) override { done(true); }
};

}  // namespace accounts
