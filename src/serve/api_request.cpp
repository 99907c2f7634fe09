#include "serve/api_request.h"

#include <algorithm>
#include <map>

namespace oss4::serve {

namespace h = oss4::harmony;

Json api_error_json(const ApiError& e) {
  Json err = Json::object();
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? Json(nullptr) : Json(e.param);
  err["code"] = e.code.empty() ? Json(nullptr) : Json(e.code);
  Json j = Json::object();
  j["error"] = std::move(err);
  return j;
}

ApiError invalid(std::string message, std::string param, std::string code) {
  ApiError e;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

namespace {

constexpr int64_t kMaxTopLogprobs = 20;  // as OpenAI's API allows

// reading typed fields: each returns an error message (empty: fine) and leaves *out alone when the field is absent
// or null.
struct Reader {
  const Json& obj;
  std::string prefix;  // "" or "messages[2]."
  std::optional<ApiError> err;

  const Json* get(const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool fail(const char* key, const std::string& what) {
    if (!err) err = invalid("'" + prefix + key + "' " + what, prefix + key, "invalid_type");
    return false;
  }
  bool str(const char* key, std::string* out) {
    const Json* v = get(key);
    if (v == nullptr) return true;
    if (!v->is_string()) return fail(key, "must be a string");
    *out = v->get<std::string>();
    return true;
  }
  bool boolean(const char* key, bool* out) {
    const Json* v = get(key);
    if (v == nullptr) return true;
    if (!v->is_boolean()) return fail(key, "must be a boolean");
    *out = v->get<bool>();
    return true;
  }
  bool number(const char* key, double lo, double hi, float* out) {
    const Json* v = get(key);
    if (v == nullptr) return true;
    if (!v->is_number()) return fail(key, "must be a number");
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) {
      if (!err) err = invalid("'" + prefix + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + v->dump(), prefix + key);
      return false;
    }
    *out = static_cast<float>(d);
    return true;
  }
  bool object(const char* key, const char* what, const Json** out) {
    const Json* v = get(key);
    if (v == nullptr) return true;
    if (!v->is_object()) return fail(key, what);
    *out = v;
    return true;
  }
  bool integer(const char* key, int64_t lo, std::optional<int64_t>* out) {
    const Json* v = get(key);
    if (v == nullptr) return true;
    if (!v->is_number_integer()) return fail(key, "must be an integer");
    const int64_t i = v->get<int64_t>();
    if (i < lo) {
      if (!err) err = invalid("'" + prefix + key + "' must be at least " + std::to_string(lo) + ", got " + std::to_string(i), prefix + key);
      return false;
    }
    *out = i;
    return true;
  }
};

// a lenient read, for fields whose absence or wrong type means a default: the string at obj[key], or none when obj is
// not an object or the field is absent, null or not a string.
std::optional<std::string> opt_str(const Json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// sampling fields common to all endpoints; max_key names the length field(s).
bool read_gen(Reader& r, std::initializer_list<const char*> max_keys, GenSettings* g, int64_t min_max_tokens = 1) {
  r.number("temperature", 0.0, 2.0, &g->sampling.temperature);
  float top_p = 1.0f;
  r.number("top_p", 0.0, 1.0, &top_p);
  if (!r.err && top_p <= 0.0f) r.err = invalid("'top_p' must be in (0, 1]", "top_p");
  g->sampling.top_p = top_p;
  std::optional<int64_t> seed;
  r.integer("seed", INT64_MIN, &seed);
  if (seed) g->sampling.seed = static_cast<uint64_t>(*seed);
  for (const char* k : max_keys) {
    std::optional<int64_t> m;
    r.integer(k, min_max_tokens, &m);
    if (m) g->max_tokens = m;
  }
  r.boolean("stream", &g->stream);
  if (const Json* so = r.get("stream_options")) {
    if (!so->is_object()) return r.fail("stream_options", "must be an object");
    auto it = so->find("include_usage");
    if (it != so->end() && !it->is_null()) {
      if (!it->is_boolean()) return r.fail("stream_options.include_usage", "must be a boolean");
      g->include_usage = it->get<bool>();
    }
  }
  if (const Json* st = r.get("stop")) {
    if (st->is_string()) {
      g->stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      for (const auto& s : *st) {
        if (!s.is_string()) return r.fail("stop", "must be a string or an array of strings");
        g->stop.push_back(s.get<std::string>());
      }
    } else {
      return r.fail("stop", "must be a string or an array of strings");
    }
    if (g->stop.size() > 4) {
      r.err = invalid("'stop' takes at most 4 sequences", "stop");
      return false;
    }
    for (const auto& s : g->stop) {
      if (s.empty()) {
        r.err = invalid("'stop' sequences must not be empty", "stop");
        return false;
      }
    }
  }
  if (const Json* n = r.get("n")) {
    if (!n->is_number_integer() || n->get<int64_t>() != 1) {
      r.err = invalid("only n = 1 is supported", "n");
      return false;
    }
  }
  return !r.err;
}

// message content: a string, or an array of text parts ({"type": "text" | "input_text" | "output_text", "text"}).
std::optional<std::string> content_text(const Json& c, const std::string& param, std::optional<ApiError>* err) {
  if (c.is_null()) return std::string();
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string out;
    for (size_t i = 0; i < c.size(); ++i) {
      const Json& p = c[i];
      const std::string pp = param + "[" + std::to_string(i) + "]";
      if (!p.is_object()) {
        *err = invalid("'" + pp + "' must be an object", pp, "invalid_type");
        return std::nullopt;
      }
      const std::string type = opt_str(p, "type").value_or("");
      if (type != "text" && type != "input_text" && type != "output_text" && type != "reasoning_text") {
        *err = invalid("'" + pp + ".type' " + (type.empty() ? "is missing" : "'" + type + "' is not supported (text only)"), pp + ".type");
        return std::nullopt;
      }
      auto tx = p.find("text");
      if (tx == p.end() || !tx->is_string()) {
        *err = invalid("'" + pp + ".text' must be a string", pp + ".text", "invalid_type");
        return std::nullopt;
      }
      out += tx->get<std::string>();
    }
    return out;
  }
  *err = invalid("'" + param + "' must be a string or an array of content parts", param, "invalid_type");
  return std::nullopt;
}

// a function tool: chat form {"type": "function", "function": {...}} or responses form {"type": "function", "name", ...}.
std::optional<h::ToolDescription> read_tool(const Json& t, const std::string& param, bool nested, std::optional<ApiError>* err) {
  if (!t.is_object()) {
    *err = invalid("'" + param + "' must be an object", param, "invalid_type");
    return std::nullopt;
  }
  auto ty = t.find("type");
  if (ty == t.end() || !ty->is_string() || ty->get<std::string>() != "function") {
    *err = invalid("'" + param + ".type' must be 'function' (the only tool type served)", param + ".type");
    return std::nullopt;
  }
  const Json* f = &t;
  std::string fp = param;
  if (nested) {
    auto it = t.find("function");
    if (it == t.end() || !it->is_object()) {
      *err = invalid("'" + param + ".function' must be an object", param + ".function", "invalid_type");
      return std::nullopt;
    }
    f = &*it;
    fp += ".function";
  }
  h::ToolDescription d;
  auto name = f->find("name");
  if (name == f->end() || !name->is_string() || name->get<std::string>().empty()) {
    *err = invalid("'" + fp + ".name' must be a non-empty string", fp + ".name", "invalid_type");
    return std::nullopt;
  }
  d.name = name->get<std::string>();
  Reader fr{*f, fp + ".", std::nullopt};
  const Json* params = nullptr;
  if (!fr.str("description", &d.description) || !fr.object("parameters", "must be a JSON Schema object", &params)) {
    *err = fr.err;
    return std::nullopt;
  }
  if (params != nullptr) d.parameters = *params;
  return d;
}

// tool_choice: "none", "auto", "required", or a function: {"type": "function", "function": {"name"}} (chat) or
// {"type": "function", "name"} (responses; either form is taken on both endpoints).
bool read_tool_choice(Reader& r, ChatRequest* req) {
  const Json* tc = r.get("tool_choice");
  if (tc == nullptr) return true;
  if (tc->is_string()) {
    const std::string s = tc->get<std::string>();
    if (s == "none") {
      req->tool_choice = ToolChoice::kNone;
    } else if (s == "auto") {
      req->tool_choice = ToolChoice::kAuto;
    } else if (s == "required") {
      req->tool_choice = ToolChoice::kRequired;
    } else {
      r.err = invalid("'tool_choice' must be none, auto, required or a function", "tool_choice");
      return false;
    }
    return true;
  }
  if (!tc->is_object()) return r.fail("tool_choice", "must be a string or an object");
  auto ty = tc->find("type");
  if (ty == tc->end() || !ty->is_string() || ty->get<std::string>() != "function") {
    r.err = invalid("'tool_choice.type' must be 'function'", "tool_choice");
    return false;
  }
  const Json* name = nullptr;
  auto f = tc->find("function");
  if (f != tc->end() && f->is_object()) {
    auto n = f->find("name");
    if (n != f->end()) name = &*n;
  } else if (auto n = tc->find("name"); n != tc->end()) {
    name = &*n;
  }
  if (name == nullptr || !name->is_string() || name->get<std::string>().empty()) {
    r.err = invalid("'tool_choice' must name a function: {\"type\": \"function\", \"function\": {\"name\": \"...\"}}", "tool_choice", "invalid_type");
    return false;
  }
  req->tool_choice = ToolChoice::kFunction;
  req->forced_tool = name->get<std::string>();
  return true;
}

// tools + tool_choice into the developer message; "none" leaves the tools out. A required or named choice needs the
// tools (and the named one among them).
bool read_tools(Reader& r, bool nested, h::DeveloperContent* dev, ChatRequest* req) {
  if (!read_tool_choice(r, req)) return false;
  std::vector<h::ToolDescription> list;
  if (const Json* tools = r.get("tools")) {
    if (!tools->is_array()) return r.fail("tools", "must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      auto d = read_tool((*tools)[i], "tools[" + std::to_string(i) + "]", nested, &r.err);
      if (!d) return false;
      list.push_back(std::move(*d));
    }
  }
  for (const auto& d : list) req->tool_names.push_back(d.name);
  if ((req->tool_choice == ToolChoice::kRequired || req->tool_choice == ToolChoice::kFunction) && list.empty()) {
    r.err = invalid("'tool_choice' " + std::string(req->tool_choice == ToolChoice::kRequired ? "'required'" : "naming a function") +
                        " needs 'tools'",
                    "tool_choice");
    return false;
  }
  if (req->tool_choice == ToolChoice::kFunction &&
      std::find(req->tool_names.begin(), req->tool_names.end(), req->forced_tool) == req->tool_names.end()) {
    r.err = invalid("'tool_choice' names the function '" + req->forced_tool + "', which is not in 'tools'", "tool_choice");
    return false;
  }
  if (req->tool_choice == ToolChoice::kNone) list.clear();
  if (!list.empty()) {
    dev->with_function_tools(std::move(list));
    req->has_tools = true;
  }
  return true;
}

bool read_effort(const Json* e, Reader& r, const char* param, h::SystemContent* sys) {
  if (e == nullptr) return true;
  if (!e->is_string()) return r.fail(param, "must be a string");
  auto eff = h::reasoning_effort_from_name(e->get<std::string>());
  if (!eff) {
    r.err = invalid(std::string("'") + param + "' must be low, medium or high", param);
    return false;
  }
  sys->reasoning_effort = eff;
  return true;
}

void add_instructions(h::DeveloperContent* dev, const std::string& text) {
  if (dev->instructions && !dev->instructions->empty()) {
    *dev->instructions += "\n\n" + text;
  } else {
    dev->instructions = text;
  }
}

h::Message tool_call_message(const std::string& name, const std::string& args) {
  h::Message m = h::Message::text(h::Role::kAssistant, args);
  m.with_channel("commentary").with_recipient("functions." + name).with_content_type("<|constrain|>json");
  return m;
}

// system + developer first, then the turns.
void assemble(h::SystemContent sys, const h::DeveloperContent& dev, bool has_dev, std::vector<h::Message> turns, h::Conversation* conv) {
  conv->messages.push_back(h::Message::system(std::move(sys)));
  if (has_dev) conv->messages.push_back(h::Message::developer(dev));
  for (auto& m : turns) conv->messages.push_back(std::move(m));
}

}  // namespace

Parsed<Json> parse_body(const std::string& body) {
  Parsed<Json> p;
  if (json_depth(body) > kMaxJsonDepth) {
    p.error = invalid("the request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels", "", "invalid_json");
    return p;
  }
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    p.error = invalid("the request body is not valid JSON", "", "invalid_json");
    return p;
  }
  if (!j.is_object()) {
    p.error = invalid("the request body must be a JSON object", "", "invalid_type");
    return p;
  }
  p.value = std::move(j);
  return p;
}

Status tool_call_prefixes(const ChatRequest& r, const h::HarmonyEncoding& enc, std::vector<std::vector<int32_t>>* out) {
  out->clear();
  std::vector<std::string> names;
  if (r.tool_choice == ToolChoice::kFunction) names.push_back(r.forced_tool);
  if (r.tool_choice == ToolChoice::kRequired) names = r.tool_names;
  // the header as the model writes it (channel first, then the recipient); names are ordinary text
  const h::FormattingIds& f = enc.ids();
  for (const auto& name : names) {
    std::vector<int32_t> ids = {f.channel};
    OSS4_TRY(enc.tokenizer().encode("commentary to=functions." + name, /*allow_special=*/false, &ids));
    OSS4_TRY(enc.tokenizer().encode(" ", /*allow_special=*/false, &ids));
    ids.push_back(f.constrain);
    OSS4_TRY(enc.tokenizer().encode("json", /*allow_special=*/false, &ids));
    ids.push_back(f.message);
    out->push_back(std::move(ids));
  }
  return ok_status();
}

Parsed<ChatRequest> parse_chat_request(const Json& body) {
  Parsed<ChatRequest> out;
  Reader r{body, "", std::nullopt};
  ChatRequest req;
  std::string model;
  r.str("model", &model);
  read_gen(r, {"max_tokens", "max_completion_tokens"}, &req.gen);
  bool logprobs = false;
  r.boolean("logprobs", &logprobs);
  std::optional<int64_t> top;
  r.integer("top_logprobs", 0, &top);
  if (r.err) return out.error = *r.err, out;
  if (top && *top > kMaxTopLogprobs) return out.error = invalid("'top_logprobs' must be at most " + std::to_string(kMaxTopLogprobs), "top_logprobs"), out;
  if (top && !logprobs) return out.error = invalid("'top_logprobs' needs 'logprobs': true", "top_logprobs"), out;
  if (logprobs) req.gen.logprobs = top.value_or(0);
  h::SystemContent sys;
  h::DeveloperContent dev;
  bool has_dev = false;
  read_effort(r.get("reasoning_effort"), r, "reasoning_effort", &sys);
  if (r.err) return out.error = *r.err, out;
  read_tools(r, /*nested=*/true, &dev, &req);
  has_dev = req.has_tools;
  if (r.err) return out.error = *r.err, out;
  const Json* msgs = r.get("messages");
  if (msgs == nullptr) return out.error = invalid("'messages' is required", "messages", "missing_required_parameter"), out;
  if (!msgs->is_array()) return out.error = invalid("'messages' must be an array", "messages", "invalid_type"), out;
  if (msgs->empty()) return out.error = invalid("'messages' must contain at least one message", "messages"), out;
  std::vector<h::Message> turns;
  std::map<std::string, std::string> call_names;  // tool_call id -> function name
  std::optional<ApiError> err;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const Json& m = (*msgs)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return out.error = invalid("'" + p + "' must be an object", p, "invalid_type"), out;
    auto role_it = m.find("role");
    if (role_it == m.end() || !role_it->is_string()) return out.error = invalid("'" + p + ".role' is required (a string)", p + ".role"), out;
    const std::string role = role_it->get<std::string>();
    auto c_it = m.find("content");
    const Json content = c_it == m.end() ? Json(nullptr) : *c_it;
    auto text = content_text(content, p + ".content", &err);
    if (!text) return out.error = *err, out;
    if (role == "system" || role == "developer") {
      add_instructions(&dev, *text);
      has_dev = true;
    } else if (role == "user") {
      turns.push_back(h::Message::text(h::Role::kUser, *text));
    } else if (role == "assistant") {
      for (const char* key : {"reasoning_content", "reasoning"}) {
        const std::string rc = opt_str(m, key).value_or("");
        if (!rc.empty()) {
          turns.push_back(h::Message::text(h::Role::kAssistant, rc).with_channel("analysis"));
          break;
        }
      }
      auto tc = m.find("tool_calls");
      const bool has_calls = tc != m.end() && tc->is_array() && !tc->empty();
      if (!text->empty()) turns.push_back(h::Message::text(h::Role::kAssistant, *text).with_channel(has_calls ? "commentary" : "final"));
      if (tc != m.end() && !tc->is_null() && !tc->is_array()) return out.error = invalid("'" + p + ".tool_calls' must be an array", p + ".tool_calls", "invalid_type"), out;
      if (has_calls) {
        for (size_t k = 0; k < tc->size(); ++k) {
          const Json& call = (*tc)[k];
          const std::string cp = p + ".tool_calls[" + std::to_string(k) + "]";
          const Json* f = call.is_object() && call.contains("function") ? &call["function"] : nullptr;
          const std::optional<std::string> name = f != nullptr ? opt_str(*f, "name") : std::nullopt;
          if (!name) return out.error = invalid("'" + cp + ".function.name' is required", cp + ".function.name"), out;
          std::string args = "{}";
          Reader fr{*f, cp + ".function.", std::nullopt};
          if (!fr.str("arguments", &args)) return out.error = *fr.err, out;
          if (auto id = opt_str(call, "id")) call_names[*id] = *name;
          turns.push_back(tool_call_message(*name, args));
        }
      }
    } else if (role == "tool") {
      std::string name;
      const auto id = opt_str(m, "tool_call_id");
      if (id && call_names.count(*id) > 0) name = call_names[*id];
      if (name.empty()) name = opt_str(m, "name").value_or("");
      if (name.empty()) {
        return out.error = invalid("'" + p + ".tool_call_id' does not match a tool call of an earlier assistant message", p + ".tool_call_id"), out;
      }
      turns.push_back(h::Message::tool_result("functions." + name, *text));
    } else {
      return out.error = invalid("'" + p + ".role' must be system, developer, user, assistant or tool, got '" + role + "'", p + ".role"), out;
    }
  }
  assemble(std::move(sys), dev, has_dev, std::move(turns), &req.conv);
  out.value = std::move(req);
  return out;
}

