#pragma once
// The data of one account, and how it appears in a reply.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "accounts/clock.hpp"
#include "accounts/compact_string.hpp"
#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"
#include "protocol/reply.hpp"

namespace accounts {

enum class State : uint8_t { unconfirmed, active, deactivated };

std::string_view state_name(State state);
std::optional<State> parse_state(std::string_view name);

// A one-time token as stored: its digest and when it stops working, or nothing. Most accounts
// have none pending, so the data lives in a box of its own: an empty token costs 8 bytes, not 40.
class PendingToken {
 public:
  PendingToken() = default;
  PendingToken(const TokenDigest& digest, int64_t expires_ms) : data_(new Data{digest, expires_ms}) {}
  PendingToken(const PendingToken& other) : data_(other.data_ ? new Data(*other.data_) : nullptr) {}
  PendingToken(PendingToken&&) noexcept = default;
  PendingToken& operator=(const PendingToken& other) { return *this = PendingToken(other); }
  PendingToken& operator=(PendingToken&&) noexcept = default;

  bool present() const { return data_ != nullptr; }
  bool operator==(const PendingToken& other) const {
    if (!data_ || !other.data_) return !data_ && !other.data_;
    return data_->digest == other.data_->digest && data_->expires_ms == other.data_->expires_ms;
  }
  const TokenDigest& digest() const { return data_->digest; }   // only when present()
  int64_t expires_ms() const { return data_ ? data_->expires_ms : 0; }

 private:
  struct Data {
    TokenDigest digest;
    int64_t expires_ms;
  };
  std::unique_ptr<Data> data_;
};

struct AccountRecord {
  Uuid id;
  CompactString email;  // normalized; up to 31 bytes inline
  State state = State::unconfirmed;
  PasswordHash password_hash;  // Argon2id, packed
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t confirmed_ms = 0;  // 0 until the first CONFIRM; REACTIVATE needs to know
  uint64_t version = 0;      // 1 at registration, +1 on every change
  PendingToken confirm;
  PendingToken reset;

  bool operator==(const AccountRecord&) const = default;
};

// RFC 3339 UTC with milliseconds, in a fixed buffer (replies use it without allocating).
struct TimeText {
  char chars[24];
  std::string_view view() const { return {chars, sizeof chars}; }
};
TimeText time_text(int64_t unix_ms);
inline std::string format_time(int64_t unix_ms) { return std::string(time_text(unix_ms).view()); }

// Adds the fields every account reply shows: id email state created updated version.
protocol::Reply& add_view(protocol::Reply& reply, const AccountRecord& record);
// Adds the fields a WHOAMI shows after the view: session (the session's id) and expires.
protocol::Reply& add_session_fields(protocol::Reply& reply, const Uuid& session, int64_t expires_ms);

}  // namespace accounts
