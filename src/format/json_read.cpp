#include "format/json_read.h"

#include <algorithm>
#include <string>

namespace oss4 {

size_t json_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Result<nlohmann::json> parse_json(std::string_view text, size_t max_depth) {
  if (json_depth(text) > max_depth) return error("JSON nests deeper than " + std::to_string(max_depth) + " levels");
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: <reason>; last read: '<raw
    // bytes>'; expected ...": keep the position and reason, not the raw bytes (they may not be valid UTF-8).
    std::string why = e.what();
    const size_t tag_end = why.find("] ");
    if (tag_end != std::string::npos) why = why.substr(tag_end + 2);
    const size_t raw = why.find("; last read");
    if (raw != std::string::npos) {
      const size_t expected = why.find("; expected", raw);
      why = why.substr(0, raw) + (expected == std::string::npos ? "" : why.substr(expected));
    }
    return error("not well-formed JSON: " + why);
  }
}

}  // namespace oss4
