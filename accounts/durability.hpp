#pragma once
// The seam between account actors and whatever makes their changes durable. accounts/ knows no
// SQL: the daemon plugs in the PostgreSQL writer (db/) when database.url is set, or MemoryOnly.
#include "accounts/completion.hpp"
#include "accounts/record.hpp"

namespace accounts {

struct Change {
  bool removed = false;  // true: the account is deleted; record carries its last state
  AccountRecord record;
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
