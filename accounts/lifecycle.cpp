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

}  // namespace accounts
