// Byte scans of the request and reply paths, sixteen bytes at a time where SSE2 is there (every
// x86-64), one at a time elsewhere. A profile of WHOAMI at pipeline depth 16 put 11% of the
// daemon's samples in the one-byte loop that decides whether a reply value needs quotes, and 8%
// more in the tokenizer's loops (docs/BENCHMARKS.md, "Sixteen bytes at a time").
//
// Most values are shorter than a block or end in a part of one (an id is 36 bytes, a timestamp
// 24), so the rest is not left to a one-byte loop: it is read as one more block that overlaps the
// last, or, in a text shorter than 16 bytes, as two overlapping halves of 8 or 4 bytes. No load
// reads outside the text.
//
// Each scan answers exactly what its one-byte loop answers; tests/unit/protocol_test.cpp holds
// them to it for every length up to 50, every position and every byte value, and fuzz_tokenizer
// runs them on every input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace protocol::scan {
namespace detail {

// The index of the first byte at or after `from` for which `hit` holds, or text.size().
// `hits(block)` answers the same for sixteen bytes at once, as a mask with bit k for byte k.
template <typename Hits, typename Hit>
size_t first(std::string_view text, size_t from, Hits hits, Hit hit) {
  const char* p = text.data() + from;
  size_t n = text.size() - from;
#if defined(__SSE2__)
  auto load8 = [](const char* at) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(at)); };
  auto load4 = [](const char* at) {
    int32_t word;
    std::memcpy(&word, at, sizeof word);
    return _mm_cvtsi32_si128(word);
  };
  auto found = [&](size_t at) { return from + at; };
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    if (int mask = hits(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))))
      return found(i + static_cast<size_t>(__builtin_ctz(mask)));
  size_t rest = n - i;
  if (rest == 0) return text.size();
  if (i > 0) {  // the last 16 bytes, of which the first 16 - rest were seen already
    int mask = hits(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16))) >> (16 - rest);
    return mask ? found(i + static_cast<size_t>(__builtin_ctz(mask))) : text.size();
  }
  if (n >= 8) {  // bytes 0-7 in lanes 0-7, bytes n-8 to n-1 in lanes 8-15
    int mask = hits(_mm_unpacklo_epi64(load8(p), load8(p + n - 8)));
    if (mask & 0xff) return found(static_cast<size_t>(__builtin_ctz(mask)));
    return mask ? found(n - 8 + static_cast<size_t>(__builtin_ctz(mask >> 8))) : text.size();
  }
  if (n >= 4) {  // bytes 0-3 in lanes 0-3, bytes n-4 to n-1 in lanes 4-7; lanes 8-15 ignored
    int mask = hits(_mm_unpacklo_epi32(load4(p), load4(p + n - 4))) & 0xff;
    if (mask & 0x0f) return found(static_cast<size_t>(__builtin_ctz(mask)));
    return mask ? found(n - 4 + static_cast<size_t>(__builtin_ctz(mask >> 4))) : text.size();
  }
#else
  (void)hits;
#endif
  for (size_t k = 0; k < n; ++k)
    if (hit(p[k])) return from + k;
  return text.size();
}

}  // namespace detail

// The index of the first byte at or after `from` that is one of `Cs`, or text.size().
template <char... Cs>
size_t find_first_of(std::string_view text, size_t from = 0) {
#if defined(__SSE2__)
  auto hits = [](__m128i block) {
    __m128i any = _mm_setzero_si128();
    ((any = _mm_or_si128(any, _mm_cmpeq_epi8(block, _mm_set1_epi8(Cs)))), ...);
    return _mm_movemask_epi8(any);
  };
#else
  int hits = 0;
#endif
  return detail::first(text, from, hits, [](char c) { return ((c == Cs) || ...); });
}

// True when every byte is printable ASCII (0x20 to 0x7e) or a tab: the usual request, which then
// needs neither the control-byte check nor UTF-8 decoding. False says only "look closer".
inline bool printable_ascii(std::string_view text) {
#if defined(__SSE2__)
  auto hits = [](__m128i block) {
    // Signed bytes: 0x80-0xff are negative, so "greater than 0x1f" leaves them out too.
    __m128i printable = _mm_and_si128(_mm_cmpgt_epi8(block, _mm_set1_epi8(0x1f)),
                                      _mm_cmplt_epi8(block, _mm_set1_epi8(0x7f)));
    __m128i ok = _mm_or_si128(printable, _mm_cmpeq_epi8(block, _mm_set1_epi8('\t')));
    return _mm_movemask_epi8(ok) ^ 0xffff;
  };
#else
  int hits = 0;
#endif
  auto outside = [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u > 0x7e;
  };
  return detail::first(text, 0, hits, outside) == text.size();
}

}  // namespace protocol::scan
