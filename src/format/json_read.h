// Reading JSON from files and requests: nlohmann's parser is iterative, but its serializer and the code that walks a
// parsed value recurse, so a document nested a million levels deep would overflow the stack. Every JSON input of oss4
// goes through parse_json, which refuses such documents before parsing them.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

#include "oss4/status.h"

namespace oss4 {

// deeper than any real config, tokenizer, safetensors header or API request (those nest fewer than 10 levels).
inline constexpr size_t kMaxJsonDepth = 64;

// the deepest nesting of arrays and objects in text, counting brackets outside strings (text need not be valid JSON).
size_t json_depth(std::string_view text);

// text as JSON; errors: "not well-formed JSON (<parser's reason>)" and "nests deeper than 64 levels".
Result<nlohmann::json> parse_json(std::string_view text, size_t max_depth = kMaxJsonDepth);

}  // namespace oss4
