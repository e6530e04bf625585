#pragma once
// Splits one request line into its arguments. Pure: a string_view in, strings or an error out.
//
// Arguments are separated by runs of spaces or tabs. An argument that starts with `"` is quoted:
// inside it `\"` is a quote and `\\` a backslash, and it must close before the next separator.
// A quote inside an unquoted argument, any other escape, an unterminated quote, a control byte
// (anything below 0x20 but tab, and 0x7f) or invalid UTF-8 makes the line malformed.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace protocol {

// Fills `args` (cleared first) and returns nullopt, or returns why the line is malformed.
// A blank line yields no arguments and no error.
std::optional<std::string> tokenize(std::string_view line, std::vector<std::string>& args);

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view text);

}  // namespace protocol
