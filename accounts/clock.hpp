#pragma once
// Clocks for the checks made on every request: is a session's expiry still ahead (WHOAMI), is the
// database lease still confirmed (every command). clock_gettime of CLOCK_REALTIME or
// CLOCK_MONOTONIC reads the TSC, 41-49 ns a call on the bench machine and 2-3% of a GET's CPU at
// pipeline depth 16; the _COARSE clocks return the time of the last clock tick (every 4 ms there)
// in 11-12 ns (build/read_path_speed). A coarse reading is never later than the exact time, so a
// deadline far beyond it is certainly ahead; within kCoarseMarginMs of one, the exact clock
// decides, so no deadline is honoured a moment longer than before.
#include <time.h>

#include <cstdint>

namespace accounts {

// Far more than any tick: the coarse clocks lag the exact ones by at most one (4 ms at HZ=250).
inline constexpr int64_t kCoarseMarginMs = 100;

inline int64_t clock_ms(clockid_t id) {
  timespec t{};
  clock_gettime(id, &t);
  return int64_t{t.tv_sec} * 1000 + t.tv_nsec / 1'000'000;
}
// The wall clock (now_ms()'s, std::chrono::system_clock's) and the monotonic one
// (std::chrono::steady_clock's), coarse.
inline int64_t coarse_wall_ms() { return clock_ms(CLOCK_REALTIME_COARSE); }
inline int64_t coarse_steady_ms() { return clock_ms(CLOCK_MONOTONIC_COARSE); }

// Whether `deadline` is still ahead, given a coarse reading of its clock: decided by the reading
// when the deadline is more than the margin away, by `exact()` (the same clock, read exactly)
// otherwise.
template <class Exact>
bool deadline_ahead(int64_t deadline, int64_t coarse, Exact&& exact) {
  return coarse + kCoarseMarginMs < deadline || exact() < deadline;
}

// Milliseconds since the Unix epoch, exact: what timestamps are made of.
inline int64_t now_ms() { return clock_ms(CLOCK_REALTIME); }
// Milliseconds of the monotonic clock (std::chrono::steady_clock's), exact: what timeouts that a
// change of the wall clock must not move are measured in (the lease, a replica's lag).
inline int64_t steady_ms() { return clock_ms(CLOCK_MONOTONIC); }

}  // namespace accounts
