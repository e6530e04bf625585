#pragma once
// The one fixed list of error codes a reply can carry. docs/PROTOCOL.md documents each of them;
// code_name() is the only place that knows how a code is spelled on the wire.
#include <cstddef>
#include <string_view>

namespace protocol {

enum class Error {
  bad_request,
  unknown_command,
  line_too_long,
  too_many_connections,
  auth_required,
  auth_failed,
  invalid_email,
  invalid_password,
  email_taken,
  not_found,
  invalid_token,
  token_expired,
  invalid_state,
  invalid_credentials,
  invalid_session,
  not_confirmed,
  deactivated,
  locked,
  busy,
  unavailable,
  loading,
  fenced,
  forbidden,
  readonly,
  timeout,
  internal,
};

// How many codes there are (they number 0 .. kErrorCount-1, in the order above).
inline constexpr size_t kErrorCount = static_cast<size_t>(Error::internal) + 1;

std::string_view code_name(Error code);

}  // namespace protocol
