#pragma once
// A reply line as the wire shows it: `OK key=value ...` or `ERR CODE message`.
// Handlers build one of these and return it; only the session writes it to a socket.
#include <concepts>
#include <initializer_list>
#include <string>
#include <string_view>

#include "protocol/errors.hpp"

namespace protocol {

class Reply {
 public:
  static Reply ok();
  static Reply ok(std::string_view word);  // `OK pong`, `OK bye`: a bare word, no fields
  static Reply error(Error code, std::string_view message);

  // Appends ` key=value`, quoting the value when the protocol requires it. Only for OK replies.
  Reply& field(std::string_view key, std::string_view value);
  Reply& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  Reply& field(std::string_view key, std::integral auto value) {
    return field(key, std::string_view(std::to_string(value)));
  }

  // One field of a run that fields() writes in one pass. `bare` is the caller's word that the
  // value is one the protocol writes without quotes (an id, a number, a timestamp, a state name);
  // a value that may need them (an email, a label) says false and is checked.
  struct Field {
    std::string_view key;
    std::string_view value;
    bool bare = true;
  };
  // Appends ` key=value` for each field, as field() would, with one size computation, one growth
  // and plain copies: the replies that show an account are built on every read.
  Reply& fields(std::initializer_list<Field> fields);

  bool is_ok() const { return ok_; }
  Error code() const { return code_; }  // meaningful only when !is_ok()
  const std::string& line() const { return line_; }  // without the terminating LF

 private:
  Reply(bool ok, Error code, std::string line) : ok_(ok), code_(code), line_(std::move(line)) {}
  bool ok_;
  Error code_;
  std::string line_;
};

// Appends `value` as the protocol writes a value: bare when it is safe, else double-quoted with
// `\"` and `\\` escapes. Empty values and values holding space, tab, `"`, `\` or `=` are quoted.
void append_value(std::string& out, std::string_view value);
// True when append_value would quote `value`.
bool needs_quotes(std::string_view value);

}  // namespace protocol
