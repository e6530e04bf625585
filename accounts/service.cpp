#include "accounts/service.hpp"

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
  if (!pending.present() || !same_digest(pending.digest, digest_token(token)))
    return Reply::error(Error::invalid_token, "token does not match");
  if (now >= pending.expires_ms) return Reply::error(Error::token_expired, "token has expired");
  return std::nullopt;
}

PendingToken pending_token(const std::string& token, int64_t now, int64_t ttl_s) {
  return PendingToken{digest_token(token), now + ttl_s * 1000};
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
      index_(settings.expected_accounts),
      pool_(settings.hash_workers, settings.hash_max_queue),
      dummy_hash_(hash_password("accountsd: no such account", settings.hash)) {}

AccountService::Target AccountService::find_by_id(const std::string& id_text) const {
  auto id = Uuid::parse(id_text);
  if (!id) return {nullptr, Reply::error(Error::bad_request, "malformed account id")};
  auto account = index_.by_id(*id);
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

asio::awaitable<bool> AccountService::persist(Change change) {
  auto start = [this, change = std::move(change)](Completion<bool> done) mutable {
    durability_.persist(std::move(change), std::move(done));
  };
  co_return co_await suspend_until<bool>(std::move(start));
}

asio::awaitable<bool> AccountService::commit(Account& account, AccountRecord next) {
  next.version = account.record().version + 1;
  next.updated_ms = now_ms();
  Change change{false, next};
  if (!co_await persist(std::move(change))) co_return false;
  count(account.record().state, next.state);
  account.publish(std::move(next));
  co_return true;
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
  if (!index_.reserve_email(account->record().email, account))
    co_return Reply::error(Error::email_taken, "email is already registered");

  Account::Job job = [this, password = std::move(password)](Account& a) -> asio::awaitable<Reply> {
    auto give_up = [this, &a](Reply why) {
      a.publish_presence(Account::Presence::deleted);
      index_.erase_email(a.record().email);
      return why;
    };
    auto hash = co_await hash_on_pool(password);
    if (!hash) co_return give_up(busy());

    AccountRecord next = a.record();
    int64_t now = now_ms();
    std::string token = new_token();
    next.password_hash = std::move(*hash);
    next.created_ms = next.updated_ms = now;
    next.version = 1;
    next.confirm = pending_token(token, now, settings_.confirm_token_ttl_s);
    Change change{false, next};
    if (!co_await persist(std::move(change))) co_return give_up(unavailable());

    index_.insert_id(next.id, a.shared_from_this());
    count(std::nullopt, next.state);
    a.publish(std::move(next));
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
    if (a.presence() != Account::Presence::live) co_return not_found();
    const AccountRecord& current = a.record();
    auto t = transition(current.state, Action::confirm, current.confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, current.state);
    int64_t now = now_ms();
    if (auto bad = check_token(current.confirm, token, now)) co_return *bad;
    AccountRecord next = current;
    next.state = t.next;
    next.confirm = {};
    next.confirmed_ms = now;
    if (!co_await commit(a, std::move(next))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::resend(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live) co_return not_found();
    auto t = transition(a.record().state, Action::resend, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    std::string token = new_token();
    AccountRecord next = a.record();
    next.confirm = pending_token(token, now_ms(), settings_.confirm_token_ttl_s);
    if (!co_await commit(a, std::move(next))) co_return unavailable();
    auto reply = Reply::ok().field("id", a.record().id.to_string());
    reply.field("token", token);
    co_return reply;
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

Reply AccountService::note_failed_login(Account& a) {
  auto& throttle = a.throttle();
  int64_t now = now_ms();
  int64_t window_ms = settings_.lockout_window_s * 1000;
  if (throttle.failures == 0 || now - throttle.streak_start_ms > window_ms) {
    throttle.failures = 0;
    throttle.streak_start_ms = now;
  }
  if (++throttle.failures >= settings_.lockout_threshold) {
    throttle.failures = 0;
    throttle.locked_until_ms = now + window_ms;
  }
  return invalid_credentials();
}

asio::awaitable<Reply> AccountService::login(std::string email, std::string password) {
  auto checked = check_email(email);
  std::shared_ptr<Account> account;
  if (checked.normalized && password.size() <= 1024) account = index_.by_email(*checked.normalized);
  if (!account) {
    // Unknown addresses cost a verification too, so that timing does not tell them apart.
    if (!co_await verify_on_pool(dummy_hash_, password.substr(0, 1024))) co_return busy();
    co_return invalid_credentials();
  }
  Account::Job job = [this, email = *checked.normalized,
                                             password = std::move(password)](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live || a.record().email != email) {
      if (!co_await verify_on_pool(dummy_hash_, password)) co_return busy();
      co_return invalid_credentials();
    }
    auto& throttle = a.throttle();
    int64_t now = now_ms();
    if (throttle.locked_until_ms > now) {
      int64_t seconds = (throttle.locked_until_ms - now + 999) / 1000;
      co_return Reply::error(Error::locked, "too many failed logins; retry in " + std::to_string(seconds) + " s");
    }
    throttle.locked_until_ms = 0;

    auto verified = co_await verify_on_pool(a.record().password_hash, password);
    if (!verified) co_return busy();
    if (!*verified) co_return note_failed_login(a);
    throttle = {};

    auto t = transition(a.record().state, Action::login, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);

    if (needs_rehash(a.record().password_hash, settings_.hash)) {
      // The hash settings changed since this password was stored: upgrade it now that we know it.
      if (auto fresh = co_await hash_on_pool(password)) {
        AccountRecord next = a.record();
        next.password_hash = std::move(*fresh);
        if (!co_await commit(a, std::move(next))) co_return unavailable();
      }
    }
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
  auto account = index_.by_email(*checked.normalized);
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
    if (a.presence() != Account::Presence::live) co_return not_found();
    if (a.record().email == email) co_return view_of(a.record());
    if (!index_.reserve_email(email, a.shared_from_this()))
      co_return Reply::error(Error::email_taken, "email is already registered");
    std::string old_email = a.record().email;
    AccountRecord next = a.record();
    next.email = email;
    if (!co_await commit(a, std::move(next))) {
      index_.erase_email(email);
      co_return unavailable();
    }
    index_.erase_email(old_email);
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::change_password(std::string id, std::string old_password,
                                                       std::string new_password) {
  if (auto bad = check_password(new_password)) co_return *bad;
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, old_password = std::move(old_password),
                                                    new_password = std::move(new_password)](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live) co_return not_found();
    if (old_password.size() > 1024) co_return invalid_credentials();
    auto verified = co_await verify_on_pool(a.record().password_hash, old_password);
    if (!verified) co_return busy();
    if (!*verified) co_return invalid_credentials();
    auto hash = co_await hash_on_pool(new_password);
    if (!hash) co_return busy();
    AccountRecord next = a.record();
    next.password_hash = std::move(*hash);
    if (!co_await commit(a, std::move(next))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::reset_request(std::string email) {
  auto checked = check_email(email);
  if (!checked.normalized) co_return Reply::error(Error::not_found, "not a valid email: " + checked.problem);
  auto account = index_.by_email(*checked.normalized);
  if (!account) co_return not_found();
  Account::Job job = [this, email = *checked.normalized](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live || a.record().email != email) co_return not_found();
    auto t = transition(a.record().state, Action::reset_request, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    std::string token = new_token();
    AccountRecord next = a.record();
    next.reset = pending_token(token, now_ms(), settings_.reset_token_ttl_s);
    if (!co_await commit(a, std::move(next))) co_return unavailable();
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
    if (a.presence() != Account::Presence::live) co_return not_found();
    auto t = transition(a.record().state, Action::reset_password, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    if (auto bad = check_token(a.record().reset, token, now_ms())) co_return *bad;
    auto hash = co_await hash_on_pool(new_password);
    if (!hash) co_return busy();
    AccountRecord next = a.record();
    next.password_hash = std::move(*hash);
    next.reset = {};
    if (!co_await commit(a, std::move(next))) co_return unavailable();
    a.throttle() = {};  // a reset proves control of the mailbox: lift any lockout
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::deactivate(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live) co_return not_found();
    auto t = transition(a.record().state, Action::deactivate, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    AccountRecord next = a.record();
    next.state = t.next;
    next.reset = {};  // a deactivated account cannot be reset into use
    if (!co_await commit(a, std::move(next))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::reactivate(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live) co_return not_found();
    auto t = transition(a.record().state, Action::reactivate, a.record().confirmed_ms != 0);
    if (!t.allowed) co_return refused(t, a.record().state);
    AccountRecord next = a.record();
    next.state = t.next;
    if (!co_await commit(a, std::move(next))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

asio::awaitable<Reply> AccountService::remove(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (a.presence() != Account::Presence::live) co_return not_found();
    AccountRecord last = a.record();
    last.version += 1;
    last.updated_ms = now_ms();
    Change removal{true, last};
    if (!co_await persist(std::move(removal))) co_return unavailable();
    count(a.record().state, std::nullopt);
    a.publish_presence(Account::Presence::deleted);
    index_.erase_id(last.id);
    index_.erase_email(last.email);
    co_return Reply::ok().field("id", last.id.to_string());
  };
  co_return co_await target.account->ask(executor_, std::move(job));
}

}  // namespace accounts
