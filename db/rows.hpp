#pragma once
// An account as a row of the accounts table, as the warm-load reads it back from COPY. Reading
// checks every invariant and names the row when one breaks.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "accounts/record.hpp"
#include "accounts/session.hpp"

namespace db {

// The columns, in table order (the order of COPY accounts TO STDOUT).
inline constexpr const char* kColumns =
    "id, email, state, password_hash, created_ms, updated_ms, confirmed_ms, version, "
    "confirm_digest, confirm_expires_ms, reset_digest, reset_expires_ms";

std::string hex(std::span<const uint8_t> bytes);
std::optional<accounts::TokenDigest> parse_hex_digest(std::string_view digest_hex);  // 64 hex digits
// A session's key, as a replica sends it with its sessions' last uses: 32 hex digits, or 64 (a
// whole digest, as replicas before the key sent it), of which the first 32 are the key.
std::optional<accounts::SessionKey> parse_hex_session_key(std::string_view hex_digits);

inline constexpr const char* kSessionColumns =
    "id, account_id, token_digest, created_ms, last_used_ms, expires_ms, label, source";

// Parses one line of `COPY sessions TO STDOUT` the same way, naming the session.
accounts::SessionRow parse_session_line(std::string_view line);

// The line `COPY accounts FROM STDIN` takes for `record` (text format, with its LF).
std::string format_copy_line(const accounts::AccountRecord& record);

// Parses one line of `COPY accounts TO STDOUT` (text format, no trailing LF). Throws
// std::runtime_error naming the row's id (when it has one) if the row breaks an invariant.
accounts::AccountRecord parse_copy_line(std::string_view line);

// An unsigned integer in network byte order, as COPY's binary format writes its counts, lengths
// and bigints: `bytes` are its 2, 4 or 8 bytes.
inline uint64_t big_endian(std::string_view bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

// The same for one tuple of `COPY accounts TO STDOUT (FORMAT binary)` (its field count, then each
// field's length and bytes), with the same checks and messages; the warm-load reads this format,
// which costs PostgreSQL and the parser less than text.
accounts::AccountRecord parse_copy_tuple(std::string_view tuple);

// The same for one tuple of `COPY sessions TO STDOUT (FORMAT binary)`, with the checks and
// messages of parse_session_line.
accounts::SessionRow parse_session_tuple(std::string_view tuple);

}  // namespace db
