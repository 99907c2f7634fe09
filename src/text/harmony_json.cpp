// Harmony's JSON form of messages and conversations (openai_harmony's Conversation.to_dict / the Rust serde derive):
// how the goldens store their inputs, and what a server can take as input.
#include "text/harmony_render.h"

namespace oss4::harmony {

namespace {

Status field_error(const std::string& where, const std::string& what) { return error(where + ": " + what); }

// an optional string field: missing or null -> unset.
Status opt_string(const Json& j, const char* key, const std::string& where, std::optional<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ok_status();
  if (!it->is_string()) return field_error(where + "." + key, "expected a string");
  *out = it->get<std::string>();
  return ok_status();
}

Status req_string(const Json& j, const char* key, const std::string& where, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return field_error(where + "." + key, "expected a string");
  *out = it->get<std::string>();
  return ok_status();
}

Result<ToolNamespaces> namespaces_from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) return field_error(where, "expected an object of tool namespaces");
  ToolNamespaces out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string w = where + "." + it.key();
    const Json& ns = it.value();
    if (!ns.is_object()) return field_error(w, "expected an object");
    ToolNamespace t;
    OSS4_TRY(req_string(ns, "name", w, &t.name));
    OSS4_TRY(opt_string(ns, "description", w, &t.description));
    auto tools = ns.find("tools");
    if (tools == ns.end() || !tools->is_array()) return field_error(w + ".tools", "expected an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& td = (*tools)[i];
      const std::string wt = w + ".tools[" + std::to_string(i) + "]";
      if (!td.is_object()) return field_error(wt, "expected an object");
      ToolDescription d;
      OSS4_TRY(req_string(td, "name", wt, &d.name));
      OSS4_TRY(req_string(td, "description", wt, &d.description));
      auto p = td.find("parameters");
      if (p != td.end() && !p->is_null()) d.parameters = *p;
      t.tools.push_back(std::move(d));
    }
    out[it.key()] = std::move(t);
  }
  return out;
}

Json namespaces_to_json(const ToolNamespaces& tools) {
  Json j = Json::object();
  for (const auto& [key, ns] : tools) {
    Json n = {{"name", ns.name}};
    if (ns.description) n["description"] = *ns.description;
    Json list = Json::array();
    for (const ToolDescription& d : ns.tools) {
      Json t = {{"name", d.name}, {"description", d.description}};
      if (d.parameters) t["parameters"] = *d.parameters;
      list.push_back(std::move(t));
    }
    n["tools"] = std::move(list);
    j[key] = std::move(n);
  }
  return j;
}

Result<SystemContent> system_from_json(const Json& j, const std::string& where) {
  // every field is an Option on the Rust side: absent means none, not harmony's default
  SystemContent s;
  s.model_identity.reset();
  s.reasoning_effort.reset();
  s.knowledge_cutoff.reset();
  s.channel_config.reset();
  OSS4_TRY(opt_string(j, "model_identity", where, &s.model_identity));
  OSS4_TRY(opt_string(j, "conversation_start_date", where, &s.conversation_start_date));
  OSS4_TRY(opt_string(j, "knowledge_cutoff", where, &s.knowledge_cutoff));
  std::optional<std::string> effort;
  OSS4_TRY(opt_string(j, "reasoning_effort", where, &effort));
  if (effort) {
    s.reasoning_effort = reasoning_effort_from_name(*effort);
    if (!s.reasoning_effort) return field_error(where + ".reasoning_effort", "expected Low, Medium or High, got '" + *effort + "'");
  }
  auto cc = j.find("channel_config");
  if (cc != j.end() && !cc->is_null()) {
    const std::string w = where + ".channel_config";
    if (!cc->is_object()) return field_error(w, "expected an object");
    ChannelConfig c;
    auto vc = cc->find("valid_channels");
    if (vc == cc->end() || !vc->is_array()) return field_error(w + ".valid_channels", "expected an array");
    for (const Json& v : *vc) {
      if (!v.is_string()) return field_error(w + ".valid_channels", "expected strings");
      c.valid_channels.push_back(v.get<std::string>());
    }
    auto req = cc->find("channel_required");
    if (req == cc->end() || !req->is_boolean()) return field_error(w + ".channel_required", "expected true or false");
    c.channel_required = req->get<bool>();
    s.channel_config = std::move(c);
  }
  auto tools = j.find("tools");
  if (tools != j.end() && !tools->is_null()) {
    OSS4_ASSIGN_OR_RETURN(s.tools, namespaces_from_json(*tools, where + ".tools"));
  }
  return s;
}

Result<DeveloperContent> developer_from_json(const Json& j, const std::string& where) {
  DeveloperContent d;
  OSS4_TRY(opt_string(j, "instructions", where, &d.instructions));
  auto tools = j.find("tools");
  if (tools != j.end() && !tools->is_null()) {
    OSS4_ASSIGN_OR_RETURN(d.tools, namespaces_from_json(*tools, where + ".tools"));
  }
  return d;
}

