// The warm-load's COPY row parser: a row from the database is either a valid account or refused
// with std::runtime_error (naming the row); it never crashes, and an accepted row is consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "accounts/email.hpp"
#include "db/rows.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  try {
    accounts::AccountRecord r = db::parse_copy_line(line);
    auto checked = accounts::check_email(r.email);
    if (!checked.normalized || *checked.normalized != r.email) std::abort();
    if (r.version == 0) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
