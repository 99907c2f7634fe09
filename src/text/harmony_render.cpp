// Harmony rendering: a port of openai/harmony 0.0.8 src/encoding.rs (Render<Message>, Render<SystemContent>,
// Render<DeveloperContent>, render_conversation_into, template_tools_section). Every piece of text is encoded on its
// own, as harmony does (role, ":name", " to=...", channel, content type, each content), so token boundaries match.
#include "text/harmony_render.h"

#include <algorithm>
#include <cctype>

namespace oss4::harmony {

const char* role_name(Role r) {
  switch (r) {
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kSystem: return "system";
    case Role::kDeveloper: return "developer";
    case Role::kTool: return "tool";
  }
  return "user";
}

std::optional<Role> role_from_name(std::string_view s) {
  for (Role r : {Role::kUser, Role::kAssistant, Role::kSystem, Role::kDeveloper, Role::kTool}) {
    if (s == role_name(r)) return r;
  }
  return std::nullopt;
}

const char* reasoning_effort_name(ReasoningEffort e) {
  switch (e) {
    case ReasoningEffort::kLow: return "low";
    case ReasoningEffort::kMedium: return "medium";
    case ReasoningEffort::kHigh: return "high";
  }
  return "medium";
}

std::optional<ReasoningEffort> reasoning_effort_from_name(std::string_view s) {
  std::string lower(s);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (ReasoningEffort e : {ReasoningEffort::kLow, ReasoningEffort::kMedium, ReasoningEffort::kHigh}) {
    if (lower == reasoning_effort_name(e)) return e;
  }
  return std::nullopt;
}

DeveloperContent& DeveloperContent::with_function_tools(std::vector<ToolDescription> list) {
  if (!tools) tools.emplace();
  (*tools)["functions"] = ToolNamespace{"functions", std::nullopt, std::move(list)};
  return *this;
}

Message Message::text(Role role, std::string t) {
  Message m;
  m.role = role;
  m.content.emplace_back(std::move(t));
  return m;
}

Message Message::system(SystemContent content) {
  Message m;
  m.role = Role::kSystem;
  m.content.emplace_back(std::move(content));
  return m;
}

Message Message::developer(DeveloperContent content) {
  Message m;
  m.role = Role::kDeveloper;
  m.content.emplace_back(std::move(content));
  return m;
}

Message Message::tool_result(std::string tool, std::string t, std::string ch) {
  Message m = text(Role::kTool, std::move(t));
  m.name = std::move(tool);
  m.recipient = "assistant";
  m.channel = std::move(ch);
  return m;
}

std::string Message::text() const {
  std::string out;
  for (const Content& c : content) {
    if (const auto* s = std::get_if<std::string>(&c)) out += *s;
  }
  return out;
}

namespace {

// Rust's str::lines(): split at '\n', drop one '\r' before it, no final empty line.
std::vector<std::string_view> rust_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  while (!s.empty()) {
    const size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    if (!line.empty() && line.back() == '\r' && nl != std::string_view::npos) line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return lines;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

}  // namespace

std::string tools_section_text(const ToolNamespaces& tools) {
  std::vector<std::string> sections = {"# Tools"};
  for (const auto& [key, ns] : tools) {
    std::vector<std::string> lines = {"## " + ns.name + "\n"};
    if (ns.description) {
      for (std::string_view line : rust_lines(*ns.description)) {
        lines.push_back(ns.tools.empty() ? std::string(line) : "// " + std::string(line));
      }
    }
    if (!ns.tools.empty()) {
      lines.push_back("namespace " + ns.name + " {\n");
      for (const ToolDescription& t : ns.tools) {
        for (std::string_view line : rust_lines(t.description)) lines.push_back("// " + std::string(line));
        if (t.parameters) {
          lines.push_back("type " + t.name + " = (_: " + json_schema_to_typescript(*t.parameters, "") + ") => any;\n");
        } else {
          lines.push_back("type " + t.name + " = () => any;\n");
        }
      }
      lines.push_back("} // namespace " + ns.name);
    }
    sections.push_back(join(lines, "\n"));
  }
  return join(sections, "\n\n");
}

std::string system_content_text(const SystemContent& s, bool has_function_tools) {
  std::vector<std::string> sections;
  std::vector<std::string> top;
  if (s.model_identity) top.push_back(*s.model_identity);
  if (s.knowledge_cutoff) top.push_back("Knowledge cutoff: " + *s.knowledge_cutoff);
  if (s.conversation_start_date) top.push_back("Current date: " + *s.conversation_start_date);
  if (!top.empty()) sections.push_back(join(top, "\n"));
  if (s.reasoning_effort) sections.push_back(std::string("Reasoning: ") + reasoning_effort_name(*s.reasoning_effort));
  if (s.tools && !s.tools->empty()) sections.push_back(tools_section_text(*s.tools));
  if (s.channel_config && !s.channel_config->valid_channels.empty()) {
    std::string h = "# Valid channels: " + join(s.channel_config->valid_channels, ", ") + ".";
    if (s.channel_config->channel_required) h += " Channel must be included for every message.";
    if (has_function_tools) h += "\nCalls to these tools must go to the commentary channel: 'functions'.";
    sections.push_back(std::move(h));
  }
  return join(sections, "\n\n");
}

std::string developer_content_text(const DeveloperContent& d) {
  std::vector<std::string> sections;
  if (d.instructions) {
    sections.push_back("# Instructions");
    sections.push_back(*d.instructions);
  }
  if (d.tools && !d.tools->empty()) sections.push_back(tools_section_text(*d.tools));
  return join(sections, "\n\n");
}

bool has_function_tools(const Conversation& c) {
  for (const Message& m : c.messages) {
    for (const Content& content : m.content) {
      const auto* dev = std::get_if<DeveloperContent>(&content);
      if (dev == nullptr || !dev->tools) continue;
      auto it = dev->tools->find("functions");
      if (it != dev->tools->end() && !it->second.tools.empty()) return true;
    }
  }
  return false;
}

std::vector<size_t> kept_message_indexes(const Conversation& c, const RenderConfig& cfg) {
  const auto& msgs = c.messages;
  bool last_assistant_is_final = false;
  for (size_t i = msgs.size(); i-- > 0;) {
    if (msgs[i].role == Role::kAssistant) {
      last_assistant_is_final = msgs[i].channel == "final";
      break;
    }
  }
  const bool drop = cfg.auto_drop_analysis && last_assistant_is_final;
  size_t first_final = msgs.size();
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].channel == "final") {
      first_final = i;
      break;
    }
  }
  std::vector<size_t> kept;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (drop && i < first_final && msgs[i].channel == "analysis") continue;
    kept.push_back(i);
  }
  return kept;
}

