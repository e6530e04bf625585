// bench/read_path_speed: nanoseconds that steps of every GET or WHOAMI take on this machine: a
// clock read (exact and coarse, wall and monotonic: the lease check and WHOAMI's expiry check,
// accounts/clock.hpp), Uuid::parse (twice a GET), Uuid::text (once a GET, twice a WHOAMI), the
// session token's shape check (once a WHOAMI), time_text (two timestamps a GET, three a WHOAMI),
// and the reply a GET and a WHOAMI build from an account (the view's six fields; a WHOAMI's two
// more). docs/BENCHMARKS.md, "The id parsed sixteen bytes at a time", "Two digits at a time" and
// "A reply written in one pass".
//
//   build/read_path_speed [ROUNDS] [CALLS_PER_ROUND]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "accounts/clock.hpp"
#include "accounts/record.hpp"
#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int n = argc > 2 ? std::atoi(argv[2]) : 10'000'000;
  std::vector<std::string> ids;
  for (int i = 0; i < 1024; ++i) ids.push_back(accounts::Uuid::v7(1'700'000'000'000 + i).to_string());
  // Times within a few days of each other, as a connection's replies show them.
  std::vector<int64_t> times;
  for (int i = 0; i < 1024; ++i) times.push_back(1'795'527'134'276 + int64_t{i} * 987'654'321 % 400'000'000);
  std::vector<accounts::AccountRecord> records(1024);
  for (size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    r.id = *accounts::Uuid::parse(ids[i]);
    r.email = "user" + std::to_string(i * 977) + "@bench.example";
    r.state = accounts::State::active;
    r.created_ms = times[i];
    r.updated_ms = times[(i + 1) % times.size()];
    r.version = 1 + i % 3;
  }
  auto view = [&](size_t i) {
    auto reply = protocol::Reply::ok();
    accounts::add_view(reply, records[i % records.size()]);
    return reply;
  };
  accounts::init_secrets();
  std::vector<std::string> tokens;
  for (int i = 0; i < 1024; ++i) tokens.push_back(accounts::new_token());
  size_t next = 0;
  const std::vector<std::pair<const char*, std::function<int64_t()>>> steps = {
      {"clock_gettime(CLOCK_REALTIME)", [] { return accounts::clock_ms(CLOCK_REALTIME); }},
      {"clock_gettime(CLOCK_MONOTONIC)", [] { return accounts::clock_ms(CLOCK_MONOTONIC); }},
      {"clock_gettime(CLOCK_REALTIME_COARSE)", [] { return accounts::coarse_wall_ms(); }},
      {"clock_gettime(CLOCK_MONOTONIC_COARSE)", [] { return accounts::coarse_steady_ms(); }},
      {"Uuid::parse", [&] { return int64_t{accounts::Uuid::parse(ids[next++ % ids.size()])->bytes[15]}; }},
      {"token_shaped", [&] { return int64_t{accounts::token_shaped(tokens[next++ % tokens.size()])}; }},
      {"Uuid::text", [&] { return int64_t{records[next++ % records.size()].id.text().chars[35]}; }},
      {"time_text", [&] { return int64_t{accounts::time_text(times[next++ % times.size()]).chars[22]}; }},
      {"GET's reply (Reply::ok, add_view)", [&] { return static_cast<int64_t>(view(next++).line().size()); }},
      {"WHOAMI's reply (and session, expires)",
       [&] {
         size_t i = next++;
         auto reply = view(i);
         accounts::add_session_fields(reply, records[(i + 7) % records.size()].id, times[(i + 3) % times.size()]);
         return static_cast<int64_t>(reply.line().size());
       }},
  };
  int64_t sink = 0;
  for (int round = 1; round <= rounds; ++round)
    for (const auto& [name, step] : steps) {
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) sink += step();
      double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / n;
      std::printf("round %d  %-40s %6.1f ns\n", round, name, ns);
    }
  return sink == 42 ? 1 : 0;  // keeps the calls
}
