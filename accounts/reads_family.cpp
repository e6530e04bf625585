// The reads family: GET and FIND take the committed record without waiting for the actor.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

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

}  // namespace accounts
