#include "text/utf8.h"

#include <array>
#include <cstring>

namespace oss4 {

namespace {

// total length of the sequence a lead byte starts (0: not a lead byte), and the allowed range of its second byte.
struct LeadInfo {
  uint8_t len, lo, hi;
};

constexpr LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // max U+10FFFF
  return {0, 0, 0};
}

constexpr bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

}  // namespace

size_t utf8_first_invalid(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ascii fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const uint8_t b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    const LeadInfo li = lead_info(b);
    if (li.len == 0 || i + li.len > n) return i;
    if (p[i + 1] < li.lo || p[i + 1] > li.hi) return i;
    for (size_t k = 2; k < li.len; ++k)
      if (!is_cont(p[i + k])) return i;
    i += li.len;
  }
  return kUtf8Valid;
}

size_t utf8_incomplete_tail(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const uint8_t b = p[n - k];
    if (is_cont(b)) continue;
    const LeadInfo li = lead_info(b);
    if (li.len <= k) return 0;  // ascii, an invalid byte, or a sequence that is already complete
    if (k >= 2 && (p[n - k + 1] < li.lo || p[n - k + 1] > li.hi)) return 0;
    return k;
  }
  return 0;
}

void utf8_append(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// printable latin-1 bytes map to themselves; the other 68 bytes map to U+0100.. in byte order.
constexpr bool byte_level_printable(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<uint16_t, 256> make_byte_level_table() {
  std::array<uint16_t, 256> t{};
  int next = 256;
  for (int b = 0; b < 256; ++b) t[static_cast<size_t>(b)] = static_cast<uint16_t>(byte_level_printable(b) ? b : next++);
  return t;
}

constexpr std::array<uint16_t, 256> kByteLevel = make_byte_level_table();

}  // namespace

uint32_t byte_level_code_point(uint8_t b) { return kByteLevel[b]; }

int byte_level_byte(uint32_t cp) {
  if (cp < 256) return byte_level_printable(static_cast<int>(cp)) ? static_cast<int>(cp) : -1;
  if (cp < 256 + 68) {
    for (int b = 0; b < 256; ++b)
      if (kByteLevel[static_cast<size_t>(b)] == cp) return b;
  }
  return -1;
}

}  // namespace oss4