Parsed<ChatRequest> parse_responses_request(const Json& body) {
  Parsed<ChatRequest> out;
  Reader r{body, "", std::nullopt};
  ChatRequest req;
  read_gen(r, {"max_output_tokens"}, &req.gen);
  h::SystemContent sys;
  h::DeveloperContent dev;
  bool has_dev = false;
  if (const Json* rs = r.get("reasoning")) {
    if (!rs->is_object()) return out.error = invalid("'reasoning' must be an object", "reasoning", "invalid_type"), out;
    auto e = rs->find("effort");
    if (e != rs->end() && !e->is_null()) read_effort(&*e, r, "reasoning.effort", &sys);
  }
  if (r.err) return out.error = *r.err, out;
  if (r.get("previous_response_id") != nullptr) {
    return out.error = invalid("'previous_response_id' is not supported: the server stores no responses; send the whole input", "previous_response_id"), out;
  }
  std::string instructions;
  r.str("instructions", &instructions);
  if (!instructions.empty()) {
    add_instructions(&dev, instructions);
    has_dev = true;
  }
  read_tools(r, /*nested=*/false, &dev, &req);
  has_dev = has_dev || req.has_tools;
  if (r.err) return out.error = *r.err, out;
  const Json* input = r.get("input");
  if (input == nullptr) return out.error = invalid("'input' is required", "input", "missing_required_parameter"), out;
  std::vector<h::Message> turns;
  std::map<std::string, std::string> call_names;  // call_id -> function name
  std::optional<ApiError> err;
  if (input->is_string()) {
    turns.push_back(h::Message::text(h::Role::kUser, input->get<std::string>()));
  } else if (input->is_array()) {
    for (size_t i = 0; i < input->size(); ++i) {
      const Json& it = (*input)[i];
      const std::string p = "input[" + std::to_string(i) + "]";
      if (!it.is_object()) return out.error = invalid("'" + p + "' must be an object", p, "invalid_type"), out;
      const std::string type = opt_str(it, "type").value_or("message");
      if (type == "message") {
        const std::string role = opt_str(it, "role").value_or("");
        auto text = content_text(it.contains("content") ? it["content"] : Json(nullptr), p + ".content", &err);
        if (!text) return out.error = *err, out;
        if (role == "system" || role == "developer") {
          add_instructions(&dev, *text);
          has_dev = true;
        } else if (role == "user") {
          turns.push_back(h::Message::text(h::Role::kUser, *text));
        } else if (role == "assistant") {
          turns.push_back(h::Message::text(h::Role::kAssistant, *text).with_channel("final"));
        } else {
          return out.error = invalid("'" + p + ".role' must be system, developer, user or assistant", p + ".role"), out;
        }
      } else if (type == "function_call") {
        const std::optional<std::string> name = opt_str(it, "name");
        if (!name) return out.error = invalid("'" + p + ".name' is required", p + ".name"), out;
        if (auto id = opt_str(it, "call_id")) call_names[*id] = *name;
        turns.push_back(tool_call_message(*name, opt_str(it, "arguments").value_or("{}")));
      } else if (type == "function_call_output") {
        const std::string id = opt_str(it, "call_id").value_or("");
        if (call_names.count(id) == 0) return out.error = invalid("'" + p + ".call_id' does not match an earlier function_call", p + ".call_id"), out;
        std::string text;
        if (it.contains("output")) {
          auto t = content_text(it["output"], p + ".output", &err);
          if (!t) return out.error = *err, out;
          text = *t;
        }
        turns.push_back(h::Message::tool_result("functions." + call_names[id], text));
      } else if (type == "reasoning") {
        std::string text;
        if (it.contains("content") && it["content"].is_array()) {
          auto t = content_text(it["content"], p + ".content", &err);
          if (!t) return out.error = *err, out;
          text = *t;
        }
        if (!text.empty()) turns.push_back(h::Message::text(h::Role::kAssistant, text).with_channel("analysis"));
      } else {
        return out.error = invalid("'" + p + ".type' '" + type + "' is not supported", p + ".type"), out;
      }
    }
  } else {
    return out.error = invalid("'input' must be a string or an array of items", "input", "invalid_type"), out;
  }
  if (turns.empty()) return out.error = invalid("'input' has no messages", "input"), out;
  assemble(std::move(sys), dev, has_dev, std::move(turns), &req.conv);
  out.value = std::move(req);
  return out;
}

