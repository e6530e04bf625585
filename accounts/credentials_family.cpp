// The credentials family: LOGIN (with its throttle), CHANGE_PASSWORD, RESET_REQUEST, RESET_PASSWORD.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

ThrottlePolicy AccountService::throttle_policy() const {
  return ThrottlePolicy{settings_.lockout_threshold, settings_.lockout_window_s * 1000, settings_.lockout_hourly_limit};
}

std::optional<Reply> AccountService::check_source(const std::string& source) const {
  if (source.size() > 64) return Reply::error(Error::bad_request, "source must be at most 64 bytes");
  // Credential stuffing: one address failing across many accounts. Answered before any account
  // is looked up, so the reply is the same whether the email exists.
  if (!source.empty())
    if (int64_t wait = addresses_.wait_ms(source_key(source), now_ms())) return address_locked(wait);
  return std::nullopt;
}

bool AccountService::count_failure(LoginThrottle& throttle, SourceKey from) {
  auto policy = throttle_policy();
  int64_t now = now_ms();
  bool locked = throttle.failed(policy, from, now);
  static const SourceKey no_source = source_key("");
  if (from != no_source && addresses_.failed(from, policy.window_ms, now)) locked = true;
  if (locked) lockouts_.fetch_add(1, std::memory_order_relaxed);
  return locked;
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
  co_await asio::post(actor_strand(co_await asio::this_coro::executor), asio::use_awaitable);
  auto policy = throttle_policy();
  uint64_t key = email_key(email);
  if (int64_t wait = unknown_.wait_ms(policy, key, source, now_ms())) co_return locked(wait);
  if (!co_await verify_on_pool(dummy_hash_, password.substr(0, 1024))) co_return busy();
  bool locked = unknown_.failed(policy, key, source, now_ms());
  static const SourceKey no_source = source_key("");
  if (source != no_source && addresses_.failed(source, policy.window_ms, now_ms())) locked = true;
  if (locked) {
    lockouts_.fetch_add(1, std::memory_order_relaxed);
    co_return invalid_credentials_now_locked(policy.window_ms);
  }
  co_return invalid_credentials();
}

asio::awaitable<Reply> AccountService::login(std::string email, std::string password, std::string source) {
  OnLogin view = [](Account&, const AccountRecord& record) -> asio::awaitable<Reply> { co_return view_of(record); };
  co_return co_await login_and(std::move(email), std::move(password), std::move(source), std::move(view));
}

asio::awaitable<Reply> AccountService::login_and(std::string email, std::string password, std::string source,
                                                 OnLogin then) {
  if (auto bad = check_source(source)) co_return *bad;
  SourceKey from = source_key(source);
  auto checked = check_email(email);
  if (!checked.normalized) co_return co_await login_unknown(email, password, from);
  std::shared_ptr<Account> account = index_->by_email(*checked.normalized);
  if (!account) co_return co_await login_unknown(*checked.normalized, password, from);

  Account::Job job = [this, email = *checked.normalized, password = std::move(password), from,
                      then = std::move(then)](Account& a) -> asio::awaitable<Reply> {
    // A copy taken under the account's lock: on a replica the follower, not this actor, changes
    // the record (AccountService::apply), and it may do so while this login waits for the pool.
    auto [presence, record] = a.committed();
    if (presence != Account::Presence::live || record.email != email)
      co_return co_await login_unknown(email, password, from);
    if (auto refusal = co_await check_login(a, record, password, from)) co_return *refusal;
    co_return co_await then(a, a.committed().second);  // after a re-hash, the new version
  };
  co_return co_await account->ask(std::move(job));
}

asio::awaitable<std::optional<Reply>> AccountService::check_presented(Account& a, std::string stored,
                                                                      const std::string& password, SourceKey from) {
  auto policy = throttle_policy();
  if (const auto* throttle = a.existing_throttle())
    if (int64_t wait = throttle->wait_ms(policy, from, now_ms())) co_return locked(wait);
  auto verified = co_await verify_presented(stored, password);
  if (!verified) co_return busy();
  if (!*verified) {
    if (count_failure(a.throttle(), from)) co_return invalid_credentials_now_locked(policy.window_ms);
    co_return invalid_credentials();
  }
  co_return std::nullopt;
}

asio::awaitable<std::optional<Reply>> AccountService::check_login(Account& a, const AccountRecord& record,
                                                                  const std::string& password, SourceKey from) {
  if (auto refusal = co_await check_presented(a, record.password_hash.text(), password, from)) co_return refusal;
  a.throttle().succeeded(from);

  // The hash settings changed since this password was stored: upgrade it now that we know it,
  // whatever the account's state (so no account keeps an old cost for good). The new hash costs
  // what the dummy verification of a failed attempt costs. A replica writes nothing: the upgrade
  // waits for a login on the primary.
  if (needs_rehash(record.password_hash.text(), settings_.hash)) {
    if (a.in_doubt() || read_only()) {
      if (!co_await verify_on_pool(dummy_hash_, password)) co_return busy();
    } else if (auto fresh = co_await hash_on_pool(password)) {
      AccountRecord next = record;
      next.password_hash = PasswordHash(*fresh);
      if (!co_await commit(a, Action::login, std::move(next))) co_return unavailable();
    }
  }
  auto t = transition(record.state, Action::login, record.confirmed_ms != 0);
  if (!t.allowed) co_return refused(t, record.state);
  co_return std::nullopt;
}

asio::awaitable<Reply> AccountService::change_password(std::string id, std::string old_password,
                                                       std::string new_password, std::string source,
                                                       std::string keep_session) {
  if (auto bad = check_source(source)) co_return *bad;
  std::optional<Uuid> keep;
  if (!keep_session.empty()) {
    keep = Uuid::parse(keep_session);
    if (!keep) co_return Reply::error(Error::bad_request, "malformed session id");
  }
  if (auto bad = check_password(new_password)) co_return *bad;
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, old_password = std::move(old_password), new_password = std::move(new_password),
                      from = source_key(source), keep](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    // A wrong old password is a failed login: the same throttle, so this is no side door for guessing.
    if (auto refusal = co_await check_presented(a, a.record().password_hash.text(), old_password, from))
      co_return *refusal;
    auto hash = co_await hash_on_pool(new_password);
    if (!hash) co_return busy();
    AccountRecord next = a.record();
    next.password_hash = PasswordHash(*hash);
    // Every session ends but the one that made the change, when the request names it.
    if (!co_await commit(a, Action::change_password, std::move(next), {}, session_ids(a, keep)))
      co_return unavailable();
    a.throttle().password_changed();
    a.throttle().succeeded(from);
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(std::move(job));
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
  co_return co_await account->ask(std::move(job));
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
    next.password_hash = PasswordHash(*hash);
    if (!co_await commit(a, Action::reset_password, std::move(next), {}, session_ids(a))) co_return unavailable();
    // The failures counted so far were guesses at the old password: they say nothing about this one.
    if (auto* throttle = a.existing_throttle()) throttle->password_changed();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(std::move(job));
}

}  // namespace accounts
