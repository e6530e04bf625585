#pragma once
// The replies and checks that every command family of AccountService shares: one place that
// words each refusal. Internal to accounts/ (the *_family.cpp files and service.cpp).
#include <optional>
#include <string>

#include "accounts/account.hpp"
#include "accounts/lifecycle.hpp"
#include "protocol/reply.hpp"

namespace accounts::replies {

using protocol::Error;
using Reply = protocol::Reply;

inline Reply view_of(const AccountRecord& record) {
  auto reply = Reply::ok();
  add_view(reply, record);
  return reply;
}

inline Reply malformed_id() { return Reply::error(Error::bad_request, "malformed account id"); }
inline Reply not_found() { return Reply::error(Error::not_found, "no such account"); }
inline Reply busy() { return Reply::error(Error::busy, "password workers are saturated or out of memory; retry later"); }
inline Reply invalid_credentials() { return Reply::error(Error::invalid_credentials, "wrong email or password"); }
inline Reply locked(int64_t wait_ms) {
  return Reply::error(Error::locked, "too many failed logins; retry in " + std::to_string((wait_ms + 999) / 1000) + " s");
}
// The failure that locked its source out (the same for emails of no account).
inline Reply invalid_credentials_now_locked(int64_t wait_ms) {
  return Reply::error(Error::invalid_credentials, "wrong email or password; this source is now locked out for " +
                                                      std::to_string((wait_ms + 999) / 1000) + " s");
}
// Too many failed logins from one address across accounts (credential stuffing).
inline Reply address_locked(int64_t wait_ms) {
  return Reply::error(Error::locked, "too many failed logins from this address; retry in " +
                                         std::to_string((wait_ms + 999) / 1000) + " s");
}
inline Reply unavailable() {
  return Reply::error(Error::unavailable, "the change could not be made durable in time; it may or may not be stored");
}

inline Reply refused(const Transition& t, State state) {
  switch (t.error) {
    case Error::not_confirmed: return Reply::error(t.error, "account is not confirmed yet");
    case Error::deactivated: return Reply::error(t.error, "account is deactivated");
    default: return Reply::error(t.error, "account is " + std::string(state_name(state)));
  }
}

// Checks a presented token against the pending one: wrong before expired, so that a guess
// learns nothing about whether a token is pending.
inline std::optional<Reply> check_token(const PendingToken& pending, const std::string& token, int64_t now) {
  if (!pending.present() || !same_digest(pending.digest(), digest_token(token)))
    return Reply::error(Error::invalid_token, "token does not match");
  if (now >= pending.expires_ms()) return Reply::error(Error::token_expired, "token has expired");
  return std::nullopt;
}

inline PendingToken pending_token(const std::string& token, int64_t now, int64_t ttl_s) {
  return PendingToken{digest_token(token), now + ttl_s * 1000};
}

inline Reply in_doubt() {
  return Reply::error(Error::unavailable, "an earlier change to this account is still being written; retry later");
}

// The answer for a job that finds its account gone or with a change still in doubt.
inline std::optional<Reply> unchangeable(const Account& a) {
  if (a.presence() != Account::Presence::live) return not_found();
  if (a.in_doubt()) return in_doubt();
  return std::nullopt;
}


}  // namespace accounts::replies
