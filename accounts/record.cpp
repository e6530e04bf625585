#include "accounts/record.hpp"

#include <chrono>
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

std::string format_time(int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return text;
}

protocol::Reply& add_view(protocol::Reply& reply, const AccountRecord& record) {
  return reply.field("id", record.id.to_string())
      .field("email", record.email)
      .field("state", state_name(record.state))
      .field("created", format_time(record.created_ms))
      .field("updated", format_time(record.updated_ms))
      .field("version", record.version);
}

}  // namespace accounts
