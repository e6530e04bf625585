// db/rows.cpp: an account row read back from COPY. The warm-load reads the binary format and the
// replica's follower and the export read text; both must accept the same rows into the same
// records and refuse the same rows with the same message.
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

std::string binary_tuple(const Row& r) {
  std::string out("\0\x0c", 2);  // 12 fields
  auto bytes = [&out](const std::string& field) {
    put32(out, static_cast<uint32_t>(field.size()));
    out += field;
  };
  auto bigint = [&out](int64_t v) {
    put32(out, 8);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((static_cast<uint64_t>(v) >> shift) & 0xff);
  };
  std::string uuid;
  for (size_t i = 0; i < r.id.size(); i += 2) {
    if (r.id[i] == '-') ++i;
    uuid += static_cast<char>(std::stoi(r.id.substr(i, 2), nullptr, 16));
  }
  bytes(uuid);
  bytes(r.email);
  bytes(r.state);
  bytes(r.hash);
  bigint(r.created);
  bigint(r.updated);
  bigint(r.confirmed);
  bigint(r.version);
  bytes(r.confirm_digest);
  bigint(r.confirm_expires);
  bytes(r.reset_digest);
  bigint(r.reset_expires);
  return out;
}

struct Outcome {
  std::optional<accounts::AccountRecord> record;
  std::string error;
};

template <class Parse>
Outcome outcome(Parse parse, const std::string& row) {
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
    Outcome text = outcome(db::parse_copy_line, text_line(row));
    Outcome binary = outcome(db::parse_copy_tuple, binary_tuple(row));
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