Result<HarmonyEncoding> HarmonyEncoding::create(const Tokenizer& tok) {
  HarmonyEncoding e;
  e.tok_ = &tok;
  const std::pair<const char*, int32_t*> want[] = {
      {"<|start|>", &e.ids_.start},   {"<|message|>", &e.ids_.message},     {"<|end|>", &e.ids_.end},
      {"<|return|>", &e.ids_.return_}, {"<|call|>", &e.ids_.call},          {"<|constrain|>", &e.ids_.constrain},
      {"<|channel|>", &e.ids_.channel},
  };
  for (const auto& [text, id] : want) {
    *id = tok.special_id(text);
    if (*id < 0) return error(std::string("harmony: the tokenizer has no special token ") + text);
  }
  return e;
}

Status HarmonyEncoding::render_message(const Message& m, bool function_tools, std::vector<int32_t>* out) const {
  out->push_back(ids_.start);
  if (m.role == Role::kTool) {
    // a tool message names the tool where the role goes
    if (!m.name) return error("harmony: a tool message needs the tool's name");
    OSS4_TRY(text(*m.name, out));
  } else {
    OSS4_TRY(text(role_name(m.role), out));
    if (m.name) OSS4_TRY(text(":" + *m.name, out));
  }
  if (m.recipient && *m.recipient != "all") OSS4_TRY(text(" to=" + *m.recipient, out));
  if (m.channel) {
    out->push_back(ids_.channel);
    OSS4_TRY(text(*m.channel, out));
  }
  if (m.content_type) {
    static constexpr std::string_view kConstrain = "<|constrain|>";
    const std::string_view ct = *m.content_type;
    if (ct.substr(0, kConstrain.size()) == kConstrain) {
      OSS4_TRY(text(" ", out));
      out->push_back(ids_.constrain);
      if (ct.size() > kConstrain.size()) OSS4_TRY(text(ct.substr(kConstrain.size()), out));
    } else {
      OSS4_TRY(text(" " + *m.content_type, out));
    }
  }
  out->push_back(ids_.message);
  for (const Content& c : m.content) {
    if (const auto* s = std::get_if<std::string>(&c)) {
      OSS4_TRY(text(*s, out));
    } else if (const auto* sys = std::get_if<SystemContent>(&c)) {
      if (m.role != Role::kSystem) return error(std::string("harmony: system content in a ") + role_name(m.role) + " message");
      OSS4_TRY(text(system_content_text(*sys, function_tools), out));
    } else {
      if (m.role != Role::kDeveloper) return error(std::string("harmony: developer content in a ") + role_name(m.role) + " message");
      OSS4_TRY(text(developer_content_text(std::get<DeveloperContent>(c)), out));
    }
  }
  out->push_back(m.role == Role::kAssistant && m.recipient ? ids_.call : ids_.end);
  return ok_status();
}

Status HarmonyEncoding::render_conversation(const Conversation& c, const RenderConfig& cfg, std::vector<int32_t>* out) const {
  const bool tools = has_function_tools(c);
  for (size_t i : kept_message_indexes(c, cfg)) {
    Status s = render_message(c.messages[i], tools, out);
    if (!s.ok()) return s.with_context("message " + std::to_string(i));
  }
  return ok_status();
}

Status HarmonyEncoding::render_conversation_for_completion(const Conversation& c, Role next, const RenderConfig& cfg,
                                                           std::vector<int32_t>* out) const {
  OSS4_TRY(render_conversation(c, cfg, out));
  out->push_back(ids_.start);
  return text(role_name(next), out);
}

Status HarmonyEncoding::render_conversation_for_training(const Conversation& c, const RenderConfig& cfg,
                                                         std::vector<int32_t>* out) const {
  const size_t n0 = out->size();
  OSS4_TRY(render_conversation(c, cfg, out));
  if (!c.messages.empty() && out->size() > n0) {
    const Message& last = c.messages.back();
    if (last.role == Role::kAssistant && last.channel == "final") out->back() = ids_.return_;
  }
  return ok_status();
}

}  // namespace oss4::harmony
