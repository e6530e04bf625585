#pragma once
// The import/export format (docs/IMPORT.md): one JSON object a line, for `accountsd import` and
// `accountsd export`. Pure: no files, no database.
//
//   {"id": "0190...", "email": "ada@example.com", "state": "active",
//    "created": "2024-05-01T12:00:00.000Z", "password_hash": "$2b$12$..."}
//
// Required: email, state, created, password_hash. Optional: id (a UUID; one is made when absent),
// confirmed and updated (times). Times are RFC 3339 ("2024-05-01T12:00:00Z", fractions and
// offsets allowed) or Unix milliseconds as a number. A Firebase `auth:export` user gives its
// passwordHash as password_hash plus its "salt"; the project's hash parameters come from the
// command line (FirebaseParams). Unknown keys are an error, so that a typo is not silently lost.
#include <optional>
#include <string>
#include <string_view>

#include "accounts/foreign_hash.hpp"
#include "accounts/record.hpp"

namespace accounts {

struct ImportOptions {
  std::optional<FirebaseParams> firebase;  // needed for lines that carry a "salt"
  int64_t now_ms = 0;                      // `updated` when a line gives none
};

struct ImportedLine {
  std::optional<AccountRecord> record;  // version 1, no pending tokens
  HashScheme scheme = HashScheme::argon2id;
  std::string problem;  // when !record: what is wrong with the line (no line number)
};

ImportedLine parse_import_line(std::string_view line, const ImportOptions& options);

// The line `accountsd export` writes for `record`, with its LF. Pending tokens and sessions are
// not part of the format (docs/IMPORT.md says why).
std::string export_line(const AccountRecord& record);

// RFC 3339 to Unix milliseconds; nullopt when `text` is not one.
std::optional<int64_t> parse_time(std::string_view text);

}  // namespace accounts
