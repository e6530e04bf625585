#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/this_coro.hpp>
#include <mutex>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"

namespace accounts {

using protocol::Error;
using Reply = protocol::Reply;

namespace {

Reply view_of(const AccountRecord& record) {
  auto reply = Reply::ok();
  add_view(reply, record);
  return reply;
}

Reply not_found() { return Reply::error(Error::not_found, "no such account"); }
Reply busy() { return Reply::error(Error::busy, "password workers are saturated; retry later"); }
Reply invalid_credentials() { return Reply::error(Error::invalid_credentials, "wrong email or password"); }
Reply locked(int64_t wait_ms) {
  return Reply::error(Error::locked, "too many failed logins; retry in " + std::to_string((wait_ms + 999) / 1000) + " s");
}
Reply unavailable() {
  return Reply::error(Error::unavailable, "the change could not be made durable in time; it may or may not be stored");
}

Reply refused(const Transition& t, State state) {
  switch (t.error) {
    case Error::not_confirmed: return Reply::error(t.error, "account is not confirmed yet");
    case Error::deactivated: return Reply::error(t.error, "account is deactivated");
    default: return Reply::error(t.error, "account is " + std::string(state_name(state)));
  }
}

// Checks a presented token against the pending one: wrong before expired, so that a guess
// learns nothing about whether a token is pending.
std::optional<Reply> check_token(const PendingToken& pending, const std::string& token, int64_t now) {
  if (!pending.present() || !same_digest(pending.digest(), digest_token(token)))
    return Reply::error(Error::invalid_token, "token does not match");
  if (now >= pending.expires_ms()) return Reply::error(Error::token_expired, "token has expired");
  return std::nullopt;
}

PendingToken pending_token(const std::string& token, int64_t now, int64_t ttl_s) {
  return PendingToken{digest_token(token), now + ttl_s * 1000};
}

Reply in_doubt() {
  return Reply::error(Error::unavailable, "an earlier change to this account is still being written; retry later");
}

// The answer for a job that finds its account gone or with a change still in doubt.
std::optional<Reply> unchangeable(const Account& a) {
  if (a.presence() != Account::Presence::live) return not_found();
  if (a.in_doubt()) return in_doubt();
  return std::nullopt;
}

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

struct AccountService::Target {
  std::shared_ptr<Account> account;
  std::optional<Reply> error;
};

AccountService::AccountService(Settings settings, asio::any_io_executor executor, Durability& durability)
    : settings_(settings),
      executor_(std::move(executor)),
      durability_(durability),
      index_(std::make_unique<AccountIndex>(settings.expected_accounts)),
      pool_(settings.hash_workers, settings.hash_max_queue),
      dummy_hash_(hash_password("accountsd: no such account", settings.hash)),
      unknown_(settings.unknown_email_throttles) {}

AccountService::Target AccountService::find_by_id(const std::string& id_text) const {
  auto id = Uuid::parse(id_text);
  if (!id) return {nullptr, Reply::error(Error::bad_request, "malformed account id")};
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
      if (run) hash = hash_password(password, settings_.hash);
      done(std::move(hash));
    };
    if (!pool_.try_submit(work)) work(false);
  };
  co_return co_await suspend_until<std::optional<std::string>>(std::move(start));
}

