// The email check: any bytes are accepted (normalized) or refused with a reason, and a normalized
// email is a fixed point: checking it again gives itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "accounts/email.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view address(reinterpret_cast<const char*>(data), size);
  auto checked = accounts::check_email(address);
  if (!checked.normalized) {
    if (checked.problem.empty()) std::abort();
    return 0;
  }
  if (checked.normalized->size() != address.size() || checked.normalized->size() > 254) std::abort();
  auto again = accounts::check_email(*checked.normalized);
  if (!again.normalized || *again.normalized != *checked.normalized) std::abort();
  return 0;
}
