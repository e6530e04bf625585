#pragma once
// A login session: opened by LOGIN_SESSION, checked by WHOAMI on every request of a signed-in
// user, ended by LOGOUT, LOGOUT_ALL, expiry, or a change to its account (docs/PROTOCOL.md). The
// token is shown once; only its digest is kept: whole in PostgreSQL, its first half in memory.
//
// Who may touch what: the fields set at opening never change. The last use moves on every check
// (any I/O thread, relaxed: a slightly stale value only delays an expiry by that much); the
// persisted last use belongs to the sweeper; `ended` is set once, by the account's actor, after
// the ending is committed, and every check reads it. Last uses are kept in whole seconds after
// the opening (4 bytes each instead of 8: memory per session is what decides how many fit).
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "accounts/clock.hpp"
#include "accounts/function_ref.hpp"
#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"

namespace accounts {

class Account;

class SessionRef;

// Laid out for WHOAMI: everything a check reads (the key the index matches, the owner, the times,
// `ended`, the id it shows) sits in the first of two cache lines, and the object starts a line,
// so a check asks memory for one line where an unaligned 104-byte session took two or three.
class alignas(64) Session {
 public:
  // Made only through make_session(): a session lives for as long as a SessionRef holds it.
  static SessionRef make(Uuid id, const TokenDigest& digest, std::shared_ptr<Account> account, int64_t created_ms,
                         int64_t expires_ms, int64_t last_used_ms, std::string_view label, std::string_view source);

  // The first line: what a check reads.
  const SessionKey key;  // the first half of the token's digest (accounts/secrets.hpp)
  const Uuid id;

 private:
  Account* const owner_;  // account.get(), here beside the rest, where `account` is on the second line

 public:
  const int64_t created_ms;
  const int64_t expires_ms;  // absolute: created + sessions.lifetime_s

 private:
  std::atomic<uint32_t> used_s_;

 public:
  std::atomic<bool> ended{false};

 private:
  uint8_t label_size_ = 0;
  uint8_t source_size_ = 0;

 public:
  // The second line: what the actor, the sweep and SESSIONS read.
  const std::shared_ptr<Account> account;

  // The account, read from the first line (the check's path; `account` is the owning reference).
  Account& owner() const { return *owner_; }

  int64_t last_used_ms() const { return at(used_s_.load(std::memory_order_relaxed)); }
  // Moves only forward, and writes only when the second moves: a session checked many times a
  // second (several threads, one user's burst of requests) leaves its line clean and unshared.
  // Two threads that race here cannot move it back either: the larger second wins the exchange.
  void used(int64_t now_ms) {
    const uint32_t seconds = after(now_ms);
    uint32_t seen = used_s_.load(std::memory_order_relaxed);
    while (seconds > seen && !used_s_.compare_exchange_weak(seen, seconds, std::memory_order_relaxed)) {
    }
  }
  int64_t persisted_used_ms() const { return at(persisted_s_.load(std::memory_order_relaxed)); }
  void persisted(int64_t used_ms) { persisted_s_.store(after(used_ms), std::memory_order_relaxed); }

  std::string_view label() const { return {extras_.get(), label_size_}; }
  std::string_view source() const { return {extras_.get() + label_size_, source_size_}; }
  // When the session stops working: its absolute expiry, or idle_ms after its last use.
  int64_t expiry(int64_t idle_ms) const {
    int64_t idle = last_used_ms() + idle_ms;
    return idle < expires_ms ? idle : expires_ms;
  }
  bool valid(int64_t now, int64_t idle_ms) const {
    return !ended.load(std::memory_order_acquire) && now < expiry(idle_ms);
  }
  // The same, given a coarse reading of the wall clock (accounts/clock.hpp): the check on every
  // WHOAMI, which reads the exact clock only near the expiry.
  bool valid_coarse(int64_t coarse_now, int64_t idle_ms) const {
    return !ended.load(std::memory_order_acquire) && deadline_ahead(expiry(idle_ms), coarse_now, now_ms);
  }

