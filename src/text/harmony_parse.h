// Streaming parser for harmony model output: token ids in, messages out (role, channel, recipient, content type,
// content), with the content text streamed as it arrives, whole UTF-8 characters only.
//
// Well-formed output parses exactly as openai-harmony's StreamableParser parses it (the header grammar of
// parse_header_from_string: the recipient before or after <|channel|>, "<|constrain|>json" content types, tool
// names in the role position). Malformed output never fails and never drops text: a missing channel, a stray special
// token, text before a header, a header cut off or ended without <|message|>, an unknown role or leftover header
// words all come back as messages flagged `malformed` with a reason, their text kept as content.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/harmony_render.h"

namespace oss4::harmony {

// the token that closed a message.
enum class EndToken { kNone, kEnd, kReturn, kCall };  // kNone: the stream stopped inside it (or <|start|> cut it)
const char* end_token_name(EndToken e);

struct ParsedMessage {
  Message message;        // role, name, recipient, channel, content_type and one text content
  std::string header;     // the raw header text as decoded, special tokens spelled out ("<|channel|>final")
  EndToken end = EndToken::kNone;
  bool complete = false;  // closed by a token or by finish()
  bool malformed = false;
  std::string reason;     // why it is malformed; "; "-separated when several

  const std::string& text() const { return std::get<std::string>(message.content.front()); }
};

// content text completed by one token; it belongs to messages()[message] (-1: none).
struct ParseDelta {
  int64_t message = -1;
  std::string text;
};

class HarmonyParser {
 public:
  // role: the role of the first message when the stream starts right after "<|start|>{role}" (a completion prompt
  // ends with <|start|>assistant); nullopt when the stream itself starts with <|start|>. The encoding must outlive
  // the parser.
  explicit HarmonyParser(const HarmonyEncoding& enc, std::optional<Role> role = Role::kAssistant);

  // consumes one token (any id, even one without a token).
  ParseDelta push(int32_t id);
  // the end of the stream (a stop token already closed the turn, or max_tokens cut it): closes a message or header
  // cut off mid-way. Tokens pushed after finish() are read as a stream that starts with <|start|>.
  ParseDelta finish();

  // every message so far; the last one may still be open (complete == false).
  const std::vector<ParsedMessage>& messages() const { return messages_; }
  // the last token was <|return|> or <|call|>: the assistant's turn is over.
  bool turn_ended() const { return turn_ended_; }
  // a header is being read (no message open yet).
  bool in_header() const { return state_ == State::kHeader; }

 private:
  enum class State { kExpectStart, kHeader, kContent };
  enum class Kind { kStart, kMessage, kEnd, kReturn, kCall, kChannel, kConstrain, kOtherSpecial, kText, kUnknown };

  Kind classify(int32_t id) const;
  void flag(ParsedMessage* m, const std::string& why);
  void stray(const std::string& why);  // a problem between messages
  void begin_header(std::optional<Role> role, const char* problem);
  std::string header_text(bool* invalid) const;
  ParsedMessage& new_message(Role role, std::string header);
  // closes a header that never reached <|message|>: its raw text becomes the content of a malformed message.
  ParseDelta header_without_message(EndToken end, const char* why);
  ParseDelta open_message();  // <|message|>: parse the header and open the message
  void append_text(std::string_view raw, ParseDelta* d);
  void close_message(EndToken end, ParseDelta* d);

  const HarmonyEncoding* enc_;
  Role fallback_role_;                 // for a message whose header names no usable role
  State state_ = State::kExpectStart;
  std::optional<Role> header_role_;    // the role already known for the header being read
  std::vector<int32_t> header_ids_;    // [n] tokens of the header being read
  std::string problems_;               // problems met before the next message exists
  StreamingDecoder dec_;               // content bytes, held back until they complete a UTF-8 character
  std::vector<ParsedMessage> messages_;
  bool turn_ended_ = false;
};

// parses a whole token sequence (push each, then finish).
std::vector<ParsedMessage> parse_harmony(const HarmonyEncoding& enc, const std::vector<int32_t>& ids,
                                         std::optional<Role> role = Role::kAssistant);

}  // namespace oss4::harmony
