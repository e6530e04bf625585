#pragma once
// The account commands. Each method validates its arguments, finds the account through the
// index, and runs the change inside the account's actor; reads (GET, FIND) take the committed
// record without going through the actor. Every method returns the reply line.
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "accounts/account.hpp"
#include "accounts/durability.hpp"
#include "accounts/follow.hpp"
#include "accounts/index.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/log_limiter.hpp"
#include "accounts/password_pool.hpp"
#include "accounts/throttle.hpp"
#include "protocol/reply.hpp"

namespace accounts {

struct Settings {
  uint32_t min_password_length = 8;
  int64_t confirm_token_ttl_s = 86400;
  int64_t reset_token_ttl_s = 3600;
  uint32_t lockout_threshold = 5;
  int64_t lockout_window_s = 900;
  uint32_t lockout_hourly_limit = 50;
  // Failed logins from one address (IPv6: one /64), across all accounts, within lockout_window_s
  // before LOGIN, LOGIN_SESSION and CHANGE_PASSWORD from that address answer LOCKED, for every
  // account, for lockout_window_s. Only when the backend passes the address (source).
  uint32_t address_failures = 100;
  size_t address_throttles = 65536;  // addresses tracked at once; the least recently seen go first
  size_t unknown_email_throttles = 65536;  // emails of no account whose failed logins are tracked
  HashParams hash{2, 65536};
  unsigned hash_workers = 1;
  size_t hash_max_queue = 1024;
  std::chrono::milliseconds write_timeout{5000};  // a change not durable by then answers UNAVAILABLE
  int64_t session_lifetime_s = 30 * 86400;  // absolute
  int64_t session_idle_s = 7 * 86400;       // sliding
  uint32_t sessions_per_account = 20;       // beyond it, opening one ends the oldest
};

struct Counts {
  int64_t unconfirmed = 0;
  int64_t active = 0;
  int64_t deactivated = 0;
  int64_t total() const { return unconfirmed + active + deactivated; }
};

class AccountService {
 public:
  AccountService(Settings settings, asio::any_io_executor executor, Durability& durability);
  // The calling thread must hold an IndexThread (it walks the sessions).
  ~AccountService();

  using Reply = protocol::Reply;
  asio::awaitable<Reply> register_account(std::string email, std::string password);
  asio::awaitable<Reply> confirm(std::string id, std::string token);
  asio::awaitable<Reply> resend(std::string id);
  // `source` is the end user's address as the backend saw it ("" when not given).
  asio::awaitable<Reply> login(std::string email, std::string password, std::string source);
  // The reads never wait (for an actor, a lock or the database): they answer on the caller's
  // thread, without a coroutine of their own (docs/ARCHITECTURE.md, "How a request travels").
  Reply get(std::string_view id);
  Reply find(std::string_view email);
  asio::awaitable<Reply> change_email(std::string id, std::string new_email);
  // `keep_session`: the session (id) that made the change survives it; "" = none does.
  asio::awaitable<Reply> change_password(std::string id, std::string old_password, std::string new_password,
                                         std::string source, std::string keep_session);
  asio::awaitable<Reply> reset_request(std::string email);
  asio::awaitable<Reply> reset_password(std::string id, std::string token, std::string new_password);
  asio::awaitable<Reply> deactivate(std::string id);
  asio::awaitable<Reply> reactivate(std::string id);
  asio::awaitable<Reply> remove(std::string id);

  // Read-ahead for a pipelined batch (read_ahead.cpp): the daemon shows the service the GET, FIND
  // and WHOAMI lines of a batch before it runs the first, so that their cache misses overlap. They
  // change nothing and decide nothing; a request that is not what it seems only costs a fetch.
  void read_ahead_get(std::string_view id_text) const;
  void read_ahead_find(std::string_view email) const;
  void read_ahead_whoami(std::string_view token) const;

  // Sessions (sessions_family.cpp).
  asio::awaitable<Reply> login_session(std::string email, std::string password, std::string source, std::string label);
  Reply whoami(std::string_view token);  // a read, like get()
  asio::awaitable<Reply> logout(std::string token);
  asio::awaitable<Reply> logout_all(std::string id, std::string keep);
  asio::awaitable<Reply> list_sessions(std::string id);
  // One tick of the expiry sweep: looks at no more than `max` sessions, ends the expired ones
  // (through their accounts' actors) and writes the last use of those that moved by a quarter of
  // the idle timeout since it was last written. Any thread holding an IndexThread.
  void sweep_sessions(SessionIndex::Cursor& cursor, size_t max);
  SessionIndex& session_index() { return sessions_; }
  size_t session_count() const { return sessions_.size(); }

