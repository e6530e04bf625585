#pragma once
// Failed-login throttling (docs/PROTOCOL.md, "Lockout"), designed so that an attacker who knows
// only an email cannot keep its owner out, while guessing one password stays bounded per hour:
// - Failures count per source (the end user's address, which the backend passes): `threshold`
//   failures from one source within `window_ms` lock that source out for `window_ms`. The owner,
//   elsewhere, is not affected.
// - Failures from all sources count against an hourly limit per email. Once it is spent, only
//   sources that have logged in to this account before may still try; new ones are refused.
// - A password change forgets the failures (they were guesses at the old password).
// Pure: time is an argument, and each throttle belongs to one account actor (or, for emails of no
// account, to UnknownEmailThrottles, so that LOCKED tells nothing about whether an email exists).
#include <array>
#include <cstdint>
#include <list>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace accounts {

struct ThrottlePolicy {
  uint32_t threshold = 5;
  int64_t window_ms = 900'000;
  uint32_t hourly_limit = 50;
};

// A source reduced to a keyed 64-bit digest (the key is random per process, so nobody can aim at
// a collision). IPv6 addresses count per /64, IPv4-mapped ones as IPv4; anything that is not an IP
// address is taken byte for byte. The empty source (none given) is a source like any other.
using SourceKey = uint64_t;
SourceKey source_key(std::string_view source);
// The same digest for an email, for UnknownEmailThrottles.
uint64_t email_key(std::string_view normalized_email);

class LoginThrottle {
 public:
  // Milliseconds until `source` may try a password again; 0 when it may try now.
  int64_t wait_ms(const ThrottlePolicy& policy, SourceKey source, int64_t now) const;
  // True when this failure locked `source` out.
  bool failed(const ThrottlePolicy& policy, SourceKey source, int64_t now);
  void succeeded(SourceKey source);
  void password_changed();
  // Nothing is left that changes a decision: no failure inside its window, no known source.
  bool forgettable(const ThrottlePolicy& policy, int64_t now) const;

  static constexpr size_t kMaxStreaks = 16;  // sources tracked at once; the oldest streak goes first
  static constexpr size_t kMaxKnown = 4;     // sources remembered for having logged in

 private:
  struct Streak {
    SourceKey source;
    uint32_t failures;
    int64_t started_ms;
    int64_t locked_until_ms;
  };
  const Streak* streak_of(SourceKey source) const;
  bool known(SourceKey source) const;
  bool hour_spent(const ThrottlePolicy& policy, int64_t now) const;

  std::vector<Streak> streaks_;
  std::array<SourceKey, kMaxKnown> known_{};  // 0 = free slot
  uint8_t known_next_ = 0;
  uint32_t hour_failures_ = 0;
  int64_t hour_started_ms_ = 0;
};

// Throttles for emails that belong to no account, bounded in number: when full, the one touched
// longest ago is forgotten. Any thread.
class UnknownEmailThrottles {
 public:
  explicit UnknownEmailThrottles(size_t capacity) : capacity_(capacity) {}
  int64_t wait_ms(const ThrottlePolicy& policy, uint64_t email, SourceKey source, int64_t now);
  bool failed(const ThrottlePolicy& policy, uint64_t email, SourceKey source, int64_t now);
  size_t size() const;

 private:
  using Lru = std::list<std::pair<uint64_t, LoginThrottle>>;
  mutable std::mutex mutex_;
  size_t capacity_;
  Lru entries_;  // most recently touched first
  std::unordered_map<uint64_t, Lru::iterator> by_email_;
};

// Failed logins per address across all accounts (credential stuffing tries one password on many
// accounts from one address; LoginThrottle, which counts per account, never sees more than one).
// `threshold` failures within `window_ms` lock the address out for `window_ms`. Bounded: beyond
// `capacity` addresses, the one seen longest ago is forgotten. Any thread.
class AddressThrottles {
 public:
  AddressThrottles(size_t capacity, uint32_t threshold) : capacity_(capacity), threshold_(threshold) {}
  int64_t wait_ms(SourceKey address, int64_t now) const;
  // True when this failure locked the address out.
  bool failed(SourceKey address, int64_t window_ms, int64_t now);
  size_t size() const;

 private:
  struct Entry {
    uint32_t failures;
    int64_t started_ms;
    int64_t locked_until_ms;
  };
  using Lru = std::list<std::pair<SourceKey, Entry>>;
  mutable std::mutex mutex_;
  size_t capacity_;
  uint32_t threshold_;
  Lru entries_;  // most recently failed first
  std::unordered_map<SourceKey, Lru::iterator> by_address_;
};

}  // namespace accounts
