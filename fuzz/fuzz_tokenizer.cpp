// The tokenizer: any line is either refused with a reason or split into arguments; and any valid
// argument value quoted by the reply formatter reads back through the tokenizer unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply.hpp"
#include "protocol/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
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