  Counts counts() const;
  const PasswordPool& password_pool() const { return pool_; }
  uint64_t lockouts() const { return lockouts_.load(std::memory_order_relaxed); }  // sources locked out so far
  size_t address_throttles() const { return addresses_.size(); }  // addresses with failed logins tracked
  int64_t accounts_in_doubt() const { return in_doubt_.load(std::memory_order_relaxed); }  // accounts in doubt now

  // Warm-load, before any account command is served. adopt() puts a committed record in the index;
  // several threads may call it at once, each holding an IndexThread. It throws, naming the
  // account, on a duplicate id or email. Then adopt_sessions() does the same for each stored
  // session, once every account is in: it throws, naming the session, when its account is not
  // loaded or its token digest is another session's too.
  // expect_accounts() comes first with the number of accounts expected (a hint, 0 for none),
  // accounts_adopted() once they are all in; expect_sessions() and sessions_adopted() the same
  // for the sessions.
  void expect_accounts(uint64_t accounts) { index_->reserve(accounts); }
  void accounts_adopted() { index_->trim(); }
  void expect_sessions(uint64_t sessions);
  void sessions_adopted() { sessions_.trim(); }
  // Both take rows a few at a time (up to kAdoptBatch), whose index slots they fetch at once.
  static constexpr size_t kAdoptBatch = 16;
  void adopt(std::span<AccountRecord> records);
  void adopt_sessions(std::span<SessionRow> rows);
  // Sessions opened before schema 5 are keyed by their token's BLAKE2b digest, newer ones by its
  // SHA-256 (secrets.hpp). When the warm-load found any of the old kind, a token that SHA-256
  // does not find is looked up by BLAKE2b too, until a restart after the last of them ended.
  void legacy_session_digests() { legacy_session_digests_.store(true, std::memory_order_relaxed); }

  // Replication (follow.cpp). A replica's accounts change only through apply(), on the follower's
  // thread, which is then their only writer: it makes memory agree with the unit (the database at
  // one change-log position), and GET, FIND and WHOAMI see memory before the unit or after it,
  // never half-way. Throws, naming the account and why, when memory cannot take the unit; the
  // follower then reloads everything. Its thread holds an IndexThread.
  void apply(FollowUnit&& unit);
  // A read-only node (a replica) writes nothing: LOGIN skips the re-hash, and the sweep is off.
  void set_read_only(bool on) { read_only_.store(on, std::memory_order_release); }
  // Idle time across nodes. On a replica the sweep ends nothing and writes nothing; the last uses
  // of sessions checked there go to `forward` instead (set before the sweep starts), and the
  // primary takes them in with take_touches() (any thread holding an IndexThread), moving a
  // session's last use forward only; its own sweep then writes it as usual.
  using Touches = std::vector<std::pair<SessionKey, int64_t>>;
  void set_touch_forwarder(std::function<void(Touches)> forward) { forward_touches_ = std::move(forward); }
  void take_touches(const Touches& touches);
  bool read_only() const { return read_only_.load(std::memory_order_acquire); }

 private:
  struct Target {  // an account found by id, or the reply that says why not
    std::shared_ptr<Account> account;
    std::optional<Reply> error;
  };
  Target find_by_id(std::string_view id_text) const;
  // Read-ahead (read_ahead.cpp): the first lookup of a batch walks the rest of its chains, and a
  // WHOAMI takes its token's digest from there when the batch computed it.
  void settle_read_ahead() const;
  TokenDigest token_digest(std::string_view token) const;
  // The session `token` names (SHA-256, then BLAKE2b while legacy_session_digests_): calls `use`
  // with it as SessionIndex::visit does; false when there is none.
  template <class Use>
  bool visit_session(std::string_view token, const TokenDigest& digest, Use&& use) const {
    if (sessions_.visit(session_key(digest), use)) return true;
    return legacy_session_digests_.load(std::memory_order_relaxed) && sessions_.visit(session_key(digest_token(token)), use);
  }
  SessionRef find_session(std::string_view token) const;
  // Runs `read` until no apply() overlapped it (a seqlock: on a primary, two loads).
  template <class Read>
  auto consistent(Read&& read) const {
    while (true) {
      uint64_t before = apply_seq_.load(std::memory_order_acquire);
      if (before & 1) {
        std::this_thread::yield();
        continue;
      }
      auto result = read();
      std::atomic_thread_fence(std::memory_order_acquire);
      if (apply_seq_.load(std::memory_order_relaxed) == before) return result;
    }
  }
  // Makes `a`'s sessions those of `rows` (the follower, under the account's lock).
  void reconcile_sessions(Account& a, const std::vector<const SessionRow*>& rows);
  asio::awaitable<Reply> move_state(std::string id, Action action);

