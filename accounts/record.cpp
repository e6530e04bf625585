#include "accounts/record.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <iterator>

namespace accounts {

std::string_view state_name(State state) {
  switch (state) {
    case State::unconfirmed: return "unconfirmed";
    case State::active: return "active";
    case State::deactivated: return "deactivated";
  }
  return "unknown";
}

std::optional<State> parse_state(std::string_view name) {
  for (State s : {State::unconfirmed, State::active, State::deactivated})
    if (state_name(s) == name) return s;
  return std::nullopt;
}

// Every reply that shows an account formats two or three of these: calendar arithmetic and
// digits by hand, no gmtime_r and no snprintf (the read path's profile showed both).
TimeText time_text(int64_t unix_ms) {
  using namespace std::chrono;
  constexpr int64_t kDayMs = 86'400'000;
  // RFC 3339 has years 0000 to 9999: a time outside shows as the nearest end, and the arithmetic
  // below cannot overflow.
  unix_ms = std::clamp<int64_t>(unix_ms, -62'167'219'200'000, 253'402'300'799'999);
  int64_t day = unix_ms / kDayMs - (unix_ms % kDayMs < 0 ? 1 : 0);  // floor, before 1970 too
  auto ms_of_day = static_cast<unsigned>(unix_ms - day * kDayMs);
  auto put = [](char* at, unsigned value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) at[i] = static_cast<char>('0' + value % 10);
  };
  // The calendar dates of the days last formatted on this thread, eight of them, each in the slot
  // its day number's low bits choose: a reply shows two or three timestamps (a WHOAMI's expiry is
  // on another day than the account's creation), and a connection's replies fall on a few days.
  struct Date {
    int64_t day = INT64_MIN;
    char text[10];
  };
  thread_local std::array<Date, 8> dates;
  Date& date_of_day = dates[static_cast<uint64_t>(day) % dates.size()];
  if (date_of_day.day != day) {
    year_month_day date{sys_days(days(day))};
    std::memcpy(date_of_day.text, "0000-00-00", sizeof date_of_day.text);
    put(&date_of_day.text[0], static_cast<unsigned>(static_cast<int>(date.year())), 4);
    put(&date_of_day.text[5], static_cast<unsigned>(date.month()), 2);
    put(&date_of_day.text[8], static_cast<unsigned>(date.day()), 2);
    date_of_day.day = day;
  }
  // The time of day two digits at a time, from a table of "00" to "99": a WHOAMI formats three
  // of these (docs/BENCHMARKS.md, "Two digits at a time").
  static constexpr auto kPairs = [] {
    std::array<char, 200> pairs{};
    for (int i = 0; i < 100; ++i) {
      pairs[2 * i] = static_cast<char>('0' + i / 10);
      pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
    return pairs;
  }();
  auto put2 = [](char* at, unsigned value) { std::memcpy(at, &kPairs[2 * value], 2); };
  TimeText out;
  char* text = out.chars;
  std::memcpy(text, date_of_day.text, sizeof date_of_day.text);
  std::memcpy(text + 10, "T00:00:00.000Z", 14);
  const unsigned second_of_day = ms_of_day / 1000, ms = ms_of_day % 1000;
  put2(&text[11], second_of_day / 3600);
  put2(&text[14], second_of_day / 60 % 60);
  put2(&text[17], second_of_day % 60);
  text[20] = static_cast<char>('0' + ms / 100);
  put2(&text[21], ms % 100);
  return out;
}

// Every GET, FIND and WHOAMI builds this, so it is written in one pass (docs/BENCHMARKS.md, "A
// reply written in one pass"): only the email, which a user chose, is checked for quoting.
protocol::Reply& add_view(protocol::Reply& reply, const AccountRecord& record) {
  const auto id = record.id.text();
  const auto created = time_text(record.created_ms), updated = time_text(record.updated_ms);
  char version[20];
  const char* version_end = std::to_chars(std::begin(version), std::end(version), record.version).ptr;
  return reply.fields({{"id", id.view()},
                       {"email", record.email, false},
                       {"state", state_name(record.state)},
                       {"created", created.view()},
                       {"updated", updated.view()},
                       {"version", {version, version_end}}});
}

protocol::Reply& add_session_fields(protocol::Reply& reply, const Uuid& session, int64_t expires_ms) {
  return reply.fields({{"session", session.text().view()}, {"expires", time_text(expires_ms).view()}});
}

}  // namespace accounts
