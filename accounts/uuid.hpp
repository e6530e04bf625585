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
  std::string to_string() const;
  auto operator<=>(const Uuid&) const = default;
};

struct UuidHash {
  size_t operator()(const Uuid& id) const {
    size_t h;  // the last eight bytes are random in a v7 id
    std::memcpy(&h, id.bytes.data() + 8, sizeof h);
    return h;
  }
};

}  // namespace accounts
