#include "protocol/reply.hpp"

#include <cassert>
#include <cstring>

#include "protocol/scan.hpp"

namespace protocol {

Reply Reply::ok() {
  // Room for the longest common reply, so that appending its fields does not reallocate: a WHOAMI
  // (the account's view plus session= and expires=) is 240 bytes with a 24-character email, and
  // this leaves 80 more for a longer one.
  std::string line;
  line.reserve(320);
  line = "OK";
  return Reply(true, Error::internal, std::move(line));
}

Reply Reply::ok(std::string_view word) { return Reply(true, Error::internal, "OK " + std::string(word)); }

Reply Reply::error(Error code, std::string_view message) {
  std::string line = "ERR ";
  line += code_name(code);
  if (!message.empty()) {
    line += ' ';
    // The message runs to the end of the line, so it must not contain one.
    for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return Reply(false, code, std::move(line));
}

Reply& Reply::field(std::string_view key, std::string_view value) {
  line_ += ' ';
  line_ += key;
  line_ += '=';
  append_value(line_, value);
  return *this;
}

namespace {

// Copies a key or a value (mostly 2 to 36 bytes) without a call to memmove: fixed-size copies
// from both ends, which overlap in the middle, and the compiler turns into a load and a store each.
char* copy_short(char* out, std::string_view from) {
  const char* in = from.data();
  const size_t n = from.size();
  if (n >= 16 && n <= 32) {
    std::memcpy(out, in, 16);
    std::memcpy(out + n - 16, in + n - 16, 16);
  } else if (n >= 8 && n < 16) {
    std::memcpy(out, in, 8);
    std::memcpy(out + n - 8, in + n - 8, 8);
  } else if (n >= 4 && n < 8) {
    std::memcpy(out, in, 4);
    std::memcpy(out + n - 4, in + n - 4, 4);
  } else if (n > 32) {
    std::memcpy(out, in, n);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = in[i];
  }
  return out + n;
}

}  // namespace

Reply& Reply::fields(std::initializer_list<Field> fields) {
  size_t size = 0;
  for (const Field& f : fields) {
    assert(!f.bare || !needs_quotes(f.value));
    if (!f.bare && needs_quotes(f.value)) [[unlikely]] {
      for (const Field& each : fields) field(each.key, each.value);
      return *this;
    }
    size += f.key.size() + f.value.size() + 2;
  }
  size_t at = line_.size();
  line_.resize(at + size);
  char* out = line_.data() + at;
  for (const Field& f : fields) {
    *out++ = ' ';
    out = copy_short(out, f.key);
    *out++ = '=';
    out = copy_short(out, f.value);
  }
  return *this;
}

bool needs_quotes(std::string_view value) {
  return value.empty() || scan::find_first_of<' ', '\t', '"', '\\', '='>(value) != value.size();
}

void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace protocol
