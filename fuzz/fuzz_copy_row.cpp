// The COPY row parsers, text and binary: a row from the database is either a valid account or refused
// with std::runtime_error (naming the row); it never crashes, and an accepted row is consistent.
// The same for session rows: a session whose times are in order and whose label and source fit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "accounts/email.hpp"
#include "db/rows.hpp"

namespace {

template <class Parse>
void check(Parse parse, std::string_view row) {
  try {
    accounts::AccountRecord r = parse(row);
    auto checked = accounts::check_email(r.email);
    if (!checked.normalized || *checked.normalized != r.email) std::abort();
    if (r.version == 0) std::abort();
  } catch (const std::runtime_error&) {
  }
}

void check_session(accounts::SessionRow (*parse)(std::string_view), std::string_view row) {
  try {
    accounts::SessionRow r = parse(row);
    if (r.created_ms <= 0 || r.last_used_ms < r.created_ms || r.expires_ms < r.created_ms) std::abort();
    if (r.label.size() > 128 || r.source.size() > 64) std::abort();
  } catch (const std::runtime_error&) {
  }
}

}  // namespace

// Each input is read as a text row and as a binary tuple (the warm-load's format), of either table.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view row(reinterpret_cast<const char*>(data), size);
  check(db::parse_copy_line, row);
  check(db::parse_copy_tuple, row);
  check_session(db::parse_session_line, row);
  check_session(db::parse_session_tuple, row);
  return 0;
}
