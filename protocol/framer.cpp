#include "protocol/framer.hpp"

#include <cstring>

namespace protocol {

std::span<char> LineFramer::prepare(size_t bytes) {
  if (start_ > 0) {  // drop framed bytes so the buffer never grows past one line plus one read
    std::memmove(buffer_.data(), buffer_.data() + start_, filled_ - start_);
    filled_ -= start_;
    start_ = 0;
  }
  // Grows only: resizing on every read would zero the whole region each time.
  if (buffer_.size() < filled_ + bytes) buffer_.resize(filled_ + bytes);
  return {buffer_.data() + filled_, bytes};
}

void LineFramer::commit(size_t bytes) { filled_ += bytes; }

std::optional<LineFramer::Frame> LineFramer::next() {
  while (true) {
    const char* begin = buffer_.data() + start_;
    size_t available = filled_ - start_;
    const void* lf = std::memchr(begin + scanned_, '\n', available - scanned_);

    if (lf == nullptr) {
      scanned_ = available;
      // Longer than any legal line even if the next byte were the LF (allowing for one CR).
      if (!discarding_ && available > max_line_bytes_ + 1) {
        discarding_ = true;
        start_ = filled_;
        scanned_ = 0;
        return Frame{Kind::too_long, {}};
      }
      if (discarding_) {
        start_ = filled_;
        scanned_ = 0;
      }
      return std::nullopt;
    }

    size_t length = static_cast<const char*>(lf) - begin;
    start_ += length + 1;
    scanned_ = 0;
    if (discarding_) {  // the end of a line already reported as too long
      discarding_ = false;
      continue;
    }
    std::string_view line(begin, length);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line_bytes_) return Frame{Kind::too_long, {}};
    return Frame{Kind::line, line};
  }
}

}  // namespace protocol
