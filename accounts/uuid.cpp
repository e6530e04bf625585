#include "accounts/uuid.hpp"

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
#if defined(__SSE2__)
  // Sixteen digits at a time (a GET parses its id twice, and the scalar loop of table loads was
  // 9% of a GET's samples at pipeline depth 16). The 32 digits without their dashes, then per
  // byte: its value as a decimal digit or as a letter a-f in either case, and whether it is one.
  const char* p = text.data();
  auto load = [p](size_t at, size_t n) {
    uint64_t v = 0;
    std::memcpy(&v, p + at, n);
    return v;
  };
  // Built in registers: sixteen bytes stored in pieces and loaded whole would stall on the store.
  __m128i first = _mm_set_epi64x(static_cast<int64_t>(load(9, 4) | load(14, 4) << 32), static_cast<int64_t>(load(0, 8)));
  __m128i second = _mm_set_epi64x(static_cast<int64_t>(load(28, 8)), static_cast<int64_t>(load(19, 4) | load(24, 4) << 32));
  // Unsigned x <= limit, byte by byte (SSE2 has only signed byte comparisons).
  auto at_most = [](__m128i x, char limit) {
    __m128i l = _mm_set1_epi8(limit);
    return _mm_cmpeq_epi8(_mm_max_epu8(x, l), l);
  };
  int bad = 0;
  auto bytes_of = [&](__m128i v) {
    __m128i decimal = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    __m128i letter = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i is_decimal = at_most(decimal, 9), is_letter = at_most(letter, 5);
    bad |= _mm_movemask_epi8(_mm_or_si128(is_decimal, is_letter)) ^ 0xffff;
    __m128i value = _mm_or_si128(_mm_and_si128(is_decimal, decimal),
                                 _mm_and_si128(is_letter, _mm_add_epi8(letter, _mm_set1_epi8(10))));
    // Each 16-bit lane holds a high digit in its low byte and a low digit in its high byte.
    __m128i high = _mm_and_si128(_mm_slli_epi16(value, 4), _mm_set1_epi16(0x00f0));
    return _mm_or_si128(high, _mm_srli_epi16(value, 8));
  };
  __m128i bytes = _mm_packus_epi16(bytes_of(first), bytes_of(second));
  if (bad != 0) return std::nullopt;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(id.bytes.data()), bytes);
#else
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
#endif
  return id;
}

// Every GET shows an id and every WHOAMI two: each byte's two digits come from a table of "00" to
// "ff", written at fixed places (docs/BENCHMARKS.md, "A reply written in one pass").
Uuid::Text Uuid::text() const {
  static constexpr auto kPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<char, 512> pairs{};
    for (size_t i = 0; i < 256; ++i) {
      pairs[2 * i] = kHex[i >> 4];
      pairs[2 * i + 1] = kHex[i & 0x0f];
    }
    return pairs;
  }();
  // Where byte i's digits go in 8-4-4-4-12.
  static constexpr std::array<uint8_t, 16> kAt = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  Text t;
  for (size_t i = 0; i < bytes.size(); ++i) std::memcpy(&t.chars[kAt[i]], &kPairs[2 * bytes[i]], 2);
  t.chars[8] = t.chars[13] = t.chars[18] = t.chars[23] = '-';
  return t;
}

}  // namespace accounts
