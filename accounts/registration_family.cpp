// The registration family: REGISTER, CONFIRM, RESEND.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

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
    next.password_hash = PasswordHash(*hash);
    next.created_ms = next.updated_ms = now;
    next.version = 1;
    next.confirm = pending_token(token, now, settings_.confirm_token_ttl_s);
    Change change{.record = next};
    Settle settle = [this, next](Account& a, bool committed) {
      if (committed) {
        index_->insert_id(a.shared_from_this());
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
  co_return co_await account->ask(std::move(job));
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
  co_return co_await target.account->ask(std::move(job));
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
  co_return co_await target.account->ask(std::move(job));
}

}  // namespace accounts
