// db/rows.cpp: an account or a session row read back from COPY. The warm-load reads the binary
// format and the replica's follower and the export read text; both must accept the same rows into
// the same records and refuse the same rows with the same message.
#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "accounts/secrets.hpp"
#include "db/rows.hpp"

namespace {

struct Row {
  std::string id = "01a20cc1-7344-7dae-aa15-339ece76400d";
  std::string email = "someone@example.com", state = "active", hash;
  int64_t created = 1700000000000, updated = 1700000000001, confirmed = 1700000000002, version = 3;
  std::string confirm_digest, reset_digest;
  int64_t confirm_expires = 0, reset_expires = 0;
};

// COPY's text escapes, as PostgreSQL writes them.
std::string escaped(const std::string& field) {
  std::string out;
  for (char c : field) {
    if (c == '\\') out += "\\\\";
    else if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string text_line(const Row& r) {
  return r.id + "\t" + escaped(r.email) + "\t" + escaped(r.state) + "\t" + escaped(r.hash) + "\t" +
         std::to_string(r.created) + "\t" + std::to_string(r.updated) + "\t" + std::to_string(r.confirmed) + "\t" +
         std::to_string(r.version) + "\t" + r.confirm_digest + "\t" + std::to_string(r.confirm_expires) + "\t" +
         r.reset_digest + "\t" + std::to_string(r.reset_expires);
}

void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// A tuple of COPY's binary format: the field count, then each field's length and bytes.
struct TupleWriter {
  std::string out;
  explicit TupleWriter(char fields) : out{'\0', fields} {}
  void bytes(const std::string& field) {
    put32(out, static_cast<uint32_t>(field.size()));
    out += field;
  }
  void bigint(int64_t v) {
    put32(out, 8);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((static_cast<uint64_t>(v) >> shift) & 0xff);
  }
};

// A uuid column as PostgreSQL sends it: 16 bytes. Text that is no UUID is sent as it is, which
// PostgreSQL never does, but which must be refused all the same.
std::string uuid_bytes(const std::string& text) {
  if (text.size() != 36) return text;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    if (text[i] == '-') ++i;
    out += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
  }
  return out;
}

std::string binary_tuple(const Row& r) {
  TupleWriter t(12);
  t.bytes(uuid_bytes(r.id));
  t.bytes(r.email);
  t.bytes(r.state);
  t.bytes(r.hash);
  t.bigint(r.created);
  t.bigint(r.updated);
  t.bigint(r.confirmed);
  t.bigint(r.version);
  t.bytes(r.confirm_digest);
  t.bigint(r.confirm_expires);
  t.bytes(r.reset_digest);
  t.bigint(r.reset_expires);
  return t.out;
}

// What a parser made of a row: the record, or the message it refused the row with.
template <class Record>
struct Outcome {
  std::optional<Record> record;
  std::string error;
};

template <class Parse>
auto outcome(Parse parse, const std::string& row) -> Outcome<decltype(parse(row))> {
  try {
    return {parse(row), ""};
  } catch (const std::runtime_error& e) {
    return {std::nullopt, e.what()};
  }
}

}  // namespace

TEST_CASE("rows: the binary and the text COPY formats give the same record or the same refusal", "[rows]") {
  accounts::init_secrets();
  const std::string hash = accounts::hash_password("correct horse", accounts::HashParams{1, 8});
  Row good;
  good.hash = hash;
  std::vector<std::pair<const char*, Row>> rows;
  auto with = [&](const char* what, auto change) {
    Row r = good;
    change(r);
    rows.emplace_back(what, r);
  };
  with("valid", [](Row&) {});
  with("valid with both tokens", [](Row& r) {
    r.confirm_digest = std::string(64, 'a'), r.confirm_expires = 1800000000000;
    r.reset_digest = std::string(64, '0'), r.reset_expires = 1800000000000;
  });
  with("valid, imported bcrypt", [](Row& r) { r.hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"; });
  with("unknown state", [](Row& r) { r.state = "bogus"; });
  with("email not normalized", [](Row& r) { r.email = "Someone@example.com"; });
  with("email with a tab", [](Row& r) { r.email = "some\tone@example.com"; });
  with("valid, email with a backslash (escaped in text)", [](Row& r) { r.email = "some\\one@example.com"; });
  with("email empty", [](Row& r) { r.email = ""; });
  with("hash not a hash", [](Row& r) { r.hash = "plain-text"; });
  with("version 0", [](Row& r) { r.version = 0; });
  with("negative version", [](Row& r) { r.version = -4; });
  with("active, never confirmed", [](Row& r) { r.confirmed = 0; });
  with("digest without expiry", [](Row& r) { r.confirm_digest = std::string(64, 'a'); });
  with("digest not hex", [](Row& r) { r.reset_digest = std::string(64, 'z'), r.reset_expires = 1; });
  with("digest too short", [](Row& r) { r.confirm_digest = "abcd", r.confirm_expires = 1; });
  for (const auto& [what, row] : rows) {
    INFO(what);
    auto text = outcome(db::parse_copy_line, text_line(row));
    auto binary = outcome(db::parse_copy_tuple, binary_tuple(row));
    CHECK(binary.error == text.error);
    REQUIRE(binary.record.has_value() == text.record.has_value());
    if (text.record) CHECK(*binary.record == *text.record);
    CHECK(text.record.has_value() == std::string(what).starts_with("valid"));
  }
}

TEST_CASE("rows: a binary tuple cut short, with a NULL or with the wrong field count is refused, never read past", "[rows]") {
  accounts::init_secrets();
  Row good;
  good.hash = accounts::hash_password("correct horse", accounts::HashParams{1, 8});
  const std::string tuple = binary_tuple(good);
  REQUIRE_NOTHROW(db::parse_copy_tuple(tuple));
  for (size_t cut = 0; cut < tuple.size(); ++cut) {
    INFO(cut);
    CHECK_THROWS_AS(db::parse_copy_tuple(tuple.substr(0, cut)), std::runtime_error);
  }
  CHECK_THROWS_AS(db::parse_copy_tuple(tuple + "x"), std::runtime_error);  // trailing bytes
  std::string eleven = tuple;
  eleven[1] = 11;
  CHECK_THROWS_WITH(db::parse_copy_tuple(eleven), "account row: expected 12 columns, found 11");
  // The email's length replaced by -1 (NULL), the rest shifted: refused, naming the account.
  std::string with_null = tuple.substr(0, 2 + 4 + 16) + std::string(4, '\xff') + tuple.substr(2 + 4 + 16 + 4 + good.email.size());
  CHECK_THROWS_WITH(db::parse_copy_tuple(with_null),
                    "account " + good.id + ": a column is NULL or the row is cut short");
  // A bigint column of the wrong width.
  Row odd = good;
  std::string narrow = binary_tuple(odd);
  const size_t created_at = 2 + (4 + 16) + (4 + good.email.size()) + (4 + good.state.size()) + (4 + good.hash.size());
  narrow = narrow.substr(0, created_at) + std::string("\0\0\0\x04\0\0\0\x01", 8) + narrow.substr(created_at + 12);
  CHECK_THROWS_WITH(db::parse_copy_tuple(narrow), "account " + good.id + ": column created_ms is not an integer");
}

namespace {

struct SessionRow {
  std::string id = "5e550000-0000-7000-8000-000000000005", account = "01a20cc1-7344-7dae-aa15-339ece76400d";
  std::string digest = std::string(62, 'a') + "09";
  int64_t created = 1700000000000, last_used = 1700000000500, expires = 1702592000000;
  std::string label = "Firefox on Linux", source = "192.0.2.7";
};

std::string text_line(const SessionRow& r) {
  return r.id + "\t" + r.account + "\t" + r.digest + "\t" + std::to_string(r.created) + "\t" +
         std::to_string(r.last_used) + "\t" + std::to_string(r.expires) + "\t" + escaped(r.label) + "\t" +
         escaped(r.source);
}

std::string binary_tuple(const SessionRow& r) {
  TupleWriter t(8);
  t.bytes(uuid_bytes(r.id));
  t.bytes(uuid_bytes(r.account));
  t.bytes(r.digest);
  t.bigint(r.created);
  t.bigint(r.last_used);
  t.bigint(r.expires);
  t.bytes(r.label);
  t.bytes(r.source);
  return t.out;
}

}  // namespace

TEST_CASE("rows: a session in the binary and the text COPY formats gives the same row or the same refusal", "[rows]") {
  SessionRow good;
  std::vector<std::pair<const char*, SessionRow>> rows;
  auto with = [&](const char* what, auto change) {
    SessionRow r = good;
    change(r);
    rows.emplace_back(what, r);
  };
  with("valid", [](SessionRow&) {});
  with("valid, no label or source", [](SessionRow& r) { r.label = r.source = ""; });
  with("valid, label with a tab and a backslash (escaped in text)", [](SessionRow& r) { r.label = "a\tb\\c"; });
  with("valid, label of 128 bytes and source of 64", [](SessionRow& r) {
    r.label = std::string(128, 'l'), r.source = std::string(64, 's');
  });
  with("valid, never used since it was opened", [](SessionRow& r) { r.last_used = r.created; });
  with("label over 128 bytes", [](SessionRow& r) { r.label = std::string(129, 'l'); });
  with("source over 64 bytes", [](SessionRow& r) { r.source = std::string(65, 's'); });
  with("account_id not a UUID", [](SessionRow& r) { r.account = "nobody"; });
  with("digest not hex", [](SessionRow& r) { r.digest = std::string(64, 'z'); });
  with("digest too short", [](SessionRow& r) { r.digest = "abcd"; });
  with("created at 0", [](SessionRow& r) { r.created = 0, r.last_used = 0; });
  with("used before it was opened", [](SessionRow& r) { r.last_used = r.created - 1; });
  with("expired before it was opened", [](SessionRow& r) { r.expires = r.created - 1; });
  for (const auto& [what, row] : rows) {
    INFO(what);
    auto text = outcome(db::parse_session_line, text_line(row));
    auto binary = outcome(db::parse_session_tuple, binary_tuple(row));
    CHECK(binary.error == text.error);
    REQUIRE(binary.record.has_value() == text.record.has_value());
    if (text.record) {
      CHECK(binary.record->id == text.record->id);
      CHECK(binary.record->account == text.record->account);
      CHECK(binary.record->digest == text.record->digest);
      CHECK(binary.record->created_ms == text.record->created_ms);
      CHECK(binary.record->last_used_ms == text.record->last_used_ms);
      CHECK(binary.record->expires_ms == text.record->expires_ms);
      CHECK(binary.record->label == row.label);
      CHECK(text.record->label == row.label);
      CHECK(binary.record->source == text.record->source);
    }
    CHECK(text.record.has_value() == std::string(what).starts_with("valid"));
  }
}

TEST_CASE("rows: a session tuple cut short, with a NULL or with the wrong field count is refused, never read past", "[rows]") {
  SessionRow good;
  const std::string tuple = binary_tuple(good);
  REQUIRE_NOTHROW(db::parse_session_tuple(tuple));
  for (size_t cut = 0; cut < tuple.size(); ++cut) {
    INFO(cut);
    CHECK_THROWS_AS(db::parse_session_tuple(tuple.substr(0, cut)), std::runtime_error);
  }
  CHECK_THROWS_AS(db::parse_session_tuple(tuple + "x"), std::runtime_error);  // trailing bytes
  std::string seven = tuple;
  seven[1] = 7;
  CHECK_THROWS_WITH(db::parse_session_tuple(seven), "session row: expected 8 columns, found 7");
  // The label's length replaced by -1 (NULL), the label's bytes dropped: refused, naming the session.
  const size_t label_at = 2 + (4 + 16) * 2 + (4 + 64) + (4 + 8) * 3;
  std::string with_null = tuple.substr(0, label_at) + std::string(4, '\xff') + tuple.substr(label_at + 4 + good.label.size());
  CHECK_THROWS_WITH(db::parse_session_tuple(with_null), "session " + good.id + ": a column is NULL or the row is cut short");
  const size_t created_at = 2 + (4 + 16) * 2 + (4 + 64);
  std::string narrow = tuple.substr(0, created_at) + std::string("\0\0\0\x04\0\0\0\x01", 8) + tuple.substr(created_at + 12);
  CHECK_THROWS_WITH(db::parse_session_tuple(narrow), "session " + good.id + ": column created_ms is not an integer");
}

TEST_CASE("rows: a replica's session key is read from 32 hex digits, or from the first 32 of a whole digest's 64", "[rows]") {
  const std::string whole = "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef";
  const accounts::SessionKey expected{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  CHECK(db::parse_hex_session_key(whole.substr(0, 32)) == expected);
  CHECK(db::parse_hex_session_key(whole) == expected);  // as replicas before the key sent it
  CHECK(db::hex(expected) == whole.substr(0, 32));
  CHECK_FALSE(db::parse_hex_session_key(whole.substr(0, 31)));
  CHECK_FALSE(db::parse_hex_session_key(whole.substr(0, 33)));
  CHECK_FALSE(db::parse_hex_session_key(whole.substr(0, 63)));
  CHECK_FALSE(db::parse_hex_session_key(""));
  CHECK_FALSE(db::parse_hex_session_key(whole.substr(0, 31) + "g"));
  CHECK_FALSE(db::parse_hex_session_key(whole.substr(0, 63) + "x"));  // all 64 must be hex
}
