#pragma once
// Cuts a byte stream into request lines. Pure: the session reads into prepare(), commits what
// arrived, and takes frames with next(). Memory stays bounded: a line longer than max_line_bytes
// is reported once as too_long and the rest of it is dropped as it arrives, never buffered.
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace protocol {

class LineFramer {
 public:
  explicit LineFramer(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  enum class Kind { line, too_long };
  struct Frame {
    Kind kind;
    std::string_view line;  // the line without LF or CRLF; valid until the next prepare()
  };

  // A writable region of `bytes` bytes at the end of the buffer; commit() what was written.
  std::span<char> prepare(size_t bytes);
  void commit(size_t bytes);

  // The next complete frame, or nullopt when more bytes are needed.
  std::optional<Frame> next();

  // The complete lines held now, up to `max`, in the order next() will give them, without taking
  // them (the session's read-ahead looks at a batch before it runs it). Lines over the limit and
  // the end of one being discarded are left out.
  template <class Each>
  void peek(size_t max, Each&& each) const {
    size_t at = start_;
    bool skip = discarding_;
    while (max > 0) {
      const void* lf = std::memchr(buffer_.data() + at, '\n', filled_ - at);
      if (lf == nullptr) return;
      std::string_view line(buffer_.data() + at, static_cast<const char*>(lf) - (buffer_.data() + at));
      at += line.size() + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!skip && line.size() <= max_line_bytes_) {
        each(line);
        --max;
      }
      skip = false;
    }
  }

  // Bytes held that do not yet form a complete line.
  size_t pending() const { return filled_ - start_; }
  // True while part of a line has arrived and its LF has not (including an over-long line whose
  // rest is being discarded).
  bool in_line() const { return discarding_ || filled_ > start_; }

 private:
  size_t max_line_bytes_;
  std::string buffer_;
  size_t start_ = 0;         // first byte not yet framed
  size_t scanned_ = 0;       // bytes from start_ already known to hold no LF
  size_t filled_ = 0;        // bytes of buffer_ holding data (the rest is prepare()'s region)
  bool discarding_ = false;  // inside a line already reported as too long
};

}  // namespace protocol
