#include "db/rows.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <vector>

#include "accounts/email.hpp"
#include "accounts/foreign_hash.hpp"

namespace db {
namespace {

// COPY text format escapes backslash and control characters.
std::string unescape(std::string_view field) {
  if (field.find('\\') == std::string_view::npos) return std::string(field);
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    char c = field[i];
    if (c != '\\' || i + 1 == field.size()) {
      out += c;
      continue;
    }
    char e = field[++i];
    switch (e) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      default: out += e;
    }
  }
  return out;
}

// `id` names the row's account; `what` says what the row is, for the message.
int64_t number(std::string_view text, const char* column, std::string_view id, const char* what = "account") {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    throw std::runtime_error(std::string(what) + " " + std::string(id) + ": column " + column + " is not an integer");
  return value;
}

// A row's fields, split at tabs without allocating: `count` says how many the row had, and at
// most N of them are kept.
template <size_t N>
struct Fields {
  std::array<std::string_view, N> at;
  size_t count = 0;
  explicit Fields(std::string_view line) {
    size_t start = 0;
    while (true) {
      size_t tab = line.find('\t', start);
      if (count < N) at[count] = line.substr(start, tab == std::string_view::npos ? tab : tab - start);
      ++count;
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
  }
  std::string_view operator[](size_t i) const { return at[i]; }
};

accounts::PendingToken token(std::string_view digest_hex, int64_t expires_ms, const char* column, std::string_view id) {
  if (digest_hex.empty() && expires_ms == 0) return {};
  if (digest_hex.size() != 64 || expires_ms <= 0)
    throw std::runtime_error("account " + std::string(id) + ": column " + column +
                             " is not a 64-digit hex digest with an expiry");
  auto digest = parse_hex_digest(digest_hex);
  if (!digest) throw std::runtime_error("account " + std::string(id) + ": column " + column + " is not hex");
  return accounts::PendingToken(*digest, expires_ms);
}

}  // namespace

namespace {

// Exactly 2 x out.size() hex digits into `out`; false when one is not a hex digit.
bool parse_hex(std::string_view digits, std::span<uint8_t> out) {
  if (digits.size() != 2 * out.size()) return false;
  int bad = 0;  // any -1 among the digits
  for (size_t i = 0; i < out.size(); ++i) {
    int high = accounts::hex_value(digits[2 * i]);
    int low = accounts::hex_value(digits[2 * i + 1]);
    bad |= high | low;
    out[i] = static_cast<uint8_t>(high << 4 | (low & 0x0f));
  }
  return bad >= 0;
}

}  // namespace

std::optional<accounts::TokenDigest> parse_hex_digest(std::string_view digest_hex) {
  accounts::TokenDigest digest;
  if (!parse_hex(digest_hex, digest)) return std::nullopt;
  return digest;
}

