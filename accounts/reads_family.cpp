// The reads family: GET and FIND take the committed record without waiting for the actor.
#include "accounts/service.hpp"

#include <spdlog/spdlog.h>

#include "accounts/email.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/replies.hpp"

namespace accounts {

using namespace replies;

// Plain functions, not coroutines: a read never waits, so it needs no frame of its own.
Reply AccountService::get(std::string_view id_text) {
  auto id = Uuid::parse(id_text);
  if (!id) return malformed_id();
  settle_read_ahead();
  return consistent([&] {
    auto reply = Reply::ok();
    bool shown = false;
    index_->visit_id(*id, [&](const Account& account) { shown = account.add_view_to(reply); });
    if (!shown) return not_found();
    return reply;
  });
}

Reply AccountService::find(std::string_view email) {
  auto checked = check_email(email);
  if (!checked.normalized) return Reply::error(Error::not_found, "not a valid email: " + checked.problem);
  settle_read_ahead();
  return consistent([&] {
    auto reply = Reply::ok();
    bool shown = false;
    // The index may point at an account whose move to this address is not committed yet.
    index_->visit_email(*checked.normalized,
                        [&](const Account& account) { shown = account.add_view_to(reply, *checked.normalized); });
    if (!shown) return not_found();
    return reply;
  });
}

}  // namespace accounts
