// The tokenizer: any line is either refused with a reason or split into arguments; and any valid
// argument value quoted by the reply formatter reads back through the tokenizer unchanged. The
// sixteen-byte scans answer what their one-byte loops answer, from up to 33 starting points.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply.hpp"
#include "protocol/scan.hpp"
#include "protocol/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  for (size_t from = 0; from <= size; from += 1 + size / 32) {
    size_t expected = from;
    while (expected < size && line[expected] != '=' && line[expected] != '\\') ++expected;
    if (protocol::scan::find_first_of<'=', '\\'>(line, from) != expected) std::abort();
  }
  bool printable = true;
  for (unsigned char c : line) printable = printable && (c == '\t' || (c >= 0x20 && c <= 0x7e));
  if (protocol::scan::printable_ascii(line) != printable) std::abort();
  std::vector<std::string> args;
  auto malformed = protocol::tokenize(line, args);
  if (malformed) {
    if (malformed->empty()) std::abort();  // a refusal always says why
    return 0;
  }
  // Every argument of a well-formed line, written back as a reply value, reads back as itself.
  for (const auto& arg : args) {
    std::string echoed = "X ";
    protocol::append_value(echoed, arg);
    std::vector<std::string> back;
    if (protocol::tokenize(echoed, back) || back.size() != 2 || back[1] != arg) std::abort();
  }
  return 0;
}
