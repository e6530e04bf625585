#include "accounts/record.hpp"

#include <chrono>
#include <cstring>
#include <cstdio>
#include <ctime>

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

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Every reply that shows an account formats two or three of these: calendar arithmetic and
// digits by hand, no gmtime_r and no snprintf (the read path's profile showed both).
TimeText time_text(int64_t unix_ms) {
  using namespace std::chrono;
  auto ms = sys_time<milliseconds>(milliseconds(unix_ms));
  auto day = floor<days>(ms);
  year_month_day date{day};
  hh_mm_ss<milliseconds> time{ms - day};
  int y = static_cast<int>(date.year());
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;  // outside RFC 3339; clamp rather than overflow
  auto put = [](char* at, unsigned value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) at[i] = static_cast<char>('0' + value % 10);
  };
  TimeText out;
  char* text = out.chars;
  std::memcpy(text, "0000-00-00T00:00:00.000Z", sizeof out.chars);
  put(&text[0], static_cast<unsigned>(y), 4);
  put(&text[5], static_cast<unsigned>(date.month()), 2);
  put(&text[8], static_cast<unsigned>(date.day()), 2);
  put(&text[11], static_cast<unsigned>(time.hours().count()), 2);
  put(&text[14], static_cast<unsigned>(time.minutes().count()), 2);
  put(&text[17], static_cast<unsigned>(time.seconds().count()), 2);
  put(&text[20], static_cast<unsigned>(time.subseconds().count()), 3);
  return out;
}

protocol::Reply& add_view(protocol::Reply& reply, const AccountRecord& record) {
  return reply.field("id", record.id.text().view())
      .field("email", record.email)
      .field("state", state_name(record.state))
      .field("created", time_text(record.created_ms).view())
      .field("updated", time_text(record.updated_ms).view())
      .field("version", record.version);
}

}  // namespace accounts