std::optional<accounts::SessionKey> parse_hex_session_key(std::string_view hex_digits) {
  accounts::SessionKey key;
  if (hex_digits.size() == 4 * key.size()) {  // a whole digest: it has to be one
    if (!parse_hex_digest(hex_digits)) return std::nullopt;
    hex_digits = hex_digits.substr(0, 2 * key.size());
  }
  if (!parse_hex(hex_digits, key)) return std::nullopt;
  return key;
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

namespace {

// COPY text format: backslash, tab, LF and CR must be escaped.
void append_escaped(std::string& out, std::string_view field) {
  for (char c : field) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

}  // namespace

std::string format_copy_line(const accounts::AccountRecord& r) {
  std::string line;
  line.reserve(256);
  line.append(r.id.text().view());
  line += '\t';
  append_escaped(line, r.email);
  line += '\t';
  line += accounts::state_name(r.state);
  line += '\t';
  append_escaped(line, r.password_hash.text());
  for (int64_t n : {r.created_ms, r.updated_ms, r.confirmed_ms, static_cast<int64_t>(r.version)}) {
    line += '\t';
    line += std::to_string(n);
  }
  auto token = [&line](const accounts::PendingToken& t) {
    line += '\t';
    if (t.present()) line += hex(t.digest());
    line += '\t';
    line += std::to_string(t.expires_ms());
  };
  token(r.confirm);
  token(r.reset);
  line += '\n';
  return line;
}

namespace {

// A text row's fields as they read unescaped: a view into the row for a field without escapes,
// and a copy, kept here, only for one with them (rare: a valid hash never has one, an address or a
// label seldom). Good for N fields (more throws std::out_of_range).
template <size_t N>
class Unescaped {
 public:
  std::string_view operator()(std::string_view field) {
    if (field.find('\\') == std::string_view::npos) return field;
    return kept_.at(used_++) = unescape(field);
  }

 private:
  std::array<std::string, N> kept_;
  size_t used_ = 0;
};

// An account row's columns, whichever COPY format they came in: the text ones unescaped (or views
// into the row where nothing needed it), the numbers parsed.
struct AccountColumns {
  accounts::Uuid id;
  std::string_view email, state, hash, confirm_digest, reset_digest;
  int64_t created_ms = 0, updated_ms = 0, confirmed_ms = 0, version = 0, confirm_expires_ms = 0, reset_expires_ms = 0;
};

// The checks every account row goes through, in either format, and the record they make.
accounts::AccountRecord account_from(const AccountColumns& c) {
  accounts::AccountRecord r;
  r.id = c.id;
  const auto id_text = r.id.text();  // names the account in messages, without an allocation
  const std::string_view id = id_text.view();
  auto name = [id] { return "account " + std::string(id); };

  r.email = c.email;
  auto checked = accounts::check_email(r.email);
  if (!checked.normalized) throw std::runtime_error(name() + ": email is invalid: " + checked.problem);
  if (*checked.normalized != r.email) throw std::runtime_error(name() + ": email is not normalized (lower case)");

  auto state = accounts::parse_state(c.state);
  if (!state) throw std::runtime_error(name() + ": unknown state '" + std::string(c.state) + "'");
  r.state = *state;

  std::string problem;
  auto stored = accounts::PasswordHash::checked(c.hash, problem);
  if (!stored) throw std::runtime_error(name() + ": password_hash: " + problem);
  r.password_hash = std::move(*stored);

  r.created_ms = c.created_ms;
  r.updated_ms = c.updated_ms;
  r.confirmed_ms = c.confirmed_ms;
  if (c.version < 1) throw std::runtime_error(name() + ": version must be 1 or more");
  r.version = static_cast<uint64_t>(c.version);
  r.confirm = token(c.confirm_digest, c.confirm_expires_ms, "confirm_digest", id);
  r.reset = token(c.reset_digest, c.reset_expires_ms, "reset_digest", id);
  if (r.state == accounts::State::active && r.confirmed_ms == 0)
    throw std::runtime_error(name() + ": active but never confirmed (confirmed_ms = 0)");
  return r;
}

}  // namespace

// One row of the warm-load: a million of them for a million accounts, so nothing here allocates
// but what the record keeps (and the messages of a row that stops the start).
accounts::AccountRecord parse_copy_line(std::string_view line) {
  Fields<12> fields(line);
  if (fields.count != 12)
    throw std::runtime_error("account " + std::string(fields[0]) + ": expected 12 columns, found " +
                             std::to_string(fields.count));
  AccountColumns c;
  auto uuid = accounts::Uuid::parse(fields[0]);
  if (!uuid) throw std::runtime_error("account " + std::string(fields[0]) + ": id is not a UUID");
  c.id = *uuid;
  const auto id_text = c.id.text();
  const std::string_view id = id_text.view();
  Unescaped<3> text;
  c.email = text(fields[1]);
  c.state = text(fields[2]);
  c.hash = text(fields[3]);
  c.created_ms = number(fields[4], "created_ms", id);
  c.updated_ms = number(fields[5], "updated_ms", id);
  c.confirmed_ms = number(fields[6], "confirmed_ms", id);
  c.version = number(fields[7], "version", id);
  c.confirm_digest = fields[8];
  c.confirm_expires_ms = number(fields[9], "confirm_expires_ms", id);
  c.reset_digest = fields[10];
  c.reset_expires_ms = number(fields[11], "reset_expires_ms", id);
  return account_from(c);
}

namespace {

// A tuple of COPY's binary format, read field by field: a 16-bit field count, then for each field
// a 32-bit length (-1 for NULL) and that many bytes, all integers in network order.
class Tuple {
 public:
  explicit Tuple(std::string_view bytes) : bytes_(bytes) {}
  bool has(size_t n) const { return bytes_.size() - at_ >= n; }
  int16_t count() {
    if (!has(2)) return -1;
    auto v = static_cast<int16_t>(big_endian(bytes_.substr(at_, 2)));
    at_ += 2;
    return v;
  }
  // The next field's bytes, or nothing when it is NULL or runs past the tuple.
  std::optional<std::string_view> field() {
    if (!has(4)) return std::nullopt;
    const uint64_t length = big_endian(bytes_.substr(at_, 4));
    at_ += 4;
    if (length == 0xffffffff || !has(length)) return std::nullopt;
    std::string_view out = bytes_.substr(at_, length);
    at_ += length;
    return out;
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

}  // namespace

accounts::AccountRecord parse_copy_tuple(std::string_view tuple) {
  Tuple t(tuple);
  int16_t count = t.count();
  if (count != 12)
    throw std::runtime_error("account row: expected 12 columns, found " + std::to_string(count));
  std::optional<std::string_view> f[12];
  for (auto& field : f) field = t.field();
  auto raw_id = f[0];
  if (!raw_id || raw_id->size() != 16) throw std::runtime_error("account row: id is not a UUID");
  AccountColumns c;
  std::memcpy(c.id.bytes.data(), raw_id->data(), 16);
  const auto id_text = c.id.text();
  const std::string_view id = id_text.view();
  if (!t.done() || std::any_of(std::begin(f), std::end(f), [](const auto& v) { return !v; }))
    throw std::runtime_error("account " + std::string(id) + ": a column is NULL or the row is cut short");
  auto integer = [&id](std::string_view field, const char* column) {
    if (field.size() != 8) throw std::runtime_error("account " + std::string(id) + ": column " + column + " is not an integer");
    return static_cast<int64_t>(big_endian(field));
  };
  c.email = *f[1];
  c.state = *f[2];
  c.hash = *f[3];
  c.created_ms = integer(*f[4], "created_ms");
  c.updated_ms = integer(*f[5], "updated_ms");
  c.confirmed_ms = integer(*f[6], "confirmed_ms");
  c.version = integer(*f[7], "version");
  c.confirm_digest = *f[8];
  c.confirm_expires_ms = integer(*f[9], "confirm_expires_ms");
  c.reset_digest = *f[10];
  c.reset_expires_ms = integer(*f[11], "reset_expires_ms");
  return account_from(c);
}

namespace {

// A session row's columns, whichever COPY format they came in (the text ones unescaped).
struct SessionColumns {
  accounts::Uuid id;
  std::optional<accounts::Uuid> account;
  std::string_view digest, label, source;
  int64_t created_ms = 0, last_used_ms = 0, expires_ms = 0;
};

// The checks every session row goes through, in either format, and the row they make.
accounts::SessionRow session_from(const SessionColumns& c) {
  accounts::SessionRow r;
  r.id = c.id;
  auto name = [&r] { return "session " + r.id.to_string(); };  // only for a message: not formatted before
  if (!c.account) throw std::runtime_error(name() + ": account_id is not a UUID");
  r.account = *c.account;
  auto digest = parse_hex_digest(c.digest);
  if (!digest) throw std::runtime_error(name() + ": token_digest is not a 64-digit hex digest");
  r.digest = *digest;
  r.created_ms = c.created_ms;
  r.last_used_ms = c.last_used_ms;
  r.expires_ms = c.expires_ms;
  if (r.created_ms <= 0 || r.last_used_ms < r.created_ms || r.expires_ms < r.created_ms)
    throw std::runtime_error(name() + ": times out of order (created, last used, expires)");
  if (c.label.size() > 128 || c.source.size() > 64)
    throw std::runtime_error(name() + ": label over 128 bytes or source over 64 bytes");
  r.label = c.label;
  r.source = c.source;
  return r;
}

}  // namespace

// The same for sessions, which may be several per account.
accounts::SessionRow parse_session_line(std::string_view line) {
  Fields<8> fields(line);
  if (fields.count != 8)
    throw std::runtime_error("session " + std::string(fields[0]) + ": expected 8 columns, found " +
                             std::to_string(fields.count));
  SessionColumns c;
  auto uuid = accounts::Uuid::parse(fields[0]);
  if (!uuid) throw std::runtime_error("session " + std::string(fields[0]) + ": id is not a UUID");
  c.id = *uuid;
  const auto id_text = c.id.text();
  const std::string_view id = id_text.view();
  c.account = accounts::Uuid::parse(fields[1]);
  c.digest = fields[2];
  c.created_ms = number(fields[3], "created_ms", id, "session");
  c.last_used_ms = number(fields[4], "last_used_ms", id, "session");
  c.expires_ms = number(fields[5], "expires_ms", id, "session");
  Unescaped<2> text;
  c.label = text(fields[6]);
  c.source = text(fields[7]);
  return session_from(c);
}

accounts::SessionRow parse_session_tuple(std::string_view tuple) {
  Tuple t(tuple);
  int16_t count = t.count();
  if (count != 8) throw std::runtime_error("session row: expected 8 columns, found " + std::to_string(count));
  // In order: a braced list is evaluated left to right.
  const std::optional<std::string_view> f[8] = {t.field(), t.field(), t.field(), t.field(),
                                                t.field(), t.field(), t.field(), t.field()};
  auto uuid = [](const std::optional<std::string_view>& field) -> std::optional<accounts::Uuid> {
    if (!field || field->size() != 16) return std::nullopt;
    accounts::Uuid id;
    std::memcpy(id.bytes.data(), field->data(), 16);
    return id;
  };
  auto id = uuid(f[0]);
  if (!id) throw std::runtime_error("session row: id is not a UUID");
  SessionColumns c;
  c.id = *id;
  auto name = [&c] { return "session " + c.id.to_string(); };
  if (!t.done() || std::any_of(std::begin(f), std::end(f), [](const auto& v) { return !v; }))
    throw std::runtime_error(name() + ": a column is NULL or the row is cut short");
  auto integer = [&name](std::string_view field, const char* column) {
    if (field.size() != 8) throw std::runtime_error(name() + ": column " + column + " is not an integer");
    return static_cast<int64_t>(big_endian(field));
  };
  c.account = uuid(f[1]);
  c.digest = *f[2];
  c.created_ms = integer(*f[3], "created_ms");
  c.last_used_ms = integer(*f[4], "last_used_ms");
  c.expires_ms = integer(*f[5], "expires_ms");
  c.label = *f[6];
  c.source = *f[7];
  return session_from(c);
}

}  // namespace db
