// The harmony chat format of gpt-oss (openai/harmony 0.0.8): the conversation data model and its rendering to
// o200k_harmony token ids, exactly as harmony's HarmonyEncoding renders it (src/encoding.rs): system and developer
// messages (tools as a TypeScript namespace from their JSON Schema), channels, tool calls and results, the dropping
// of earlier chain of thought, the completion prompt. Message text is encoded as ordinary text: special-token
// strings inside it ("<|start|>") stay text. Also reads and writes harmony's own JSON form of a conversation.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "oss4/status.h"
#include "text/tokenizer.h"

namespace oss4::harmony {

// JSON with keys in insertion order: harmony (serde_json with preserve_order) renders schema properties in the order
// they were written.
using Json = nlohmann::ordered_json;

enum class Role { kUser, kAssistant, kSystem, kDeveloper, kTool };
const char* role_name(Role r);  // "user", "assistant", "system", "developer", "tool"
std::optional<Role> role_from_name(std::string_view s);

enum class ReasoningEffort { kLow, kMedium, kHigh };
const char* reasoning_effort_name(ReasoningEffort e);  // "low", "medium", "high" (as rendered)
std::optional<ReasoningEffort> reasoning_effort_from_name(std::string_view s);  // any case

inline constexpr const char* kDefaultModelIdentity = "You are ChatGPT, a large language model trained by OpenAI.";

struct ToolDescription {
  std::string name;
  std::string description;
  std::optional<Json> parameters;  // a JSON Schema; none: the tool takes no arguments
};

struct ToolNamespace {
  std::string name;  // "functions", "browser", "python"
  std::optional<std::string> description;
  std::vector<ToolDescription> tools;
};
using ToolNamespaces = std::map<std::string, ToolNamespace>;  // by name: harmony keeps them in a BTreeMap

struct ChannelConfig {
  std::vector<std::string> valid_channels;
  bool channel_required = false;
};

// the system message; the defaults are harmony's SystemContent::default().
struct SystemContent {
  std::optional<std::string> model_identity = std::string(kDefaultModelIdentity);
  std::optional<ReasoningEffort> reasoning_effort = ReasoningEffort::kMedium;
  std::optional<ToolNamespaces> tools;                  // built-in tools (browser, python)
  std::optional<std::string> conversation_start_date;  // "Current date: ..." when set
  std::optional<std::string> knowledge_cutoff = std::string("2024-06");
  std::optional<ChannelConfig> channel_config = ChannelConfig{{"analysis", "commentary", "final"}, true};
};

// the developer message: instructions and function tools.
struct DeveloperContent {
  std::optional<std::string> instructions;
  std::optional<ToolNamespaces> tools;

  // adds (or replaces) the "functions" namespace.
  DeveloperContent& with_function_tools(std::vector<ToolDescription> tools);
};

using Content = std::variant<std::string, SystemContent, DeveloperContent>;

struct Message {
  Role role = Role::kUser;
  std::optional<std::string> name;          // author name; for Role::kTool the tool ("functions.get_weather")
  std::optional<std::string> recipient;     // "functions.get_weather", "assistant"; "all" is not rendered
  std::optional<std::string> channel;       // "analysis", "commentary", "final"
  std::optional<std::string> content_type;  // "<|constrain|>json", "json", "code"
  std::vector<Content> content;

  static Message text(Role role, std::string text);
  static Message system(SystemContent content);
  static Message developer(DeveloperContent content);
  // a tool's result: <|start|>{tool} to=assistant<|channel|>{channel}<|message|>{text}<|end|>
  static Message tool_result(std::string tool, std::string text, std::string channel = "commentary");

  Message& with_channel(std::string c) { channel = std::move(c); return *this; }
  Message& with_recipient(std::string r) { recipient = std::move(r); return *this; }
  Message& with_content_type(std::string t) { content_type = std::move(t); return *this; }
  // the text contents, concatenated.
  std::string text() const;
};

struct Conversation {
  std::vector<Message> messages;
};

struct RenderConfig {
  // when the last assistant message is on "final", drop the "analysis" messages before the first "final" one.
  bool auto_drop_analysis = true;
};

// the formatting tokens of a tokenizer (all must exist).
struct FormattingIds {
  int32_t start = -1, message = -1, end = -1, return_ = -1, call = -1, constrain = -1, channel = -1;
};

// renders through a tokenizer, which must outlive it.
class HarmonyEncoding {
 public:
  // error if the tokenizer lacks one of <|start|> <|message|> <|end|> <|return|> <|call|> <|constrain|> <|channel|>.
  static Result<HarmonyEncoding> create(const Tokenizer& tok);

  const Tokenizer& tokenizer() const { return *tok_; }
  const FormattingIds& ids() const { return ids_; }
  // <|return|> and <|call|>: where sampling stops (<|end|> only ends a message).
  std::vector<int32_t> stop_tokens_for_assistant_actions() const { return {ids_.return_, ids_.call}; }

  // one message. has_function_tools: the conversation's developer message defines "functions" tools (adds a line to
  // the system message). Errors: a tool message without a name, system/developer content in another role.
  Status render_message(const Message& m, bool has_function_tools, std::vector<int32_t>* out) const;
  // every message, without the analysis messages RenderConfig drops.
  Status render_conversation(const Conversation& c, const RenderConfig& cfg, std::vector<int32_t>* out) const;
  // the conversation, then "<|start|>{next}": the prompt the model completes.
  Status render_conversation_for_completion(const Conversation& c, Role next, const RenderConfig& cfg,
                                            std::vector<int32_t>* out) const;
  // the conversation; when the last message is an assistant "final" one, it ends with <|return|>.
  Status render_conversation_for_training(const Conversation& c, const RenderConfig& cfg,
                                          std::vector<int32_t>* out) const;

 private:
  Status text(std::string_view s, std::vector<int32_t>* out) const { return tok_->encode(s, false, out); }

  const Tokenizer* tok_ = nullptr;
  FormattingIds ids_;
};

// the indexes of the messages render_conversation keeps (harmony's auto_drop_analysis rule).
std::vector<size_t> kept_message_indexes(const Conversation& c, const RenderConfig& cfg);
// true when a developer message defines a non-empty "functions" namespace.
bool has_function_tools(const Conversation& c);

// the body texts of system and developer messages.
std::string system_content_text(const SystemContent& s, bool has_function_tools);
std::string developer_content_text(const DeveloperContent& d);
// "# Tools\n\n## functions\n\nnamespace functions {\n\n..." for a set of namespaces.
std::string tools_section_text(const ToolNamespaces& tools);
// harmony's json_schema_to_typescript: the TypeScript type of a JSON Schema.
std::string json_schema_to_typescript(const Json& schema, const std::string& indent);
// a JSON value as serde_json prints it (compact; floats in ryu's shortest form: 1e20, 1.5e-7, 2.0).
std::string serde_json_string(const Json& v);

// harmony's JSON form (Python Conversation.to_dict / Rust serde): {"messages": [{"role", "name", "content":
// [{"type": "text" | "system_content" | "developer_content", ...}] or a string, "channel", "recipient",
// "content_type"}]}. A missing or null optional field is unset (not defaulted).
Result<Message> message_from_json(const Json& j);
Result<Conversation> conversation_from_json(const Json& j);
Json message_to_json(const Message& m);
Json conversation_to_json(const Conversation& c);

}  // namespace oss4::harmony
