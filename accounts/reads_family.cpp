// The reads family: GET and FIND take the committed record without waiting for the actor.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

// `id` and `email` view the request's arguments, which outlive the call (the session awaits it).
asio::awaitable<Reply> AccountService::get(std::string_view id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  auto reply = Reply::ok();
  if (!target.account->add_view_to(reply)) co_return not_found();
  co_return reply;
}

asio::awaitable<Reply> AccountService::find(std::string_view email) {
  auto checked = check_email(email);
  if (!checked.normalized) co_return Reply::error(Error::not_found, "not a valid email: " + checked.problem);
  auto account = index_->by_email(*checked.normalized);
  auto reply = Reply::ok();
  // The index may point at an account whose move to this address is not committed yet.
  if (!account || !account->add_view_to(reply, *checked.normalized)) co_return not_found();
  co_return reply;
}

}  // namespace accounts