 private:
  friend class SessionRef;
  friend class SessionIndex;
  Session(Uuid id, const TokenDigest& digest, std::shared_ptr<Account> account, int64_t created_ms,
          int64_t expires_ms, int64_t last_used_ms, std::string_view label, std::string_view source);
  void retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  int64_t at(uint32_t seconds_after) const { return created_ms + int64_t{seconds_after} * 1000; }
  uint32_t after(int64_t ms) const {
    int64_t s = (ms - created_ms) / 1000;
    return s <= 0 ? 0 : s >= int64_t{UINT32_MAX} ? UINT32_MAX : static_cast<uint32_t>(s);
  }
  std::atomic<uint32_t> refs_{0};
  std::atomic<uint32_t> persisted_s_;
  // Label and source side by side in one block, allocated only when there is either (the
  // protocol bounds them to 128 and 64 bytes).
  std::unique_ptr<char[]> extras_;
};

// A counted reference to a Session. The count lives in the session (4 bytes in its padding),
// where a shared_ptr would add a 16-byte control block and make every reference twice as big:
// memory per session is what decides how many fit (docs/BENCHMARKS.md).
class SessionRef {
 public:
  SessionRef() = default;
  explicit SessionRef(Session* s) : s_(s) {
    if (s_) s_->retain();
  }
  SessionRef(const SessionRef& other) : SessionRef(other.s_) {}
  SessionRef(SessionRef&& other) noexcept : s_(other.s_) { other.s_ = nullptr; }
  SessionRef& operator=(SessionRef other) noexcept {
    std::swap(s_, other.s_);
    return *this;
  }
  ~SessionRef() {
    if (s_) s_->release();
  }
  Session* operator->() const { return s_; }
  Session& operator*() const { return *s_; }
  Session* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

 private:
  Session* s_ = nullptr;
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
// `digest` is the whole digest of the session's token: memory keeps only its first half.
SessionRow row_of(const Session& session, const TokenDigest& digest);

// The index of live sessions by key, the first half of the token's digest (an RcuTable,
// accounts/rcu_table.hpp: the key is its own hash, readers never lock, and it grows and shrinks one shard at a time). The account's
// actor inserts and erases. The calling thread must hold an IndexThread.
class SessionIndex {
 public:
  SessionIndex();
  ~SessionIndex();
  SessionIndex(const SessionIndex&) = delete;
  SessionIndex& operator=(const SessionIndex&) = delete;

  SessionRef find(const SessionKey& key) const;
  // Calls `use` with the session while RCU keeps it alive, without counting a
  // reference (the check's hot path: no shared write to the session). False when not found.
  template <class Use>
  bool visit(const SessionKey& key, Use&& use) const {
    return visit_impl(key, SessionUse(use));
  }
  // Read-ahead (accounts/read_ahead.cpp): the key's hash, with the slots a lookup probes first
  // on their way into the cache; then, inside an rcu::ReadLock, the session those slots name, or
  // null (a guess: it may not be the one a lookup finds).
  uint64_t read_ahead(const SessionKey& key) const;
  const Session* read_ahead_session(uint64_t hash) const;
  bool insert(SessionRef session);
  void erase(const SessionKey& key);
  size_t size() const;
  // The warm-load's: the slots an insert of this key will write, on their way into the cache;
  // room for about `sessions` before a bulk load (a hint), and after it back to what the sessions
  // in fill (RcuTable::reserve and trim).
  void prefetch_insert(const SessionKey& key) const;
  void reserve(size_t sessions);
  void trim();

  // Where a sweep stopped: each visit() looks at no more than `max` sessions from there, and a
  // pass that reaches the end starts over at the next visit. Sessions opened or ended meanwhile
  // may be seen once more or not until the next pass (RcuTable::step).
  class Cursor {
   public:
    explicit Cursor(SessionIndex& index);
    ~Cursor();
    void visit(size_t max, const std::function<void(const SessionRef&)>& each);

   private:
    struct State;
    std::unique_ptr<State> state_;
  };

 private:
  using SessionUse = FunctionRef<void(Session&)>;
  bool visit_impl(const SessionKey& key, SessionUse use) const;
  struct Set;
  static void retain(Session* s);
  static void release(Session* s);
  std::unique_ptr<Set> set_;
};

}  // namespace accounts
