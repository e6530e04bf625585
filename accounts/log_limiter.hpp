#pragma once
// A bound on how fast one kind of event may write log lines. Events an attacker can cause at will
// (refused connections, failed AUTH, accept errors, hashes failing for want of memory) must not
// be able to grow the log without bound: at most `per_second` lines a second are written, and the
// next line written says how many were left out in between.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace accounts {

class LogLimiter {
 public:
  explicit LogLimiter(uint32_t per_second) : per_second_(per_second) {}

  // What the line that is logged adds for the lines allow() held back: " (N more WHAT not
  // logged)", or nothing.
  static std::string not_logged(uint64_t suppressed, std::string_view what) {
    if (suppressed == 0) return {};
    return " (" + std::to_string(suppressed) + " more " + std::string(what) + " not logged)";
  }

  // True when this event may be logged now; `suppressed` is then how many were not logged since
  // the last one that was (0 most of the time). Any thread.
  bool allow(uint64_t& suppressed) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (now - window_start_ >= std::chrono::seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= per_second_) {
      ++suppressed_;
      return false;
    }
    ++in_window_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const uint32_t per_second_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point window_start_{};
  uint32_t in_window_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace accounts
