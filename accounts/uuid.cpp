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
  if (text.size() != 36) return std::nullopt;
  Uuid id;
  size_t out = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i++] != '-') return std::nullopt;
      continue;
    }
    int value = 0;
    for (int k = 0; k < 2; ++k) {
      char c = text[i++];
      int nibble;
      if (c >= '0' && c <= '9') nibble = c - '0';
      else if (c >= 'a' && c <= 'f') nibble = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') nibble = c - 'A' + 10;
      else return std::nullopt;
      value = value * 16 + nibble;
    }
    id.bytes[out++] = static_cast<uint8_t>(value);
  }
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