Result<Message> message_from_json_at(const Json& j, const std::string& where) {
  if (!j.is_object()) return field_error(where, "expected an object");
  Message m;
  std::string role;
  OSS4_TRY(req_string(j, "role", where, &role));
  auto r = role_from_name(role);
  if (!r) return field_error(where + ".role", "unknown role '" + role + "'");
  m.role = *r;
  OSS4_TRY(opt_string(j, "name", where, &m.name));
  OSS4_TRY(opt_string(j, "recipient", where, &m.recipient));
  OSS4_TRY(opt_string(j, "channel", where, &m.channel));
  OSS4_TRY(opt_string(j, "content_type", where, &m.content_type));
  auto content = j.find("content");
  if (content == j.end()) return field_error(where + ".content", "missing");
  if (content->is_string()) {
    m.content.emplace_back(content->get<std::string>());
    return m;
  }
  if (!content->is_array()) return field_error(where + ".content", "expected a string or an array");
  for (size_t i = 0; i < content->size(); ++i) {
    const Json& c = (*content)[i];
    const std::string w = where + ".content[" + std::to_string(i) + "]";
    if (!c.is_object()) return field_error(w, "expected an object");
    std::string type;
    OSS4_TRY(req_string(c, "type", w, &type));
    if (type == "text") {
      std::string text;
      OSS4_TRY(req_string(c, "text", w, &text));
      m.content.emplace_back(std::move(text));
    } else if (type == "system_content") {
      OSS4_ASSIGN_OR_RETURN(SystemContent s, system_from_json(c, w));
      m.content.emplace_back(std::move(s));
    } else if (type == "developer_content") {
      OSS4_ASSIGN_OR_RETURN(DeveloperContent d, developer_from_json(c, w));
      m.content.emplace_back(std::move(d));
    } else {
      return field_error(w + ".type", "unknown content type '" + type + "'");
    }
  }
  return m;
}

}  // namespace

Result<Message> message_from_json(const Json& j) { return message_from_json_at(j, "message"); }

Result<Conversation> conversation_from_json(const Json& j) {
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) {
    return error("conversation: expected an object with a \"messages\" array");
  }
  Conversation c;
  const Json& msgs = j["messages"];
  for (size_t i = 0; i < msgs.size(); ++i) {
    OSS4_ASSIGN_OR_RETURN(Message m, message_from_json_at(msgs[i], "messages[" + std::to_string(i) + "]"));
    c.messages.push_back(std::move(m));
  }
  return c;
}

Json message_to_json(const Message& m) {
  Json j = {{"role", role_name(m.role)}};
  if (m.name) j["name"] = *m.name;
  Json content = Json::array();
  for (const Content& c : m.content) {
    if (const auto* s = std::get_if<std::string>(&c)) {
      content.push_back({{"type", "text"}, {"text", *s}});
    } else if (const auto* sys = std::get_if<SystemContent>(&c)) {
      Json o = {{"type", "system_content"}};
      if (sys->model_identity) o["model_identity"] = *sys->model_identity;
      if (sys->reasoning_effort) {
        std::string e = reasoning_effort_name(*sys->reasoning_effort);
        e[0] = static_cast<char>(e[0] - 'a' + 'A');  // serde spells the variants Low, Medium, High
        o["reasoning_effort"] = e;
      }
      if (sys->conversation_start_date) o["conversation_start_date"] = *sys->conversation_start_date;
      if (sys->knowledge_cutoff) o["knowledge_cutoff"] = *sys->knowledge_cutoff;
      if (sys->channel_config) {
        o["channel_config"] = {{"valid_channels", sys->channel_config->valid_channels},
                               {"channel_required", sys->channel_config->channel_required}};
      }
      if (sys->tools) o["tools"] = namespaces_to_json(*sys->tools);
      content.push_back(std::move(o));
    } else {
      const auto& dev = std::get<DeveloperContent>(c);
      Json o = {{"type", "developer_content"}};
      if (dev.instructions) o["instructions"] = *dev.instructions;
      if (dev.tools) o["tools"] = namespaces_to_json(*dev.tools);
      content.push_back(std::move(o));
    }
  }
  j["content"] = std::move(content);
  if (m.channel) j["channel"] = *m.channel;
  if (m.recipient) j["recipient"] = *m.recipient;
  if (m.content_type) j["content_type"] = *m.content_type;
  return j;
}

Json conversation_to_json(const Conversation& c) {
  Json msgs = Json::array();
  for (const Message& m : c.messages) msgs.push_back(message_to_json(m));
  return Json{{"messages", std::move(msgs)}};
}

}  // namespace oss4::harmony
