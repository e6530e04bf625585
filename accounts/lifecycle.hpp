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

// What a change does to the one-time tokens already pending when it commits. A token proves
// control of the mailbox it was sent to, for the account as it was when it was sent: a change
// that moves the address or the password away from that moment ends it. A command that issues
// or consumes a token of its own (RESEND, RESET_REQUEST, CONFIRM, RESET_PASSWORD) does that on
// top of this table. docs/PROTOCOL.md has the same table.
struct TokenEffect {
  bool keeps_confirm;
  bool keeps_reset;
};
TokenEffect token_effect(Action action);

// Applies token_effect(action) to the record about to be committed.
void drop_invalidated_tokens(Action action, AccountRecord& next);

}  // namespace accounts
