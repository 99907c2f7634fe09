// JSON Schema -> TypeScript for harmony's tool namespaces: a line-by-line port of json_schema_to_typescript in
// openai/harmony 0.0.8 src/encoding.rs, quirks included (its indentation, where descriptions and defaults go), since
// the model was trained on exactly this text. Values in "default: ..." comments print as serde_json prints them.
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "text/harmony_render.h"

namespace oss4::harmony {

namespace {

// serde_json's Value::get: the member of an object, else nothing.
const Json* get(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

const std::string* get_str(const Json& j, const char* key) {
  const Json* v = get(j, key);
  return v != nullptr && v->is_string() ? &v->get_ref<const std::string&>() : nullptr;
}

bool get_bool(const Json& j, const char* key) {
  const Json* v = get(j, key);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

bool is_enum(const Json& schema) {
  const Json* e = get(schema, "enum");
  return e != nullptr && e->is_array() && !e->empty();
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// prefix + "\"" + s + "\"" (appends: gcc 12 warns falsely, -Wrestrict, on operator+ chains with string literals)
std::string quoted(std::string_view prefix, const std::string& s) {
  std::string out(prefix);
  out.append("\"").append(s).append("\"");
  return out;
}

// ryu's pretty format of an f64, as serde_json's Display writes floats.
std::string serde_f64(double v) {
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);  // shortest round trip
  std::string sci(buf, res.ptr);
  std::string out;
  if (sci[0] == '-') {
    out += '-';
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  const int exp10 = std::atoi(sci.c_str() + e_pos + 1);
  const int n = static_cast<int>(digits.size());
  const int kk = exp10 + 1;  // the value is 0.DIGITS * 10^kk
  const int k = kk - n;      // the value is DIGITS * 10^k
  // appends only: gcc 12 warns (-Wrestrict, falsely) on chains of std::string operator+ here
  if (k >= 0 && kk <= 16) {
    out.append(digits).append(static_cast<size_t>(k), '0').append(".0");
  } else if (kk > 0 && kk <= 16) {
    out.append(digits, 0, static_cast<size_t>(kk)).append(".").append(digits, static_cast<size_t>(kk));
  } else if (kk > -5 && kk <= 0) {
    out.append("0.").append(static_cast<size_t>(-kk), '0').append(digits);
  } else {
    out.append(digits, 0, 1);
    if (n > 1) out.append(".").append(digits, 1);
    out.append("e").append(std::to_string(kk - 1));
  }
  return out;
}

void serde_escape(const std::string& s, std::string* out) {
  static const char* hex = "0123456789abcdef";
  *out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          *out += hex[c >> 4];
          *out += hex[c & 15];
        } else {
          *out += ch;
        }
    }
  }
  *out += '"';
}

void serde_write(const Json& v, std::string* out) {
  switch (v.type()) {
    case Json::value_t::null: *out += "null"; break;
    case Json::value_t::boolean: *out += v.get<bool>() ? "true" : "false"; break;
    case Json::value_t::number_integer: *out += std::to_string(v.get<int64_t>()); break;
    case Json::value_t::number_unsigned: *out += std::to_string(v.get<uint64_t>()); break;
    case Json::value_t::number_float: *out += serde_f64(v.get<double>()); break;
    case Json::value_t::string: serde_escape(v.get_ref<const std::string&>(), out); break;
    case Json::value_t::array: {
      *out += '[';
      bool first = true;
      for (const Json& e : v) {
        if (!first) *out += ',';
        first = false;
        serde_write(e, out);
      }
      *out += ']';
      break;
    }
    case Json::value_t::object: {
      *out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) *out += ',';
        first = false;
        serde_escape(it.key(), out);
        *out += ':';
        serde_write(it.value(), out);
      }
      *out += '}';
      break;
    }
    default: *out += "null"; break;  // binary and discarded values do not come from JSON text
  }
}

// the "default: ..." text of a property or oneOf variant: strings quoted unless the schema is an enum.
std::string default_comment(const Json& schema, const Json& def) {
  if (def.is_string()) {
    const std::string& s = def.get_ref<const std::string&>();
    return is_enum(schema) ? "default: " + s : quoted("default: ", s);
  }
  return "default: " + serde_json_string(def);
}

