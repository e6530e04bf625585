#include "protocol/reply.hpp"

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
bool needs_quotes(std::string_view value) {
  return value.empty() || scan::find_first_of<' ', '\t', '"', '\\', '='>(value) != value.size();
}
}  // namespace

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
