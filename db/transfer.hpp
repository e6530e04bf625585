#pragma once
// Bulk import and export of accounts (docs/IMPORT.md), for `accountsd import` and `accountsd export`.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

#include "accounts/record.hpp"

namespace db {

// One import: a transaction that streams rows with COPY accounts FROM STDIN and commits them all
// at once, or none. The caller holds the writer lease (db/lease.hpp) at `epoch`, so no daemon
// writes meanwhile; the transaction checks that epoch under a row lock, as the writer does.
class AccountImport {
 public:
  // Connects, begins, fences, and reads the ids and emails already in the table.
  AccountImport(const std::string& url, uint64_t epoch);
  ~AccountImport();  // rolls back unless committed

  // Whether the table held this id or email before the import began.
  bool has_id(const accounts::Uuid& id) const { return ids_.count(id.to_string()) != 0; }
  bool has_email(const std::string& email) const { return emails_.count(email) != 0; }
  uint64_t existing() const { return ids_.size(); }

  void add(const accounts::AccountRecord& record);  // buffered; sent in large pieces
  void commit();                                     // throws if PostgreSQL refuses anything
  void abort(const std::string& why);                // nothing is written

 private:
  void flush();
  struct Link;
  std::unique_ptr<Link> link_;
  std::unordered_set<std::string> ids_, emails_;
  std::string buffer_;
  bool copying_ = false;
};

// Streams every account, in one REPEATABLE READ snapshot, to `sink`; returns how many. Works while
// a daemon runs: it only reads.
uint64_t export_accounts(const std::string& url, const std::function<void(const accounts::AccountRecord&)>& sink);

}  // namespace db
