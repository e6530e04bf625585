#include "accounts/lifecycle.hpp"

namespace accounts {

Transition transition(State from, Action action, bool ever_confirmed) {
  using protocol::Error;
  auto stay = Transition{true, from, Error::internal};
  auto go = [](State to) { return Transition{true, to, Error::internal}; };
  auto refuse = [from](Error e) { return Transition{false, from, e}; };

  switch (action) {
    case Action::confirm:
      return from == State::unconfirmed ? go(State::active) : refuse(Error::invalid_state);
    case Action::resend:
      return from == State::unconfirmed ? stay : refuse(Error::invalid_state);
    case Action::login:
      if (from == State::unconfirmed) return refuse(Error::not_confirmed);
      if (from == State::deactivated) return refuse(Error::deactivated);
      return stay;
    case Action::change_email:
    case Action::change_password:
    case Action::remove:
      return stay;
    case Action::reset_request:
    case Action::reset_password:
      return from == State::deactivated ? refuse(Error::invalid_state) : stay;
    case Action::deactivate:
      return from == State::deactivated ? refuse(Error::invalid_state) : go(State::deactivated);
    case Action::reactivate:
      if (from != State::deactivated) return refuse(Error::invalid_state);
      return go(ever_confirmed ? State::active : State::unconfirmed);
  }
  return refuse(Error::internal);
}

TokenEffect token_effect(Action action) {
  switch (action) {
    case Action::login:            // a re-hash changes nothing the user can see
    case Action::confirm:          // consumes its own token; a pending reset went to the same mailbox
    case Action::resend:           // replaces its own token
    case Action::reset_request:    // replaces its own token
      return {true, true};
    case Action::reset_password:   // consumes its own token; the confirmation went to the same mailbox
      return {true, false};
    case Action::change_password:  // a reset asked for before is answered: the password is new
      return {true, false};
    case Action::deactivate:       // no reset into use; a confirmation still names the same mailbox
      return {true, false};
    case Action::reactivate:       // (no reset token can be pending: DEACTIVATE ended it)
      return {true, true};
    case Action::change_email:     // both went to a mailbox the account no longer has
    case Action::remove:
      return {false, false};
  }
  return {false, false};
}

void drop_invalidated_tokens(Action action, AccountRecord& next) {
  auto effect = token_effect(action);
  if (!effect.keeps_confirm) next.confirm = {};
  if (!effect.keeps_reset) next.reset = {};
}

}  // namespace accounts