asio::awaitable<std::optional<bool>> AccountService::verify_on_pool(std::string hash, std::string password) {
  auto start = [this, hash = std::move(hash), password = std::move(password)](Completion<std::optional<bool>> done) mutable {
    PasswordPool::Work work = [hash = std::move(hash), password = std::move(password), done = std::move(done)](bool run) mutable {
      std::optional<bool> verified;
      if (run) verified = verify_password(hash, password);
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
  spdlog::warn("account {}: change not durable within {} ms; answering UNAVAILABLE until the database answers",
               account.record().id.to_string(), settings_.write_timeout.count());
  UniqueFunction<void(bool)> late = [this, self = account.shared_from_this(), settle = std::move(settle)](bool committed) {
    Account::Job job = [settle, committed](Account& a) -> asio::awaitable<Reply> {
      settle(a, committed);
      a.set_in_doubt(false);
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

asio::awaitable<bool> AccountService::commit(Account& account, Action action, AccountRecord next, Settle also) {
  drop_invalidated_tokens(action, next);
  next.version = account.record().version + 1;
  next.updated_ms = now_ms();
  Change change{false, next};
  Settle settle = [this, next = std::move(next), also = std::move(also)](Account& a, bool committed) {
    if (committed) {
      count(a.record().state, next.state);
      a.publish(next);
    }
    if (also) also(a, committed);
  };
  co_return co_await persist(account, std::move(change), std::move(settle));
}

void AccountService::stage(AccountRecord&& record) {
  staged_.push_back(std::make_shared<Account>(std::move(record), Account::Presence::live));
}

void AccountService::install() {
  size_t wanted = staged_.size() + staged_.size() / 4;
  if (wanted > settings_.expected_accounts) index_ = std::make_unique<AccountIndex>(wanted);
  spdlog::info("warm-load: index sized for {} accounts ({} loaded)", std::max(wanted, settings_.expected_accounts),
               staged_.size());
  for (auto& account : staged_) {
    const AccountRecord& r = account->record();
    if (!index_->insert_id(r.id, account)) throw std::runtime_error("account " + r.id.to_string() + ": id loaded twice");
    if (!index_->reserve_email(r.email, account))
      throw std::runtime_error("account " + r.id.to_string() + ": email " + r.email + " is held by another account too");
    count(std::nullopt, r.state);
  }
  staged_.clear();
  staged_.shrink_to_fit();
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

asio::awaitable<Reply> AccountService::register_account(std::string email, std::string password) {
  auto checked = check_email(email);
  if (!checked.normalized) co_return Reply::error(Error::invalid_email, checked.problem);
  if (auto bad = check_password(password)) co_return *bad;

  AccountRecord draft;
  draft.id = Uuid::v7(now_ms());
  draft.email = *checked.normalized;
  auto account = std::make_shared<Account>(std::move(draft), Account::Presence::pending);
  if (!index_->reserve_email(account->record().email, account))
    co_return Reply::error(Error::email_taken, "email is already registered");

  Account::Job job = [this, password = std::move(password)](Account& a) -> asio::awaitable<Reply> {
    auto hash = co_await hash_on_pool(password);
    if (!hash) {
      a.publish_presence(Account::Presence::deleted);
      index_->erase_email(a.record().email);
      co_return busy();
    }

    AccountRecord next = a.record();
    int64_t now = now_ms();
    std::string token = new_token();
    next.password_hash = std::move(*hash);
    next.created_ms = next.updated_ms = now;
    next.version = 1;
    next.confirm = pending_token(token, now, settings_.confirm_token_ttl_s);
    Change change{false, next};
    Settle settle = [this, next](Account& a, bool committed) {
      if (committed) {
        index_->insert_id(next.id, a.shared_from_this());
        count(std::nullopt, next.state);
        a.publish(next);
      } else {  // release the address: the account never existed
        a.publish_presence(Account::Presence::deleted);
        index_->erase_email(next.email);
      }
    };
    if (!co_await persist(a, std::move(change), std::move(settle))) co_return unavailable();
    auto reply = view_of(a.record());
    reply.field("token", token);
    co_return reply;
  };
  co_return co_await account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::confirm(std::string id, std::string token) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, token = std::move(token)](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    const AccountRecord& current = a.record();
    auto t = transition(current.state, Action::confirm, current.confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, current.state);
    int64_t now = now_ms();
    if (auto bad = check_token(current.confirm, token, now)) co_return *bad;
    AccountRecord next = current;
    next.state = t.next;
    next.confirm = {};
    next.confirmed_ms = now;
    if (!co_await commit(a, Action::confirm, std::move(next))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::resend(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    auto t = transition(a.record().state, Action::resend, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    std::string token = new_token();
    AccountRecord next = a.record();
    next.confirm = pending_token(token, now_ms(), settings_.confirm_token_ttl_s);
    if (!co_await commit(a, Action::resend, std::move(next))) co_return unavailable();
    auto reply = Reply::ok().field("id", a.record().id.to_string());
    reply.field("token", token);
    co_return reply;
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

ThrottlePolicy AccountService::throttle_policy() const {
  return ThrottlePolicy{settings_.lockout_threshold, settings_.lockout_window_s * 1000, settings_.lockout_hourly_limit};
}

std::optional<Reply> AccountService::check_source(const std::string& source) const {
  if (source.size() > 64) return Reply::error(Error::bad_request, "source must be at most 64 bytes");
  return std::nullopt;
}

asio::awaitable<std::optional<bool>> AccountService::verify_presented(const std::string& hash,
                                                                      const std::string& password) {
  if (password.size() > 1024) {
    if (!co_await verify_on_pool(dummy_hash_, password.substr(0, 1024))) co_return std::nullopt;
    co_return false;
  }
  auto verified = co_await verify_on_pool(hash, password);
  if (verified && !*verified && needs_rehash(hash, settings_.hash)) {
    if (!co_await verify_on_pool(dummy_hash_, password)) co_return std::nullopt;
  }
  co_return verified;
}

asio::awaitable<Reply> AccountService::login_unknown(const std::string& email, const std::string& password,
                                                     SourceKey source) {
  // An account's LOGIN hops into its actor and back; so does this one, so that even the
  // microseconds of a LOCKED reply are the same for an email of no account.
  co_await asio::post(asio::make_strand(executor_), asio::use_awaitable);
  auto policy = throttle_policy();
  uint64_t key = email_key(email);
  if (int64_t wait = unknown_.wait_ms(policy, key, source, now_ms())) co_return locked(wait);
  if (!co_await verify_on_pool(dummy_hash_, password.substr(0, 1024))) co_return busy();
  unknown_.failed(policy, key, source, now_ms());
  co_return invalid_credentials();
}

asio::awaitable<Reply> AccountService::login(std::string email, std::string password, std::string source) {
  if (auto bad = check_source(source)) co_return *bad;
  SourceKey from = source_key(source);
  auto checked = check_email(email);
  if (!checked.normalized) co_return co_await login_unknown(email, password, from);
  std::shared_ptr<Account> account = index_->by_email(*checked.normalized);
  if (!account) co_return co_await login_unknown(*checked.normalized, password, from);

  Account::Job job = [this, email = *checked.normalized, password = std::move(password),
                      from](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live || a.record().email != email)
      co_return co_await login_unknown(email, password, from);
    auto policy = throttle_policy();
    if (const auto* throttle = a.existing_throttle())
      if (int64_t wait = throttle->wait_ms(policy, from, now_ms())) co_return locked(wait);

    auto verified = co_await verify_presented(a.record().password_hash, password);
    if (!verified) co_return busy();
    if (!*verified) {
      a.throttle().failed(policy, from, now_ms());
      co_return invalid_credentials();
    }
    a.throttle().succeeded(from);

    // The hash settings changed since this password was stored: upgrade it now that we know it,
    // whatever the account's state (so no account keeps an old cost for good). The new hash costs
    // what the dummy verification of a failed attempt costs.
    if (needs_rehash(a.record().password_hash, settings_.hash)) {
      if (a.in_doubt()) {
        if (!co_await verify_on_pool(dummy_hash_, password)) co_return busy();
      } else if (auto fresh = co_await hash_on_pool(password)) {
        AccountRecord next = a.record();
        next.password_hash = std::move(*fresh);
        if (!co_await commit(a, Action::login, std::move(next))) co_return unavailable();
      }
    }
    auto t = transition(a.record().state, Action::login, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    co_return view_of(a.record());
  };
  co_return co_await account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::get(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  auto record = target.account->snapshot();
  if (!record) co_return not_found();
  co_return view_of(*record);
}

asio::awaitable<Reply> AccountService::find(std::string email) {
  auto checked = check_email(email);
  if (!checked.normalized) co_return Reply::error(Error::not_found, "not a valid email: " + checked.problem);
  auto account = index_->by_email(*checked.normalized);
  auto record = account ? account->snapshot() : std::nullopt;
  // The index may point at an account whose move to this address is not committed yet.
  if (!record || record->email != *checked.normalized) co_return not_found();
  co_return view_of(*record);
}

asio::awaitable<Reply> AccountService::change_email(std::string id, std::string new_email) {
  auto checked = check_email(new_email);
  if (!checked.normalized) co_return Reply::error(Error::invalid_email, checked.problem);
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, email = *checked.normalized](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    if (a.record().email == email) co_return view_of(a.record());
    if (!index_->reserve_email(email, a.shared_from_this()))
      co_return Reply::error(Error::email_taken, "email is already registered");
    AccountRecord next = a.record();
    next.email = email;
    // Once the move is durable the old address is free; if it is not, the new one is released.
    Settle release = [this, old_email = a.record().email, email](Account&, bool committed) {
      index_->erase_email(committed ? old_email : email);
    };
    if (!co_await commit(a, Action::change_email, std::move(next), std::move(release))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::change_password(std::string id, std::string old_password,
                                                       std::string new_password, std::string source) {
  if (auto bad = check_source(source)) co_return *bad;
  if (auto bad = check_password(new_password)) co_return *bad;
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, old_password = std::move(old_password), new_password = std::move(new_password),
                      from = source_key(source)](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    // A wrong old password is a failed login: the same throttle, so this is no side door for guessing.
    auto policy = throttle_policy();
    if (const auto* throttle = a.existing_throttle())
      if (int64_t wait = throttle->wait_ms(policy, from, now_ms())) co_return locked(wait);
    auto verified = co_await verify_presented(a.record().password_hash, old_password);
    if (!verified) co_return busy();
    if (!*verified) {
      a.throttle().failed(policy, from, now_ms());
      co_return invalid_credentials();
    }
    auto hash = co_await hash_on_pool(new_password);
    if (!hash) co_return busy();
    AccountRecord next = a.record();
    next.password_hash = std::move(*hash);
    if (!co_await commit(a, Action::change_password, std::move(next))) co_return unavailable();
    a.throttle().password_changed();
    a.throttle().succeeded(from);
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::reset_request(std::string email) {
  auto checked = check_email(email);
  if (!checked.normalized) co_return Reply::error(Error::not_found, "not a valid email: " + checked.problem);
  auto account = index_->by_email(*checked.normalized);
  if (!account) co_return not_found();
  Account::Job job = [this, email = *checked.normalized](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live || a.record().email != email) co_return not_found();
    if (a.in_doubt()) co_return in_doubt();
    auto t = transition(a.record().state, Action::reset_request, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    std::string token = new_token();
    AccountRecord next = a.record();
    next.reset = pending_token(token, now_ms(), settings_.reset_token_ttl_s);
    if (!co_await commit(a, Action::reset_request, std::move(next))) co_return unavailable();
    auto reply = Reply::ok().field("id", a.record().id.to_string());
    reply.field("token", token);
    co_return reply;
  };
  co_return co_await account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::reset_password(std::string id, std::string token, std::string new_password) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  if (auto bad = check_password(new_password)) co_return *bad;
  Account::Job job = [this, token = std::move(token),
                                                    new_password = std::move(new_password)](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    auto t = transition(a.record().state, Action::reset_password, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    if (auto bad = check_token(a.record().reset, token, now_ms())) co_return *bad;
    auto hash = co_await hash_on_pool(new_password);
    if (!hash) co_return busy();
    AccountRecord next = a.record();
    next.password_hash = std::move(*hash);
    if (!co_await commit(a, Action::reset_password, std::move(next))) co_return unavailable();
    // The failures counted so far were guesses at the old password: they say nothing about this one.
    if (auto* throttle = a.existing_throttle()) throttle->password_changed();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::deactivate(std::string id) { return move_state(std::move(id), Action::deactivate); }

asio::awaitable<Reply> AccountService::reactivate(std::string id) { return move_state(std::move(id), Action::reactivate); }

// DEACTIVATE and REACTIVATE: a state change the transition table decides, and nothing else.
asio::awaitable<Reply> AccountService::move_state(std::string id, Action action) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, action](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    auto t = transition(a.record().state, action, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    AccountRecord next = a.record();
    next.state = t.next;
    if (!co_await commit(a, action, std::move(next))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::remove(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    AccountRecord last = a.record();
    last.version += 1;
    last.updated_ms = now_ms();
    Change removal{true, last};
    Settle settle = [this, last](Account& a, bool committed) {
      if (!committed) return;
      count(a.record().state, std::nullopt);
      a.publish_presence(Account::Presence::deleted);
      index_->erase_id(last.id);
      index_->erase_email(last.email);
    };
    if (!co_await persist(a, std::move(removal), std::move(settle))) co_return unavailable();
    co_return Reply::ok().field("id", last.id.to_string());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

}  // namespace accounts
