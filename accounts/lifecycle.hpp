#pragma once
// The account state machine as one table: which action is allowed in which state, what state it
// leads to, and which error refuses it. Pure, so the whole table is unit-tested.
#include <optional>

#include "accounts/record.hpp"
#include "protocol/errors.hpp"

namespace accounts {

enum class Action {
  confirm,
  resend,
  login,  // checked only once the password is known to be right
  change_email,
  change_password,
  reset_request,
  reset_password,
  deactivate,
  reactivate,
  remove,
};

struct Transition {
  bool allowed;
  State next;             // when allowed
  protocol::Error error;  // when refused
};

// `ever_confirmed` decides where REACTIVATE leads: active, or back to unconfirmed.
Transition transition(State from, Action action, bool ever_confirmed);

}  // namespace accounts
