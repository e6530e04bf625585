#include "accounts/uuid.hpp"

#include <sodium.h>

namespace accounts {

Uuid Uuid::v7(int64_t unix_ms) {
  Uuid id;
  randombytes_buf(id.bytes.data(), id.bytes.size());
  auto ms = static_cast<uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i) id.bytes[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  id.bytes[6] = static_cast<uint8_t>(0x70 | (id.bytes[6] & 0x0f));  // version 7
  id.bytes[8] = static_cast<uint8_t>(0x80 | (id.bytes[8] & 0x3f));  // RFC 4122 variant
  return id;
}

std::optional<Uuid> Uuid::parse(std::string_view text) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return std::nullopt;
  Uuid id;
  int bad = 0;  // any -1 among the digits, tested once at the end
  size_t i = 0;
  for (uint8_t& byte : id.bytes) {
    if (i == 8 || i == 13 || i == 18 || i == 23) ++i;
    int high = hex_value(text[i]);
    int low = hex_value(text[i + 1]);
    bad |= high | low;
    byte = static_cast<uint8_t>(high << 4 | (low & 0x0f));
    i += 2;
  }
  if (bad < 0) return std::nullopt;
  return id;
}

Uuid::Text Uuid::text() const {
  static constexpr char kHex[] = "0123456789abcdef";
  Text t;
  char* out = t.chars;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
    *out++ = kHex[bytes[i] >> 4];
    *out++ = kHex[bytes[i] & 0x0f];
  }
  return t;
}

}  // namespace accounts
