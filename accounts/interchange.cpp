#include "accounts/interchange.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>

#include "accounts/email.hpp"

namespace accounts {
namespace {

using json = nlohmann::json;

std::optional<int> digits(std::string_view text, size_t at, size_t count) {
  if (at + count > text.size()) return std::nullopt;
  int value = 0;
  for (size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z): replies and exports could
// not show a later time, so an import refuses it rather than store what it cannot give back.
constexpr int64_t kLastTimeMs = 253402300799999;

// A time field: an RFC 3339 string or Unix milliseconds, up to kLastTimeMs.
std::optional<int64_t> time_of(const json& value) {
  std::optional<int64_t> ms;
  if (value.is_number_integer()) ms = value.get<int64_t>();
  if (value.is_string()) ms = parse_time(value.get_ref<const std::string&>());
  if (ms && *ms > kLastTimeMs) return std::nullopt;
  return ms;
}

const char* kKnownKeys[] = {"id", "email", "state", "created", "updated", "confirmed", "password_hash", "salt"};

}  // namespace

std::optional<int64_t> parse_time(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  auto year = digits(t, 0, 4), month = digits(t, 5, 2), day = digits(t, 8, 2);
  auto hour = digits(t, 11, 2), minute = digits(t, 14, 2), second = digits(t, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || t[13] != ':' || t[16] != ':')
    return std::nullopt;
  std::chrono::year_month_day date{std::chrono::year(*year), std::chrono::month(static_cast<unsigned>(*month)),
                                   std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  size_t at = 19;
  int64_t millis = 0;
  if (at < t.size() && t[at] == '.') {
    size_t start = ++at;
    int64_t scale = 100;
    while (at < t.size() && t[at] >= '0' && t[at] <= '9') {
      millis += (t[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == start) return std::nullopt;
  }
  int64_t offset_minutes = 0;
  if (at < t.size() && (t[at] == 'Z' || t[at] == 'z')) {
    ++at;
  } else if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
    auto oh = digits(t, at + 1, 2), om = digits(t, at + 4, 2);
    if (!oh || !om || at + 3 >= t.size() || t[at + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset_minutes = (*oh * 60 + *om) * (t[at] == '+' ? 1 : -1);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != t.size()) return std::nullopt;
  int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  int64_t seconds = days * 86400 + *hour * 3600 + *minute * 60 + std::min(*second, 59) - offset_minutes * 60;
  return seconds * 1000 + millis;
}

ImportedLine parse_import_line(std::string_view line, const ImportOptions& options) {
  ImportedLine out;
  json object = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded()) {
    out.problem = "not valid JSON";
    return out;
  }
  if (!object.is_object()) {
    out.problem = "not a JSON object";
    return out;
  }
  for (const auto& [key, value] : object.items()) {
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) == std::end(kKnownKeys)) {
      out.problem = "unknown key \"" + key.substr(0, 40) + "\"";
      return out;
    }
  }
  auto text = [&](const char* key) -> const std::string* {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
  };
  auto fail = [&](std::string problem) {
    out.problem = std::move(problem);
    return out;
  };

  AccountRecord r;
  if (object.contains("id")) {
    const std::string* id = text("id");
    auto uuid = id ? Uuid::parse(*id) : std::nullopt;
    if (!uuid) return fail("id is not a UUID");
    r.id = *uuid;
  }

  const std::string* email = text("email");
  if (!email) return fail("email missing or not a string");
  auto checked = check_email(*email);
  if (!checked.normalized) return fail("email is invalid: " + checked.problem);
  r.email = *checked.normalized;

  const std::string* state = text("state");
  if (!state) return fail("state missing or not a string");
  auto parsed_state = parse_state(*state);
  if (!parsed_state) return fail("state must be unconfirmed, active or deactivated");
  r.state = *parsed_state;

  auto created = object.contains("created") ? time_of(object["created"]) : std::nullopt;
  if (!created || *created <= 0) return fail("created missing, or not an RFC 3339 time or Unix milliseconds from 1970 to the year 9999");
  r.created_ms = *created;
  r.updated_ms = std::max(*created, options.now_ms);
  if (object.contains("updated")) {
    auto updated = time_of(object["updated"]);
    if (!updated || *updated < *created) return fail("updated is not a time at or after created");
    r.updated_ms = *updated;
  }
  // An active or deactivated account was confirmed (REACTIVATE needs to know); when the source
  // system does not say when, its creation is the best guess.
  if (object.contains("confirmed")) {
    auto confirmed = time_of(object["confirmed"]);
    if (!confirmed || *confirmed < *created) return fail("confirmed is not a time at or after created");
    if (r.state == State::unconfirmed) return fail("an unconfirmed account has no confirmed time");
    r.confirmed_ms = *confirmed;
  } else if (r.state != State::unconfirmed) {
    r.confirmed_ms = r.created_ms;
  }

  const std::string* hash = text("password_hash");
  if (!hash) return fail("password_hash missing or not a string");
  std::string stored = *hash;
  if (object.contains("salt")) {  // Firebase auth:export: passwordHash and salt, base64
    const std::string* salt = text("salt");
    if (!salt) return fail("salt is not a string");
    if (!options.firebase)
      return fail("a line with a salt is a Firebase scrypt hash: give the project's hash parameters (--firebase-*)");
    std::string problem;
    auto firebase = firebase_hash(*hash, *salt, *options.firebase, problem);
    if (!firebase) return fail("password_hash: " + problem);
    stored = *firebase;
  }
  auto check = check_hash(stored);
  if (!check.scheme) return fail("password_hash: " + check.problem);
  out.scheme = *check.scheme;
  r.password_hash = PasswordHash(stored);
  r.version = 1;
  out.record = std::move(r);
  return out;
}

std::string export_line(const AccountRecord& record) {
  json object = json::object();
  object["id"] = record.id.to_string();
  object["email"] = record.email.str();
  object["state"] = std::string(state_name(record.state));
  object["created"] = format_time(record.created_ms);
  object["updated"] = format_time(record.updated_ms);
  if (record.confirmed_ms != 0) object["confirmed"] = format_time(record.confirmed_ms);
  object["password_hash"] = record.password_hash.text();
  return object.dump() + "\n";
}

}  // namespace accounts
