// The import's line parser (`accountsd import`, docs/IMPORT.md): any bytes give either a checked
// record or a problem to report, never a crash; an accepted record is consistent, writes back out
// as a line that reads to the same record, and its hash passes the warm-load's check.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "accounts/email.hpp"
#include "accounts/foreign_hash.hpp"
#include "accounts/interchange.hpp"
#include "accounts/secrets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool ready = (accounts::init_secrets(), true);
  (void)ready;
  std::string_view line(reinterpret_cast<const char*>(data), size);
  accounts::FirebaseParams firebase{"q59YNVOZLHMZAzHd87qtQMVlfbSPhaBi1HpT4SEsEXs=", "Bw==", 8, 14};
  accounts::ImportOptions options{firebase, 1700000000000};
  auto parsed = accounts::parse_import_line(line, options);
  if (!parsed.record) {
    if (parsed.problem.empty()) std::abort();
    return 0;
  }
  const auto& r = *parsed.record;
  auto checked = accounts::check_email(r.email);
  if (!checked.normalized || *checked.normalized != r.email) std::abort();
  if (!accounts::check_hash(r.password_hash.text()).scheme) std::abort();
  if (r.created_ms <= 0 || r.updated_ms < r.created_ms || r.version != 1) std::abort();
  auto again = accounts::parse_import_line(accounts::export_line(r), options);
  if (!again.record || accounts::export_line(*again.record) != accounts::export_line(r)) std::abort();
  return 0;
}
