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

// Each byte's value as a hex digit (either case), or -1: one load a digit instead of three range
// tests (the range tests were 7% of a GET's samples at pipeline depth 16, and from_chars 3.5% of
// a warm-load of sessions). Callers OR the values and test for a negative once at the end.
inline constexpr std::array<int8_t, 256> kHexValue = [] {
  std::array<int8_t, 256> table{};
  table.fill(-1);
  for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[c] = static_cast<int8_t>(c - 'A' + 10);
  return table;
}();
inline int hex_value(char c) { return kHexValue[static_cast<unsigned char>(c)]; }

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
