#pragma once
// The index: accounts by id and by normalized email, both unique. Reserving an email is
// one atomic insert-if-absent, which is what makes two registrations of one address impossible.
// Backed by two RcuTables (accounts/rcu_table.hpp): readers never lock and never wait, and each
// table grows one shard at a time with the number of accounts (see docs/ARCHITECTURE.md for the
// choice). An account is its own entry by id (accounts/index_entry.hpp).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "accounts/function_ref.hpp"
#include "accounts/uuid.hpp"

namespace accounts {

class Account;

class AccountIndex {
 public:
  // Starts small and grows as accounts arrive: no size to configure.
  AccountIndex();
  ~AccountIndex();
  AccountIndex(const AccountIndex&) = delete;
  AccountIndex& operator=(const AccountIndex&) = delete;

  std::shared_ptr<Account> by_id(const Uuid& id) const;
  std::shared_ptr<Account> by_email(std::string_view email) const;
  // Call `use` with the account while an RCU read span keeps its entry alive, without taking a
  // reference (the read path: no shared write to the account per lookup). False when not found.
  template <class Use>
  bool visit_id(const Uuid& id, Use&& use) const {
    return visit_id_impl(id, AccountRef(use));
  }
  template <class Use>
  bool visit_email(std::string_view email, Use&& use) const {
    return visit_email_impl(email, AccountRef(use));
  }

  // Read-ahead (accounts/read_ahead.cpp): the id's hash, with the slots a lookup probes first on
  // their way into the cache; then, inside an rcu::ReadLock, the account those slots name, or
  // null (a guess: it may not be the one a lookup finds).
  uint64_t read_ahead_id(const Uuid& id) const;
  const Account* read_ahead_account(uint64_t hash) const;
  // The same for an address (normalized): its hash, then the entry the slots name (opaque), then
  // the account that entry names.
  uint64_t read_ahead_email(std::string_view email) const;
  const void* read_ahead_email_entry(uint64_t hash) const;
  static const Account* read_ahead_email_account(const void* entry);

  // Keyed by account->id(). An account enters the id index once in its life.
  bool insert_id(std::shared_ptr<Account> account);
  // Insert-if-absent: true when `email` now belongs to `account`, false when anyone held it.
  bool reserve_email(std::string_view email, std::shared_ptr<Account> account);
  // A warm-load's batch: the two keys' hashes, with what inserting them will touch on its way into
  // the cache, so that the batch's cache misses overlap. Then the same inserts as above, given
  // those hashes.
  struct Hashes {
    uint64_t id, email;
  };
  Hashes prefetch_insert(const Uuid& id, std::string_view email) const;
  bool insert_id(std::shared_ptr<Account> account, uint64_t id_hash);
  bool reserve_email(std::string_view email, std::shared_ptr<Account> account, uint64_t email_hash);
  // Only the account an entry points to removes it, from inside its actor.
  void erase_id(const Uuid& id);
  void erase_email(std::string_view email);

  // A warm-load's hint: about this many accounts are coming, so size the tables for them now
  // rather than growing them on the way. trim() afterwards gives back what a wrong hint took.
  void reserve(size_t accounts);
  void trim();
  // Every id in the index. Only while no other thread inserts or erases: a replica's follower,
  // which is the only writer there, before a full reload.
  std::vector<Uuid> all_ids() const;

  size_t id_count() const;
  size_t email_count() const;

 private:
  using AccountRef = FunctionRef<void(const Account&)>;
  bool visit_id_impl(const Uuid& id, AccountRef use) const;
  bool visit_email_impl(std::string_view email, AccountRef use) const;
  struct Maps;
  std::unique_ptr<Maps> maps_;
};

// The indexes' runtime: one object alive for as long as any index is used. The thread that makes
// it is registered with RCU (accounts/rcu.hpp), and it waits for the last deferred disposals.
class IndexRuntime {
 public:
  IndexRuntime();
  ~IndexRuntime();
  IndexRuntime(const IndexRuntime&) = delete;
  IndexRuntime& operator=(const IndexRuntime&) = delete;
};

// Every thread that touches an index holds one of these while it does: it registers the thread
// with RCU (nested scopes on one thread are fine).
class IndexThread {
 public:
  IndexThread();
  ~IndexThread();
  IndexThread(const IndexThread&) = delete;
  IndexThread& operator=(const IndexThread&) = delete;
};

}  // namespace accounts
