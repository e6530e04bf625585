// The line framer: any bytes, cut into reads of any size, give frames that never exceed the limit,
// the framer's memory stays bounded by one line plus one read, and peek() shows exactly the lines
// that next() then gives (what the session's read-ahead relies on).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/framer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t limit = 16 + data[0] % 64;  // small limits reach the too-long paths quickly
  size_t chunk = 1 + data[1] % 32;
  data += 2;
  size -= 2;
  protocol::LineFramer framer(limit);
  size_t fed = 0;
  while (fed < size) {
    size_t n = std::min(chunk, size - fed);
    auto space = framer.prepare(n);
    std::memcpy(space.data(), data + fed, n);
    framer.commit(n);
    fed += n;
    std::vector<std::string> peeked;
    framer.peek(SIZE_MAX, [&](std::string_view line) { peeked.emplace_back(line); });
    size_t taken = 0;
    while (auto frame = framer.next()) {
      if (frame->kind == protocol::LineFramer::Kind::line) {
        if (frame->line.size() > limit) std::abort();
        if (std::memchr(frame->line.data(), '\n', frame->line.size()) != nullptr) std::abort();
        if (taken == peeked.size() || peeked[taken] != frame->line) std::abort();
        ++taken;
      }
    }
    if (taken != peeked.size()) std::abort();
    if (framer.pending() > limit + 2 + chunk) std::abort();
  }
  return 0;
}
