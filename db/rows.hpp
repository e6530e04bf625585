#pragma once
// An account as a row of the accounts table: the SQL literal the writer sends, and the COPY text
// line the warm-load reads back. Reading checks every invariant and names the row when one breaks.
#include <string>
#include <string_view>

#include "accounts/record.hpp"

namespace db {

// The columns, in table order (the order of COPY accounts TO STDOUT).
inline constexpr const char* kColumns =
    "id, email, state, password_hash, created_ms, updated_ms, confirmed_ms, version, "
    "confirm_digest, confirm_expires_ms, reset_digest, reset_expires_ms";

// `(...)` for a multi-row VALUES list; `quote` escapes a string literal for the connection.
template <class Quote>
std::string sql_values(const accounts::AccountRecord& r, Quote&& quote);

std::string hex(const accounts::TokenDigest& digest);

// Parses one line of `COPY accounts TO STDOUT` (text format, no trailing LF). Throws
// std::runtime_error naming the row's id (when it has one) if the row breaks an invariant.
accounts::AccountRecord parse_copy_line(std::string_view line);

}  // namespace db

#include "db/rows_impl.hpp"
