#pragma once
// One account: its committed record, which any thread may read at any time, and the actor that
// changes it. The actor is a mailbox plus a coroutine that exists only while there is mail: an
// idle account costs its data and nothing else (no coroutine frame, no thread, no timer).
// Includes Asio: keep it out of headers that everything includes.
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <atomic>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "accounts/completion.hpp"
#include "accounts/index_entry.hpp"
#include "accounts/record.hpp"
#include "accounts/session.hpp"
#include "accounts/spin_lock.hpp"
#include "accounts/throttle.hpp"

namespace accounts {

// A new strand on the event loop that `near` runs on (near may be a strand of that loop itself).
asio::any_io_executor actor_strand(const asio::any_io_executor& near);

// An account is also its own entry in the id index (IdIndexEntry): no separate node per account.
class Account : public std::enable_shared_from_this<Account>, public IdIndexEntry {
 public:
  // pending: registration not yet committed; deleted: gone, but someone may still hold a pointer.
  enum class Presence : uint8_t { pending, live, deleted };

  Account(AccountRecord record, Presence presence);
  ~Account();

  // Any thread: adds the committed record's view (add_view) to `reply` and returns true, unless
  // the account is not live, or `only_if_email` is given and is not its email. Copies nothing
  // but the fields shown: this is the read path.
  bool add_view_to(protocol::Reply& reply, std::string_view only_if_email = {}) const;

  // A job runs inside this account's actor, after every job sent before it, one at a time. It may
  // co_await (password pool, durability); ask() resumes the caller with the job's reply. An actor
  // that ask() wakes runs on the caller's event loop (actor_strand): a request's hops stay on its
  // connection's thread unless another thread's request woke the actor first.
  using Job = UniqueFunction<asio::awaitable<protocol::Reply>(Account&)>;
  asio::awaitable<protocol::Reply> ask(Job job);
  // The same without waiting for the reply; an actor this wakes runs on `executor`'s loop.
  void tell(const asio::any_io_executor& executor, Job job);

  // Any thread: the account's id, fixed at construction (publish never rewrites it), read without
  // the lock. The id index is keyed by it.
  const Uuid& id() const { return record_.id; }
  // Actor only: the committed record and presence, read without the lock (only the actor writes).
  const AccountRecord& record() const { return record_; }
  Presence presence() const { return presence_; }
  // Any thread: a copy of the presence and committed record, taken under the lock.
  std::pair<Presence, AccountRecord> committed() const;
  // Actor only: makes `next` the committed record that readers see from now on. `next` has the
  // account's id.
  void publish(AccountRecord next, Presence presence = Presence::live);
  void publish_presence(Presence presence);

  // Actor only: a change was sent to the database but its outcome is not known yet (the write
  // timed out). Until it is, further changes answer UNAVAILABLE; reads and logins carry on.
  bool in_doubt() const { return in_doubt_; }
  void set_in_doubt(bool in_doubt) { in_doubt_ = in_doubt; }

  // Actor only: failed-login throttling; it lives in memory and is never persisted. Most accounts
  // never fail a login or give a source: the throttle is allocated on first use.
  LoginThrottle& throttle() {
    Extras& e = extras();
    if (!e.throttle) e.throttle = std::make_unique<LoginThrottle>();
    return *e.throttle;
  }
  LoginThrottle* existing_throttle() const {
    const Extras* e = existing_extras();
    return e ? e->throttle.get() : nullptr;
  }

  // Actor only (and the warm-load before serving): the account's open sessions, oldest first.
  using Sessions = std::vector<SessionRef>;
  Sessions& sessions() { return extras().sessions; }
  const Sessions* existing_sessions() const {
    const Extras* e = existing_extras();
    return e && !e->sessions.empty() ? &e->sessions : nullptr;
  }
  // Any thread: a copy of the list, under the lock. And the replica's follower, which is the only
  // writer of a replica's accounts, replaces the list under the lock, so that an actor listing
  // the sessions meanwhile sees one list or the other.
  Sessions sessions_copy() const;
  void replace_sessions(Sessions sessions);
  // Warm-load only, from any parser thread (under the lock): puts a stored session in the list in
  // order of creation, growing a short list by exactly one slot (no slack in lists that live long).
  void adopt_session(SessionRef session);

 private:
  struct Message;
  struct Mailbox;
  // What most accounts never have (a throttle, sessions) in one box allocated on first use, so that
  // an account without them pays one pointer for both. Set once, under the lock (on a replica the
  // actor and the follower may both be first), and kept until the account goes.
  struct Extras {
    std::unique_ptr<LoginThrottle> throttle;
    Sessions sessions;
  };
  Extras& extras();
  const Extras* existing_extras() const { return extras_.load(std::memory_order_acquire); }
  void enqueue(std::unique_ptr<Message> message, const asio::any_io_executor& executor);
  std::unique_ptr<Message> next_message();
  static asio::awaitable<void> drain(std::shared_ptr<Account> self);

  mutable SpinLock lock_;  // guards record_ and presence_ against readers, and the mailbox
  bool running_ = false;   // a drain coroutine exists
  bool in_doubt_ = false;
  Presence presence_;
  AccountRecord record_;
  std::atomic<Extras*> extras_{nullptr};  // owned
  // The mail waiting for the actor; allocated while there is any (an idle account has none).
  std::unique_ptr<Mailbox> mailbox_;
};

}  // namespace accounts
