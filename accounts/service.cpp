// AccountService's shared machinery: finding an account, the password pool, making a change
// durable (persist, commit), the warm-load, and the counts. The commands live in *_family.cpp.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <limits>
#include <mutex>

#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

namespace {

// The fate of one write, handed to whoever waits for it when it arrives: the job itself (within
// write_timeout), or afterwards a late settlement posted into the account's actor.
struct WriteTicket {
  std::mutex mutex;
  std::optional<bool> outcome;
  Completion<std::optional<bool>> waiter;
  UniqueFunction<void(bool)> late;
};

void resolve(const std::shared_ptr<WriteTicket>& ticket, bool committed) {
  std::unique_lock lock(ticket->mutex);
  ticket->outcome = committed;
  if (ticket->waiter) {
    auto waiter = std::move(ticket->waiter);
    lock.unlock();
    waiter(committed);
  } else if (ticket->late) {
    auto late = std::move(ticket->late);
    lock.unlock();
    late(committed);
  }
}

}  // namespace

AccountService::AccountService(Settings settings, asio::any_io_executor executor, Durability& durability)
    : settings_(settings),
      executor_(std::move(executor)),
      durability_(durability),
      index_(std::make_unique<AccountIndex>()),
      pool_(settings.hash_workers, settings.hash_max_queue, static_cast<size_t>(settings.hash.memlimit_kib) * 1024),
      dummy_hash_(unmatchable_hash(settings.hash)),
      unknown_(settings.unknown_email_throttles),
      addresses_(settings.address_throttles, settings.address_failures) {}

AccountService::~AccountService() {
  // An account's list holds its sessions and each session holds its account: empty the lists, or
  // neither would ever be freed. The index's own reference keeps each session alive meanwhile.
  SessionIndex::Cursor cursor(sessions_);
  cursor.visit(std::numeric_limits<size_t>::max(), [](const SessionRef& s) { s->account->replace_sessions({}); });
}

AccountService::Target AccountService::find_by_id(std::string_view id_text) const {
  auto id = Uuid::parse(id_text);
  if (!id) return {nullptr, malformed_id()};
  auto account = index_->by_id(*id);
  if (!account) return {nullptr, not_found()};
  return {std::move(account), std::nullopt};
}

std::optional<Reply> AccountService::check_password(const std::string& password) const {
  if (password.size() < settings_.min_password_length || password.size() > 1024)
    return Reply::error(Error::invalid_password,
                        "password must be " + std::to_string(settings_.min_password_length) + " to 1024 bytes");
  return std::nullopt;
}

asio::awaitable<std::optional<std::string>> AccountService::hash_on_pool(std::string password) {
  auto start = [this, password = std::move(password)](Completion<std::optional<std::string>> done) mutable {
    PasswordPool::Work work = [this, password = std::move(password), done = std::move(done)](bool run) mutable {
      std::optional<std::string> hash;
      try {
        if (run) hash = hash_password(password, settings_.hash);
      } catch (const std::exception& e) {  // out of memory: BUSY, where an escaping throw would end the daemon
        if (uint64_t suppressed = 0; hash_failure_log_.allow(suppressed))
          spdlog::error("password hashing failed: {}{}", e.what(), LogLimiter::not_logged(suppressed, "failures"));
      }
      done(std::move(hash));
    };
    if (!pool_.try_submit(work)) work(false);
  };
  co_return co_await suspend_until<std::optional<std::string>>(std::move(start));
}

asio::awaitable<std::optional<bool>> AccountService::verify_on_pool(std::string hash, std::string password) {
  auto start = [this, hash = std::move(hash), password = std::move(password)](Completion<std::optional<bool>> done) mutable {
    PasswordPool::Work work = [this, hash = std::move(hash), password = std::move(password),
                               done = std::move(done)](bool run) mutable {
      std::optional<bool> verified;
      if (run) {
        verified = verify_password(hash, password);
        if (uint64_t suppressed = 0; !verified && hash_failure_log_.allow(suppressed))
          spdlog::error("password verification failed: the hash could not be computed (no memory for its work "
                        "area?){}", LogLimiter::not_logged(suppressed, "failures"));
      }
      done(verified);
    };
    if (!pool_.try_submit(work)) work(false);
  };
  co_return co_await suspend_until<std::optional<bool>>(std::move(start));
}

