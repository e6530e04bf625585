#pragma once
// Account ids: UUIDv7 (time-ordered, 74 random bits), written in canonical lower-case form.
#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace accounts {

struct Uuid {
  std::array<uint8_t, 16> bytes{};

  static Uuid v7(int64_t unix_ms);
  static std::optional<Uuid> parse(std::string_view text);  // canonical 8-4-4-4-12 hex, any case
  // The canonical text in a fixed buffer: replies use it without allocating.
  struct Text {
    char chars[36];
    std::string_view view() const { return {chars, sizeof chars}; }
  };
  Text text() const;
  std::string to_string() const { return std::string(text().view()); }
  auto operator<=>(const Uuid&) const = default;
};

// Mixes all 16 bytes (a splitmix64 finalizer): the index keeps the low bits of the hash, and ids
// loaded from the database need not be random anywhere in particular.
struct UuidHash {
  size_t operator()(const Uuid& id) const {
    uint64_t high, low;
    std::memcpy(&high, id.bytes.data(), sizeof high);
    std::memcpy(&low, id.bytes.data() + 8, sizeof low);
    uint64_t x = high ^ (low * 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<size_t>(x ^ (x >> 31));
  }
};

}  // namespace accounts
