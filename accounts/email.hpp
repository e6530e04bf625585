#pragma once
// Email addresses as accountsd accepts them: `local@domain`, at most 254 bytes, a local part of
// 1 to 64 bytes, a domain of two or more non-empty dot-separated labels, no spaces or control
// characters, exactly one `@`. Normalization lower-cases ASCII letters only; uniqueness and FIND
// use the normalized form.
#include <optional>
#include <string>
#include <string_view>

namespace accounts {

struct EmailCheck {
  std::optional<std::string> normalized;  // set when the address is acceptable
  std::string problem;                    // why not, otherwise
};

EmailCheck check_email(std::string_view address);

// The normalization of one byte: ASCII letters lower-cased, everything else kept.
inline char fold_email_char(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace accounts
