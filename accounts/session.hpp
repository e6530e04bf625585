#pragma once
// A login session: opened by LOGIN_SESSION, checked by WHOAMI on every request of a signed-in
// user, ended by LOGOUT, LOGOUT_ALL, expiry, or a change to its account (docs/PROTOCOL.md). The
// token is shown once; only its digest is kept, here and in PostgreSQL.
//
// Who may touch what: the fields set at opening never change. last_used_ms moves on every check
// (any I/O thread, relaxed: a slightly stale value only delays an expiry by that much);
// persisted_used_ms belongs to the sweeper; `ended` is set once, by the account's actor, after
// the ending is committed, and every check reads it.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"

namespace accounts {

class Account;

class Session {
 public:
  Session(Uuid id, const TokenDigest& digest, std::shared_ptr<Account> account, int64_t created_ms,
          int64_t expires_ms, int64_t last_used_ms, std::string_view label, std::string_view source);

  const Uuid id;
  const TokenDigest digest;
  const std::shared_ptr<Account> account;
  const int64_t created_ms;
  const int64_t expires_ms;  // absolute: created + sessions.lifetime_s
  std::atomic<int64_t> last_used_ms;
  std::atomic<int64_t> persisted_used_ms;  // last_used_ms as PostgreSQL has it
  std::atomic<bool> ended{false};

  std::string_view label() const { return extras_ ? std::string_view(extras_->label) : std::string_view(); }
  std::string_view source() const { return extras_ ? std::string_view(extras_->source) : std::string_view(); }
  // When the session stops working: its absolute expiry, or idle_ms after its last use.
  int64_t expiry(int64_t idle_ms) const {
    int64_t idle = last_used_ms.load(std::memory_order_relaxed) + idle_ms;
    return idle < expires_ms ? idle : expires_ms;
  }
  bool valid(int64_t now, int64_t idle_ms) const {
    return !ended.load(std::memory_order_acquire) && now < expiry(idle_ms);
  }

 private:
  struct Extras {  // most sessions of a typical backend have both, but neither is required
    std::string label;
    std::string source;
  };
  std::unique_ptr<Extras> extras_;
};

// A session as a row of the sessions table (what the writer stores and the warm-load reads).
struct SessionRow {
  Uuid id;
  Uuid account;
  TokenDigest digest;
  int64_t created_ms = 0;
  int64_t last_used_ms = 0;
  int64_t expires_ms = 0;
  std::string label;
  std::string source;
};
SessionRow row_of(const Session& session);

// The lock-free index of live sessions by token digest (libcds FeldmanHashSet: the digest is its
// own hash, and the set grows without a pause). Reads never lock; the account's actor inserts and
// erases. The calling thread must hold an IndexThread.
class SessionIndex {
 public:
  SessionIndex();
  ~SessionIndex();
  SessionIndex(const SessionIndex&) = delete;
  SessionIndex& operator=(const SessionIndex&) = delete;

  std::shared_ptr<Session> find(const TokenDigest& digest) const;
  bool insert(std::shared_ptr<Session> session);
  void erase(const TokenDigest& digest);
  size_t size() const;

 private:
  struct Set;
  std::unique_ptr<Set> set_;
};

}  // namespace accounts
