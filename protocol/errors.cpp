#include "protocol/errors.hpp"

namespace protocol {

std::string_view code_name(Error code) {
  switch (code) {
    case Error::bad_request: return "BAD_REQUEST";
    case Error::unknown_command: return "UNKNOWN_COMMAND";
    case Error::line_too_long: return "LINE_TOO_LONG";
    case Error::too_many_connections: return "TOO_MANY_CONNECTIONS";
    case Error::auth_required: return "AUTH_REQUIRED";
    case Error::auth_failed: return "AUTH_FAILED";
    case Error::invalid_email: return "INVALID_EMAIL";
    case Error::invalid_password: return "INVALID_PASSWORD";
    case Error::email_taken: return "EMAIL_TAKEN";
    case Error::not_found: return "NOT_FOUND";
    case Error::invalid_token: return "INVALID_TOKEN";
    case Error::token_expired: return "TOKEN_EXPIRED";
    case Error::invalid_state: return "INVALID_STATE";
    case Error::invalid_credentials: return "INVALID_CREDENTIALS";
    case Error::invalid_session: return "INVALID_SESSION";
    case Error::not_confirmed: return "NOT_CONFIRMED";
    case Error::deactivated: return "DEACTIVATED";
    case Error::locked: return "LOCKED";
    case Error::busy: return "BUSY";
    case Error::unavailable: return "UNAVAILABLE";
    case Error::loading: return "LOADING";
    case Error::fenced: return "FENCED";
    case Error::forbidden: return "FORBIDDEN";
    case Error::readonly: return "READONLY";
    case Error::timeout: return "TIMEOUT";
    case Error::internal: return "INTERNAL";
  }
  return "INTERNAL";
}

}  // namespace protocol
