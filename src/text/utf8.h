// UTF-8 helpers for the tokenizer: strict validation (RFC 3629: no overlongs, no surrogates, max U+10FFFF) and the
// length of an incomplete character at the end of a byte string (for streaming decode).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace oss4 {

inline constexpr size_t kUtf8Valid = static_cast<size_t>(-1);

// offset of the first byte that does not start or continue a valid UTF-8 sequence, or kUtf8Valid. A truncated
// sequence at the very end is invalid too (its lead byte's offset is returned).
size_t utf8_first_invalid(std::string_view s);

// number of trailing bytes of s that form a proper prefix of a valid UTF-8 sequence (0..3): bytes that a following
// token may still complete. Bytes that can never become valid are not counted.
size_t utf8_incomplete_tail(std::string_view s);

// appends the UTF-8 encoding of code point cp (cp <= 0x10FFFF, not a surrogate).
void utf8_append(uint32_t cp, std::string* out);

// GPT-2 byte-level alphabet (`bytes_to_unicode`): every byte maps to one printable code point; tokenizer.json
// vocab keys are token bytes spelled in it.
uint32_t byte_level_code_point(uint8_t b);
// the byte for a code point of that alphabet, or -1.
int byte_level_byte(uint32_t cp);

}  // namespace oss4
