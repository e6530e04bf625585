#include "db/rows.hpp"

#include <array>
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

std::optional<accounts::TokenDigest> parse_hex_digest(std::string_view digest_hex) {
  if (digest_hex.size() != 64) return std::nullopt;
  accounts::TokenDigest digest;
  for (size_t i = 0; i < 32; ++i) {
    auto [end, ec] = std::from_chars(digest_hex.data() + 2 * i, digest_hex.data() + 2 * i + 2, digest[i], 16);
    if (ec != std::errc() || end != digest_hex.data() + 2 * i + 2) return std::nullopt;
  }
  return digest;
}

std::string hex(const accounts::TokenDigest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digest) {
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

// One row of the warm-load: a million of them for a million accounts, so nothing here allocates
// but what the record keeps (and the messages of a row that stops the start).
accounts::AccountRecord parse_copy_line(std::string_view line) {
  Fields<12> fields(line);
  if (fields.count != 12)
    throw std::runtime_error("account " + std::string(fields[0]) + ": expected 12 columns, found " +
                             std::to_string(fields.count));

  accounts::AccountRecord r;
  auto uuid = accounts::Uuid::parse(fields[0]);
  if (!uuid) throw std::runtime_error("account " + std::string(fields[0]) + ": id is not a UUID");
  r.id = *uuid;
  const auto id_text = r.id.text();  // names the account in messages, without an allocation
  const std::string_view id = id_text.view();
  auto name = [id] { return "account " + std::string(id); };

  r.email = unescape(fields[1]);
  auto checked = accounts::check_email(r.email);
  if (!checked.normalized) throw std::runtime_error(name() + ": email is invalid: " + checked.problem);
  if (*checked.normalized != r.email) throw std::runtime_error(name() + ": email is not normalized (lower case)");

  auto state = accounts::parse_state(fields[2]);
  if (!state) throw std::runtime_error(name() + ": unknown state '" + unescape(fields[2]) + "'");
  r.state = *state;

  std::string escaped_hash;  // only when the field has escapes (a valid hash has none)
  std::string_view hash = fields[3];
  if (hash.find('\\') != std::string_view::npos) hash = escaped_hash = unescape(hash);
  std::string problem;
  auto stored = accounts::PasswordHash::checked(hash, problem);
  if (!stored) throw std::runtime_error(name() + ": password_hash: " + problem);
  r.password_hash = std::move(*stored);

  r.created_ms = number(fields[4], "created_ms", id);
  r.updated_ms = number(fields[5], "updated_ms", id);
  r.confirmed_ms = number(fields[6], "confirmed_ms", id);
  int64_t version = number(fields[7], "version", id);
  if (version < 1) throw std::runtime_error(name() + ": version must be 1 or more");
  r.version = static_cast<uint64_t>(version);
  r.confirm = token(fields[8], number(fields[9], "confirm_expires_ms", id), "confirm_digest", id);
  r.reset = token(fields[10], number(fields[11], "reset_expires_ms", id), "reset_digest", id);
  if (r.state == accounts::State::active && r.confirmed_ms == 0)
    throw std::runtime_error(name() + ": active but never confirmed (confirmed_ms = 0)");
  return r;
}

// The same for sessions, which may be several per account.
accounts::SessionRow parse_session_line(std::string_view line) {
  Fields<8> fields(line);
  if (fields.count != 8)
    throw std::runtime_error("session " + std::string(fields[0]) + ": expected 8 columns, found " +
                             std::to_string(fields.count));
  accounts::SessionRow r;
  auto uuid = accounts::Uuid::parse(fields[0]);
  if (!uuid) throw std::runtime_error("session " + std::string(fields[0]) + ": id is not a UUID");
  r.id = *uuid;
  const auto id_text = r.id.text();
  const std::string_view id = id_text.view();
  auto name = [id] { return "session " + std::string(id); };
  auto account = accounts::Uuid::parse(fields[1]);
  if (!account) throw std::runtime_error(name() + ": account_id is not a UUID");
  r.account = *account;
  auto digest = parse_hex_digest(fields[2]);
  if (!digest) throw std::runtime_error(name() + ": token_digest is not a 64-digit hex digest");
  r.digest = *digest;
  r.created_ms = number(fields[3], "created_ms", id, "session");
  r.last_used_ms = number(fields[4], "last_used_ms", id, "session");
  r.expires_ms = number(fields[5], "expires_ms", id, "session");
  if (r.created_ms <= 0 || r.last_used_ms < r.created_ms || r.expires_ms < r.created_ms)
    throw std::runtime_error(name() + ": times out of order (created, last used, expires)");
  r.label = unescape(fields[6]);
  r.source = unescape(fields[7]);
  if (r.label.size() > 128 || r.source.size() > 64)
    throw std::runtime_error(name() + ": label over 128 bytes or source over 64 bytes");
  return r;
}

}  // namespace db
