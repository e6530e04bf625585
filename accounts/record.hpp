#pragma once
// The data of one account, and how it appears in a reply.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"
#include "protocol/reply.hpp"

namespace accounts {

enum class State : uint8_t { unconfirmed, active, deactivated };

std::string_view state_name(State state);
std::optional<State> parse_state(std::string_view name);

// A one-time token as stored: its digest and when it stops working. Empty when expires_ms == 0.
struct PendingToken {
  TokenDigest digest{};
  int64_t expires_ms = 0;
  bool present() const { return expires_ms != 0; }
};

struct AccountRecord {
  Uuid id;
  std::string email;  // normalized
  State state = State::unconfirmed;
  std::string password_hash;  // Argon2id string
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t confirmed_ms = 0;  // 0 until the first CONFIRM; REACTIVATE needs to know
  uint64_t version = 0;      // 1 at registration, +1 on every change
  PendingToken confirm;
  PendingToken reset;
};

int64_t now_ms();
std::string format_time(int64_t unix_ms);  // RFC 3339 UTC with milliseconds

// Adds the fields every account reply shows: id email state created updated version.
protocol::Reply& add_view(protocol::Reply& reply, const AccountRecord& record);

}  // namespace accounts
