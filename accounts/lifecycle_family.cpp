// The lifecycle family: CHANGE_EMAIL, DEACTIVATE, REACTIVATE, DELETE.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

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
  co_return co_await target.account->ask(std::move(job));
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
    // A deactivated account's sessions end with it (REACTIVATE finds none to end).
    std::vector<Uuid> end = next.state == State::deactivated ? session_ids(a) : std::vector<Uuid>{};
    if (!co_await commit(a, action, std::move(next), {}, std::move(end))) co_return unavailable();
    co_return view_of(a.record());
  };
  co_return co_await target.account->ask(std::move(job));
}

asio::awaitable<Reply> AccountService::remove(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    AccountRecord last = a.record();
    last.version += 1;
    last.updated_ms = now_ms();
    Change removal{.removed = true, .record = last};
    removal.ended = session_ids(a);  // the table's ON DELETE CASCADE removes them too
    Settle settle = [this, last, ended = removal.ended](Account& a, bool committed) {
      if (!committed) return;
      count(a.record().state, std::nullopt);
      end_sessions(a, ended);
      a.publish_presence(Account::Presence::deleted);
      index_->erase_id(last.id);
      index_->erase_email(last.email);
    };
    if (!co_await persist(a, std::move(removal), std::move(settle))) co_return unavailable();
    co_return Reply::ok().field("id", last.id.to_string());
  };
  co_return co_await target.account->ask(std::move(job));
}

}  // namespace accounts