Parsed<CompletionRequest> parse_completion_request(const Json& body) {
  Parsed<CompletionRequest> out;
  Reader r{body, "", std::nullopt};
  CompletionRequest req;
  req.gen.max_tokens = 16;  // the OpenAI default for completions
  read_gen(r, {"max_tokens"}, &req.gen, /*min_max_tokens=*/0);
  std::optional<int64_t> logprobs;
  r.integer("logprobs", 0, &logprobs);
  r.boolean("echo", &req.gen.echo);
  if (r.err) return out.error = *r.err, out;
  if (logprobs && *logprobs > kMaxTopLogprobs) return out.error = invalid("'logprobs' must be at most " + std::to_string(kMaxTopLogprobs), "logprobs"), out;
  if (logprobs) req.gen.logprobs = *logprobs;
  if (req.gen.max_tokens == 0 && !req.gen.echo) {
    return out.error = invalid("'max_tokens' 0 generates nothing: it needs 'echo' (to score the prompt)", "max_tokens"), out;
  }
  const Json* p = r.get("prompt");
  if (p == nullptr) return out.error = invalid("'prompt' is required", "prompt", "missing_required_parameter"), out;
  // one prompt: a string, token ids, or an array holding one of them (what clients send for a batch of one)
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_array() && p->size() > 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    return out.error = invalid("'prompt' holds " + std::to_string(p->size()) + " prompts; send one per request", "prompt"), out;
  }
  if (p->is_string()) {
    req.prompt_text = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    req.prompt_is_ids = true;
    for (const auto& v : *p) {
      if (!v.is_number_integer()) return out.error = invalid("'prompt' token ids must be integers", "prompt", "invalid_type"), out;
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id > INT32_MAX) return out.error = invalid("'prompt' token id " + std::to_string(id) + " is out of range", "prompt"), out;
      req.prompt_ids.push_back(static_cast<int32_t>(id));
    }
  } else {
    return out.error = invalid("'prompt' must be a string, token ids, or an array holding one of them", "prompt", "invalid_type"), out;
  }
  out.value = std::move(req);
  return out;
}

}  // namespace oss4::serve