asio::awaitable<bool> AccountService::persist(Account& account, Change change, Settle settle) {
  auto ticket = std::make_shared<WriteTicket>();
  durability_.persist(std::move(change), [ticket](bool committed) { resolve(ticket, committed); });

  // Wait for the outcome, but no longer than write_timeout. The timer lives on the actor's strand.
  auto executor = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(executor, settings_.write_timeout);
  auto start = [ticket, timer](Completion<std::optional<bool>> done) mutable {
    std::unique_lock lock(ticket->mutex);
    if (ticket->outcome) {
      bool committed = *ticket->outcome;
      lock.unlock();
      done(committed);
      return;
    }
    ticket->waiter = std::move(done);
    lock.unlock();
    timer->async_wait([ticket](const asio::error_code&) {
      std::unique_lock lock(ticket->mutex);
      if (!ticket->waiter) return;
      auto waiter = std::move(ticket->waiter);
      lock.unlock();
      waiter(std::nullopt);
    });
  };
  std::optional<bool> outcome = co_await suspend_until<std::optional<bool>>(std::move(start));
  timer->cancel();
  if (outcome) {
    settle(account, *outcome);
    co_return *outcome;
  }

  // Timed out: the writer still holds the change and will commit it once it can. Until it says
  // so, this account takes no further change; then the settlement runs inside its actor.
  account.set_in_doubt(true);
  in_doubt_.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("account {}: change not durable within {} ms; answering UNAVAILABLE until the database answers",
               account.record().id.to_string(), settings_.write_timeout.count());
  UniqueFunction<void(bool)> late = [this, self = account.shared_from_this(), settle = std::move(settle)](bool committed) {
    Account::Job job = [this, settle, committed](Account& a) -> asio::awaitable<Reply> {
      settle(a, committed);
      a.set_in_doubt(false);
      in_doubt_.fetch_sub(1, std::memory_order_relaxed);
      spdlog::info("account {}: the delayed change was {}", a.record().id.to_string(),
                   committed ? "committed after all" : "not stored");
      co_return Reply::ok();
    };
    self->tell(executor_, std::move(job));
  };
  std::unique_lock lock(ticket->mutex);
  if (ticket->outcome) {  // it arrived between the timeout and now
    bool committed = *ticket->outcome;
    lock.unlock();
    late(committed);
  } else {
    ticket->late = std::move(late);
  }
  co_return false;
}

asio::awaitable<bool> AccountService::commit(Account& account, Action action, AccountRecord next, Settle also,
                                             std::vector<Uuid> end) {
  drop_invalidated_tokens(action, next);
  next.version = account.record().version + 1;
  next.updated_ms = now_ms();
  Change change{.record = next};
  change.ended = end;
  Settle settle = [this, next = std::move(next), also = std::move(also), end = std::move(end)](Account& a,
                                                                                               bool committed) {
    if (committed) {
      count(a.record().state, next.state);
      a.publish(next);
      end_sessions(a, end);
    }
    if (also) also(a, committed);
  };
  co_return co_await persist(account, std::move(change), std::move(settle));
}

void AccountService::adopt(std::span<AccountRecord> records) {
  // Each insert waits for a slot line and a shard that are nowhere in the cache: fetching them
  // for the whole batch first lets those waits overlap (docs/BENCHMARKS.md, "Warm-load: the
  // index sized from the planner's estimate and filled a batch at a time").
  if (records.size() > kAdoptBatch) throw std::logic_error("adopt: a batch of more than kAdoptBatch records");
  AccountIndex::Hashes hashes[kAdoptBatch];
  for (size_t i = 0; i < records.size(); ++i) hashes[i] = index_->prefetch_insert(records[i].id, records[i].email);
  for (size_t i = 0; i < records.size(); ++i) {
    auto account = std::make_shared<Account>(std::move(records[i]), Account::Presence::live);
    const AccountRecord& r = account->record();
    if (!index_->insert_id(account, hashes[i].id))
      throw std::runtime_error("account " + r.id.to_string() + ": id loaded twice");
    if (!index_->reserve_email(r.email, account, hashes[i].email))
      throw std::runtime_error("account " + r.id.to_string() + ": email " + r.email.str() +
                               " is held by another account too");
    count(std::nullopt, r.state);
  }
}

void AccountService::expect_sessions(uint64_t sessions) {
  // The sessions' estimate is the planner's bare row count, which nothing bounds (the accounts'
  // is capped by the table's size): never more than 8 sessions an account in advance. More than
  // that only means growing on the way, as without a hint.
  sessions_.reserve(std::min<uint64_t>(sessions, 8 * uint64_t{index_->id_count()}));
}

void AccountService::adopt_sessions(std::span<SessionRow> rows) {
  // As in adopt(): the slots of the whole batch first, so that their cache misses overlap.
  if (rows.size() > kAdoptBatch) throw std::logic_error("adopt_sessions: a batch of more than kAdoptBatch rows");
  for (const SessionRow& row : rows) {
    sessions_.prefetch_insert(session_key(row.digest));
    index_->read_ahead_id(row.account);
  }
  for (SessionRow& row : rows) {
    auto account = index_->by_id(row.account);
    if (!account)
      throw std::runtime_error("session " + row.id.to_string() + ": its account " + row.account.to_string() +
                               " does not exist");
    auto session = Session::make(row.id, row.digest, account, row.created_ms, row.expires_ms, row.last_used_ms,
                                 row.label, row.source);
    if (!sessions_.insert(session))
      throw std::runtime_error("session " + row.id.to_string() + ": its token digest (its first half, what memory keeps) is held by another session too");
    account->adopt_session(std::move(session));
  }
}

void AccountService::count(std::optional<State> before, std::optional<State> after) {
  auto counter = [this](State s) -> std::atomic<int64_t>& {
    switch (s) {
      case State::unconfirmed: return unconfirmed_;
      case State::active: return active_;
      case State::deactivated: break;
    }
    return deactivated_;
  };
  if (before) counter(*before).fetch_sub(1, std::memory_order_relaxed);
  if (after) counter(*after).fetch_add(1, std::memory_order_relaxed);
}

Counts AccountService::counts() const {
  return Counts{unconfirmed_.load(std::memory_order_relaxed), active_.load(std::memory_order_relaxed),
                deactivated_.load(std::memory_order_relaxed)};
}

}  // namespace accounts