std::string with_nullable(const Json& schema, std::string type_str) {
  if (get_bool(schema, "nullable") && !contains(type_str, "null")) type_str += " | null";
  return type_str;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// a schema with "oneOf" at the top: "\n{indent} | A // comments\n{indent} | B ..."
std::string top_level_one_of(const Json& arr, const std::string& indent) {
  std::string out;
  for (const Json& variant : arr) {
    out += "\n" + indent + " | ";
    out += with_nullable(variant, json_schema_to_typescript(variant, indent + "   "));
    std::vector<std::string> comments;
    if (const std::string* d = get_str(variant, "description")) comments.push_back(*d);
    if (const Json* def = get(variant, "default")) {
      // unlike the property-level form, an enum's string default prints JSON-quoted here
      if (def->is_string() && !is_enum(variant)) {
        comments.push_back(quoted("default: ", def->get<std::string>()));
      } else {
        comments.push_back("default: " + serde_json_string(*def));
      }
    }
    if (!comments.empty()) out += " // " + join(comments, " ");
  }
  return out;
}

// a property whose schema has "oneOf": comments above, "name?:", then one " | variant" line each.
void one_of_property(const std::string& key, const Json& val, const Json& arr, bool required, const std::string& indent,
                     std::string* out) {
  const std::string* property_desc = get_str(val, "description");
  bool skip_property_desc = false;
  if (property_desc != nullptr && !arr.empty()) {
    const std::string* first_desc = get_str(arr.front(), "description");
    skip_property_desc = first_desc != nullptr && *first_desc == *property_desc;
  }
  bool desc_above = false;
  if (!skip_property_desc && property_desc != nullptr) {
    *out += indent + "// " + *property_desc + "\n";
    desc_above = true;
  }
  if (const Json* def = get(val, "default")) *out += indent + "// " + default_comment(val, *def) + "\n";
  *out += indent + key + (required ? "" : "?") + ":\n";
  size_t i = 0;
  for (const Json& variant : arr) {
    *out += indent + " | ";
    *out += with_nullable(variant, json_schema_to_typescript(variant, indent + "   "));
    std::vector<std::string> comments;
    if (!(i == 0 && desc_above)) {
      const std::string* d = get_str(variant, "description");
      if (d != nullptr && (property_desc == nullptr || *d != *property_desc)) comments.push_back(*d);
    }
    if (const Json* def = get(variant, "default")) comments.push_back(default_comment(variant, *def));
    if (!comments.empty()) *out += " // " + join(comments, " ");
    *out += "\n";
    ++i;
  }
  *out += indent + ",\n";
}

std::string object_type(const Json& schema, const std::string& indent) {
  std::string out;
  if (const std::string* d = get_str(schema, "description")) out += indent + "// " + *d + "\n";
  out += "{\n";
  const Json* props = get(schema, "properties");
  if (props != nullptr && props->is_object()) {
    std::unordered_set<std::string> required;
    const Json* req = get(schema, "required");
    if (req != nullptr && req->is_array()) {
      for (const Json& r : *req) {
        if (r.is_string()) required.insert(r.get<std::string>());
      }
    }
    for (auto it = props->begin(); it != props->end(); ++it) {
      const std::string& key = it.key();
      const Json& val = it.value();
      const bool is_required = required.count(key) > 0;
      if (const std::string* title = get_str(val, "title")) out += indent + "// " + *title + "\n" + indent + "//\n";
      const Json* one_of = get(val, "oneOf");
      if (one_of == nullptr) {
        if (const std::string* d = get_str(val, "description")) out += indent + "// " + *d + "\n";
      }
      const Json* examples = get(val, "examples");
      if (examples != nullptr && examples->is_array() && !examples->empty()) {
        out += indent + "// Examples:\n";
        for (const Json& ex : *examples) {
          if (ex.is_string()) out += quoted(indent + "// - ", ex.get<std::string>()) + "\n";
        }
      }
      if (one_of != nullptr && one_of->is_array()) {
        one_of_property(key, val, *one_of, is_required, indent, &out);
        continue;
      }
      out += indent + key + (is_required ? "" : "?") + ": ";
      out += with_nullable(val, json_schema_to_typescript(val, indent + "    "));
      out += ',';
      if (one_of == nullptr) {
        if (const Json* def = get(val, "default")) out += " // " + default_comment(val, *def);
      }
      out += '\n';
    }
  }
  out += indent + "}";
  return out;
}

}  // namespace

std::string serde_json_string(const Json& v) {
  std::string out;
  serde_write(v, &out);
  return out;
}

std::string json_schema_to_typescript(const Json& schema, const std::string& indent) {
  if (const Json* one_of = get(schema, "oneOf"); one_of != nullptr && one_of->is_array()) {
    return top_level_one_of(*one_of, indent);
  }
  const Json* type = get(schema, "type");
  if (type != nullptr && type->is_array()) {
    std::vector<std::string> names;
    for (const Json& t : *type) {
      if (t.is_string()) names.push_back(t.get<std::string>() == "integer" ? "number" : t.get<std::string>());
    }
    if (!names.empty()) return join(names, " | ");
  }
  if (type == nullptr || !type->is_string()) return "any";
  const std::string& ty = type->get_ref<const std::string&>();
  if (ty == "object") return object_type(schema, indent);
  if (ty == "string") {
    const Json* e = get(schema, "enum");
    if (e != nullptr && e->is_array()) {
      std::vector<std::string> values;
      for (const Json& v : *e) {
        if (v.is_string()) values.push_back(quoted("", v.get<std::string>()));
      }
      if (!values.empty()) return join(values, " | ");
    }
    return "string";
  }
  if (ty == "number" || ty == "integer") return "number";
  if (ty == "boolean") return "boolean";
  if (ty == "array") {
    const Json* items = get(schema, "items");
    return items != nullptr ? json_schema_to_typescript(*items, indent) + "[]" : "Array<any>";
  }
  return "any";
}

}  // namespace oss4::harmony
