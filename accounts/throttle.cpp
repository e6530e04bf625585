#include "accounts/throttle.hpp"

#include <arpa/inet.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace accounts {
namespace {

constexpr int64_t kHourMs = 3'600'000;

const unsigned char* process_key() {
  static const auto key = [] {
    std::array<unsigned char, crypto_shorthash_KEYBYTES> k;
    randombytes_buf(k.data(), k.size());
    return k;
  }();
  return key.data();
}

uint64_t keyed_digest(char kind, std::string_view bytes) {
  std::string input(1, kind);
  input.append(bytes);
  uint64_t out;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&out), reinterpret_cast<const unsigned char*>(input.data()),
                   input.size(), process_key());
  return out == 0 ? 1 : out;  // 0 marks a free slot
}

}  // namespace

SourceKey source_key(std::string_view source) {
  std::string text(source);
  unsigned char v6[16];
  if (inet_pton(AF_INET6, text.c_str(), v6) == 1) {
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(v6, kMapped, 12) == 0) return keyed_digest('4', {reinterpret_cast<char*>(v6 + 12), 4});
    return keyed_digest('6', {reinterpret_cast<char*>(v6), 8});  // the /64
  }
  unsigned char v4[4];
  if (inet_pton(AF_INET, text.c_str(), v4) == 1) return keyed_digest('4', {reinterpret_cast<char*>(v4), 4});
  return keyed_digest('s', source);
}

uint64_t email_key(std::string_view normalized_email) { return keyed_digest('e', normalized_email); }

const LoginThrottle::Streak* LoginThrottle::streak_of(SourceKey source) const {
  for (const auto& s : streaks_)
    if (s.source == source) return &s;
  return nullptr;
}

bool LoginThrottle::known(SourceKey source) const {
  return std::find(known_.begin(), known_.end(), source) != known_.end();
}

bool LoginThrottle::hour_spent(const ThrottlePolicy& policy, int64_t now) const {
  return now - hour_started_ms_ < kHourMs && hour_failures_ >= policy.hourly_limit;
}

int64_t LoginThrottle::wait_ms(const ThrottlePolicy& policy, SourceKey source, int64_t now) const {
  int64_t wait = 0;
  if (const Streak* s = streak_of(source); s && s->locked_until_ms > now) wait = s->locked_until_ms - now;
  if (hour_spent(policy, now) && !known(source)) wait = std::max(wait, hour_started_ms_ + kHourMs - now);
  return wait;
}

bool LoginThrottle::failed(const ThrottlePolicy& policy, SourceKey source, int64_t now) {
  if (hour_failures_ == 0 || now - hour_started_ms_ >= kHourMs) {
    hour_started_ms_ = now;
    hour_failures_ = 0;
  }
  ++hour_failures_;

  auto it = std::find_if(streaks_.begin(), streaks_.end(), [source](const Streak& s) { return s.source == source; });
  if (it == streaks_.end()) {
    if (streaks_.size() >= kMaxStreaks) {
      // Forget the streak that matters least: an unlocked one before a locked one, older first.
      auto victim = std::min_element(streaks_.begin(), streaks_.end(), [now](const Streak& a, const Streak& b) {
        bool a_locked = a.locked_until_ms > now, b_locked = b.locked_until_ms > now;
        if (a_locked != b_locked) return !a_locked;
        return a.started_ms < b.started_ms;
      });
      streaks_.erase(victim);
    }
    streaks_.push_back(Streak{source, 0, now, 0});
    it = streaks_.end() - 1;
  }
  if (it->failures == 0 || now - it->started_ms > policy.window_ms) {
    it->failures = 0;
    it->started_ms = now;
  }
  if (++it->failures >= policy.threshold) {
    it->failures = 0;
    it->locked_until_ms = now + policy.window_ms;
    return true;
  }
  return false;
}

void LoginThrottle::succeeded(SourceKey source) {
  std::erase_if(streaks_, [source](const Streak& s) { return s.source == source; });
  if (known(source)) return;
  known_[known_next_] = source;
  known_next_ = static_cast<uint8_t>((known_next_ + 1) % kMaxKnown);
}

void LoginThrottle::password_changed() {
  streaks_.clear();
  streaks_.shrink_to_fit();
  hour_failures_ = 0;
}

bool LoginThrottle::forgettable(const ThrottlePolicy& policy, int64_t now) const {
  if (known_[0] != 0) return false;
  if (hour_failures_ > 0 && now - hour_started_ms_ < kHourMs) return false;
  for (const auto& s : streaks_)
    if (s.locked_until_ms > now || now - s.started_ms <= policy.window_ms) return false;
  return true;
}

int64_t UnknownEmailThrottles::wait_ms(const ThrottlePolicy& policy, uint64_t email, SourceKey source, int64_t now) {
  std::lock_guard lock(mutex_);
  auto it = by_email_.find(email);
  return it == by_email_.end() ? 0 : it->second->second.wait_ms(policy, source, now);
}

namespace {

// The entry of `key` in a bounded LRU list, moved to the front; a new one (`fresh`) when there is
// none, for which the least recently touched entry is forgotten once `capacity` is reached.
template <class Key, class Value>
Value& touch(std::list<std::pair<Key, Value>>& lru,
             std::unordered_map<Key, typename std::list<std::pair<Key, Value>>::iterator>& index, Key key,
             size_t capacity, Value fresh) {
  auto it = index.find(key);
  if (it != index.end()) {
    lru.splice(lru.begin(), lru, it->second);
    return lru.front().second;
  }
  if (lru.size() >= capacity) {
    index.erase(lru.back().first);
    lru.pop_back();
  }
  lru.emplace_front(key, std::move(fresh));
  index[key] = lru.begin();
  return lru.front().second;
}

}  // namespace

bool UnknownEmailThrottles::failed(const ThrottlePolicy& policy, uint64_t email, SourceKey source, int64_t now) {
  std::lock_guard lock(mutex_);
  return touch(entries_, by_email_, email, capacity_, LoginThrottle{}).failed(policy, source, now);
}

int64_t AddressThrottles::wait_ms(SourceKey address, int64_t now) const {
  std::lock_guard lock(mutex_);
  auto it = by_address_.find(address);
  if (it == by_address_.end() || it->second->second.locked_until_ms <= now) return 0;
  return it->second->second.locked_until_ms - now;
}

bool AddressThrottles::failed(SourceKey address, int64_t window_ms, int64_t now) {
  std::lock_guard lock(mutex_);
  Entry& e = touch(entries_, by_address_, address, capacity_, Entry{0, now, 0});
  if (now - e.started_ms > window_ms) {
    e.failures = 0;
    e.started_ms = now;
  }
  if (++e.failures < threshold_) return false;
  e.failures = 0;
  e.started_ms = now;
  e.locked_until_ms = now + window_ms;
  return true;
}

size_t AddressThrottles::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

size_t UnknownEmailThrottles::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace accounts