  // nullopt: the pool is full, or Argon2's work area could not be mapped (out of memory); the
  // request answers BUSY, and a verification that could not run is no failed login.
  asio::awaitable<std::optional<std::string>> hash_on_pool(std::string password);
  asio::awaitable<std::optional<bool>> verify_on_pool(std::string hash, std::string password);
  // Verifies a presented password against the account's hash so that the time taken says nothing:
  // an over-long password costs a dummy verification and fails, and a hash stored at other
  // parameters than the current ones costs a dummy verification on top when it fails (a success
  // re-hashes instead). nullopt: as for verify_on_pool (BUSY).
  asio::awaitable<std::optional<bool>> verify_presented(const std::string& hash, const std::string& password);
  // LOGIN for an email that belongs to no account: the same throttle, the same cost, the same replies.
  asio::awaitable<Reply> login_unknown(const std::string& email, const std::string& password, SourceKey source);
  // Inside the actor: the throttle's verdict for `from`, then `password` against the account's
  // hash, a wrong one counted as a failed login. nullopt: the password is right.
  asio::awaitable<std::optional<Reply>> check_presented(Account& a, std::string stored_hash, const std::string& password,
                                                        SourceKey from);
  // Inside the actor: everything LOGIN checks (throttle, password, re-hash, state). nullopt: the
  // login succeeded; otherwise the reply that refuses it.
  // `record` is the account's committed record as the login found it.
  asio::awaitable<std::optional<Reply>> check_login(Account& a, const AccountRecord& record, const std::string& password,
                                                    SourceKey from);
  // LOGIN's whole path, then `then` inside the actor once the login succeeded (LOGIN: the view;
  // LOGIN_SESSION: a new session).
  using OnLogin = std::function<asio::awaitable<Reply>(Account&, const AccountRecord&)>;
  asio::awaitable<Reply> login_and(std::string email, std::string password, std::string source, OnLogin then);
  // Inside the actor, once the change that ends them committed: the sessions named stop working.
  void end_sessions(Account& a, const std::vector<Uuid>& ids);
  // The ids of `a`'s sessions, but `keep` (which may name none of them).
  static std::vector<Uuid> session_ids(const Account& a, const std::optional<Uuid>& keep = std::nullopt);
  asio::awaitable<Reply> end_expired(Account& a, std::vector<Uuid> ids);
  asio::awaitable<Reply> open_session(Account& a, const std::string& source, const std::string& label);
  ThrottlePolicy throttle_policy() const;

  // What to do inside the actor once a change's fate is known (committed or not).
  using Settle = std::function<void(Account&, bool committed)>;
  // Makes `change` durable and runs settle() in the actor with the outcome. True when committed
  // within write_timeout. Otherwise false (reply UNAVAILABLE): the account stays in doubt and
  // settle() runs later, when the database answers, so memory ends up agreeing with it.
  asio::awaitable<bool> persist(Account& account, Change change, Settle settle);
  // Persists `next` as the account's new state (version+1) and publishes it once committed;
  // `also` runs after that with the outcome. `action` says which pending tokens the change ends
  // (token_effect). False: answer UNAVAILABLE.
  asio::awaitable<bool> commit(Account& account, Action action, AccountRecord next, Settle also = {},
                               std::vector<Uuid> end = {});
  void count(std::optional<State> before, std::optional<State> after);
  std::optional<Reply> check_password(const std::string& password) const;
  // A source over 64 bytes is refused; an address over its failed-login limit answers LOCKED.
  std::optional<Reply> check_source(const std::string& source) const;
  // A wrong password from `from`: counts it for the account and for the address; true when either
  // locks out now.
  bool count_failure(LoginThrottle& throttle, SourceKey from);

  Settings settings_;
  asio::any_io_executor executor_;
  Durability& durability_;
  std::unique_ptr<AccountIndex> index_;
  PasswordPool pool_;
  std::string dummy_hash_;  // verified against for unknown emails, so they cost what a real login does
  UnknownEmailThrottles unknown_;
  AddressThrottles addresses_;
  std::atomic<int64_t> unconfirmed_{0}, active_{0}, deactivated_{0};
  std::atomic<uint64_t> lockouts_{0};
  std::atomic<int64_t> in_doubt_{0};
  std::atomic<uint64_t> apply_seq_{0};  // odd while apply() runs
  std::atomic<bool> read_only_{false};
  std::atomic<bool> legacy_session_digests_{false};
  // A machine out of memory fails every hash at once, as fast as requests come: one log line for
  // each would let any client grow the log without bound.
  LogLimiter hash_failure_log_{5};
  std::function<void(Touches)> forward_touches_;
  SessionIndex sessions_;
};

}  // namespace accounts
