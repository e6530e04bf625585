// bench/read_path_speed: nanoseconds that steps of every GET or WHOAMI take on this machine: a
// clock read (exact and coarse, wall and monotonic: the lease check and WHOAMI's expiry check,
// accounts/clock.hpp), Uuid::parse (twice a GET) and time_text (two timestamps a GET, three a
// WHOAMI). docs/BENCHMARKS.md, "The id parsed sixteen bytes at a time" and "Two digits at a time".
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
#include "accounts/uuid.hpp"

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int n = argc > 2 ? std::atoi(argv[2]) : 10'000'000;
  std::vector<std::string> ids;
  for (int i = 0; i < 1024; ++i) ids.push_back(accounts::Uuid::v7(1'700'000'000'000 + i).to_string());
  // Times within a few days of each other, as a connection's replies show them.
  std::vector<int64_t> times;
  for (int i = 0; i < 1024; ++i) times.push_back(1'795'527'134'276 + int64_t{i} * 987'654'321 % 400'000'000);
  size_t next = 0;
  const std::vector<std::pair<const char*, std::function<int64_t()>>> steps = {
      {"clock_gettime(CLOCK_REALTIME)", [] { return accounts::clock_ms(CLOCK_REALTIME); }},
      {"clock_gettime(CLOCK_MONOTONIC)", [] { return accounts::clock_ms(CLOCK_MONOTONIC); }},
      {"clock_gettime(CLOCK_REALTIME_COARSE)", [] { return accounts::coarse_wall_ms(); }},
      {"clock_gettime(CLOCK_MONOTONIC_COARSE)", [] { return accounts::coarse_steady_ms(); }},
      {"Uuid::parse", [&] { return int64_t{accounts::Uuid::parse(ids[next++ % ids.size()])->bytes[15]}; }},
      {"time_text", [&] { return int64_t{accounts::time_text(times[next++ % times.size()]).chars[22]}; }},
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
