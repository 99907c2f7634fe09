// The harmony streaming parser. The header grammar is openai-harmony 0.0.8's parse_header_from_string
// (src/encoding.rs); where harmony raises an error (strict) or drops text (non-strict), this parser keeps the text as
// content and flags the message instead.
#include "text/harmony_parse.h"

#include <utility>

namespace oss4::harmony {

namespace {

constexpr std::string_view kChannelText = "<|channel|>";
constexpr std::string_view kConstrainText = "<|constrain|>";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// the length of the valid UTF-8 sequence at s[i], or 0 with *bad = the length of its maximal invalid prefix
// (at least 1), as Rust's from_utf8_lossy splits invalid input.
size_t utf8_seq(std::string_view s, size_t i, size_t* bad) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *bad = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return 0;
    *bad = k + 1;
  }
  return need + 1;
}

// appends s with every invalid sequence replaced by U+FFFD; returns whether any was.
bool append_lossy(std::string_view s, std::string* out) {
  bool replaced = false;
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    const size_t n = utf8_seq(s, i, &bad);
    if (n > 0) {
      out->append(s.substr(i, n));
      i += n;
    } else {
      out->append(kReplacement);
      replaced = true;
      i += bad;
    }
  }
  return replaced;
}

// the code point at s[i] of valid UTF-8 and its length.
uint32_t code_point(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t bad = 0;
  *len = utf8_seq(s, i, &bad);
  if (*len == 0) {
    *len = 1;
    return 0xFFFD;
  }
  if (*len == 1) return b0;
  uint32_t cp = b0 & (0xFF >> (*len + 1));
  for (size_t k = 1; k < *len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

// Unicode White_Space, as Rust's char::is_whitespace and str::trim use it.
bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t len = 0;
    if (!is_white_space(code_point(s, b, &len))) break;
    b += len;
  }
  // scan forward for the end of the last non-space character
  size_t last_end = b;
  for (size_t i = b; i < e;) {
    size_t len = 0;
    const uint32_t c = code_point(s, i, &len);
    i += len;
    if (!is_white_space(c)) last_end = i;
  }
  return std::string(s.substr(b, last_end - b));
}

// Rust's split_ascii_whitespace.
std::vector<std::string> split_ascii_whitespace(std::string_view s) {
  std::vector<std::string> parts;
  size_t i = 0;
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; };
  while (i < s.size()) {
    while (i < s.size() && ws(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !ws(s[j])) ++j;
    if (j > i) parts.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return parts;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

struct HeaderFields {
  Role role = Role::kAssistant;
  std::optional<std::string> name, recipient, channel, content_type;
  std::string leftover;  // header words that are not header fields: they become content
  std::string problem;
};

void add_problem(std::string* to, std::string_view why) {
  if (!to->empty()) *to += "; ";
  *to += why;
}

// harmony's parse_header_from_string (parse_recipient_and_type = true), made total: where harmony fails, the role
// falls back and the words it could not place are returned as leftover.
HeaderFields parse_header(std::string s, std::optional<Role> hint, Role fallback) {
  HeaderFields h;
  if (const size_t idx = s.find(kChannelText); idx != std::string::npos) {
    const size_t b = idx + kChannelText.size();
    size_t e = b;
    while (e < s.size()) {
      size_t len = 0;
      const uint32_t c = code_point(s, e, &len);
      if (is_white_space(c) || c == '<') break;
      e += len;
    }
    if (e == b) {
      add_problem(&h.problem, "empty channel");
    } else {
      h.channel = s.substr(b, e - b);
    }
    s = s.substr(0, idx) + s.substr(e);
  }
  s = trim(s);
  if (s.find(kConstrainText) != std::string::npos) {
    // "to=x<|constrain|>json": the content type is a word of its own
    std::string spaced;
    for (size_t i = 0; i < s.size();) {
      if (s.compare(i, kConstrainText.size(), kConstrainText) == 0) {
        spaced += " ";
        spaced += kConstrainText;
        i += kConstrainText.size();
      } else {
        spaced += s[i++];
      }
    }
    s = trim(spaced);
  }
  std::vector<std::string> parts = split_ascii_whitespace(s);
  std::optional<std::string> role_word;
  if (hint) {
    h.role = *hint;
  } else if (parts.empty()) {
    h.role = fallback;
    add_problem(&h.problem, "no role in header");
  } else {
    role_word = parts[0];
    const size_t colon = parts[0].find(':');
    const std::optional<Role> named = role_from_name(parts[0].substr(0, colon));
    if (auto r = role_from_name(parts[0])) {
      h.role = *r;
    } else if (colon != std::string::npos && named.value_or(Role::kTool) != Role::kTool) {
      // "user:alice", as the renderer writes an author name (harmony's parser does not read it back)
      h.role = named.value_or(fallback);
      h.name = parts[0].substr(colon + 1);
      parts.erase(parts.begin());
      role_word.reset();
    } else if (parts.size() > 1 || starts_with(parts[0], "to=")) {
      // an unknown role followed by a recipient: a tool's message, named in the role position
      parts.erase(parts.begin());
      h.role = Role::kTool;
    } else {
      h.role = fallback;
      add_problem(&h.problem, "unknown role '" + parts[0] + "'");
      h.leftover = parts[0];
      parts.clear();
      role_word.reset();
    }
  }
  if (!parts.empty() && parts[0] == role_name(h.role)) parts.erase(parts.begin());
  if (!parts.empty()) {
    const size_t n = parts.size();
    std::string last = std::move(parts.back());
    parts.pop_back();
    if (starts_with(last, "to=")) {
      h.recipient = last.substr(3);
    } else if (n == 1) {
      h.recipient = std::move(last);
    } else {
      h.content_type = std::move(last);
      std::string r = std::move(parts.back());
      parts.pop_back();
      h.recipient = starts_with(r, "to=") ? r.substr(3) : r;
    }
  }
  if (!parts.empty()) {
    for (size_t i = 0; i < parts.size(); ++i) h.leftover += (i > 0 || !h.leftover.empty() ? " " : "") + parts[i];
    add_problem(&h.problem, "unexpected words in header");
  }
  if (h.role == Role::kTool && role_word) h.name = role_word;
  return h;
}

}  // namespace

const char* end_token_name(EndToken e) {
  switch (e) {
    case EndToken::kNone: return "none";
    case EndToken::kEnd: return "<|end|>";
    case EndToken::kReturn: return "<|return|>";
    case EndToken::kCall: return "<|call|>";
  }
  return "none";
}

HarmonyParser::HarmonyParser(const HarmonyEncoding& enc, std::optional<Role> role)
    : enc_(&enc), fallback_role_(role.value_or(Role::kAssistant)), dec_(enc.tokenizer()) {
  if (role) {
    state_ = State::kHeader;
    header_role_ = role;
  }
}

HarmonyParser::Kind HarmonyParser::classify(int32_t id) const {
  const FormattingIds& f = enc_->ids();
  if (id == f.start) return Kind::kStart;
  if (id == f.message) return Kind::kMessage;
  if (id == f.end) return Kind::kEnd;
  if (id == f.return_) return Kind::kReturn;
  if (id == f.call) return Kind::kCall;
  if (id == f.channel) return Kind::kChannel;
  if (id == f.constrain) return Kind::kConstrain;
  const Tokenizer& tok = enc_->tokenizer();
  if (tok.token_bytes(id).empty()) return Kind::kUnknown;
  return tok.is_special(id) ? Kind::kOtherSpecial : Kind::kText;
}

void HarmonyParser::flag(ParsedMessage* m, const std::string& why) {
  m->malformed = true;
  add_problem(&m->reason, why);
}

void HarmonyParser::stray(const std::string& why) {
  // between messages: charged to the message before, or to the first one when none exists yet
  if (!messages_.empty()) {
    flag(&messages_.back(), why);
  } else {
    add_problem(&problems_, why);
  }
}

void HarmonyParser::begin_header(std::optional<Role> role, const char* problem) {
  state_ = State::kHeader;
  header_role_ = role;
  header_ids_.clear();
  if (problem != nullptr) add_problem(&problems_, problem);
}

std::string HarmonyParser::header_text(bool* invalid) const {
  std::string raw;
  for (int32_t id : header_ids_) raw.append(enc_->tokenizer().token_bytes(id));
  std::string text;
  *invalid = append_lossy(raw, &text);
  return text;
}

ParsedMessage& HarmonyParser::new_message(Role role, std::string header) {
  ParsedMessage pm;
  pm.message.role = role;
  pm.message.content.emplace_back(std::string());
  pm.header = std::move(header);
  if (!problems_.empty()) {
    pm.malformed = true;
    pm.reason = std::move(problems_);
    problems_.clear();
  }
  messages_.push_back(std::move(pm));
  header_ids_.clear();
  header_role_.reset();
  return messages_.back();
}

ParseDelta HarmonyParser::header_without_message(EndToken end, const char* why) {
  bool invalid = false;
  std::string raw = header_text(&invalid);
  ParsedMessage& m = new_message(header_role_.value_or(fallback_role_), raw);
  flag(&m, why);
  if (invalid) flag(&m, "invalid UTF-8 in header");
  std::get<std::string>(m.message.content.front()) = raw;
  m.end = end;
  m.complete = true;
  state_ = State::kExpectStart;
  ParseDelta d;
  if (!raw.empty()) d = {static_cast<int64_t>(messages_.size()) - 1, std::move(raw)};
  return d;
}

ParseDelta HarmonyParser::open_message() {
  bool invalid = false;
  std::string raw = header_text(&invalid);
  HeaderFields h = parse_header(raw, header_role_, fallback_role_);
  ParsedMessage& m = new_message(h.role, std::move(raw));
  m.message.name = std::move(h.name);
  m.message.recipient = std::move(h.recipient);
  m.message.channel = std::move(h.channel);
  m.message.content_type = std::move(h.content_type);
  if (invalid) flag(&m, "invalid UTF-8 in header");
  if (!h.problem.empty()) flag(&m, h.problem);
  if (m.message.role == Role::kAssistant && !m.message.channel) flag(&m, "missing channel");
  state_ = State::kContent;
  ParseDelta d;
  if (!h.leftover.empty()) {
    std::get<std::string>(m.message.content.front()) = h.leftover;
    d = {static_cast<int64_t>(messages_.size()) - 1, std::move(h.leftover)};
  }
  return d;
}

void HarmonyParser::append_text(std::string_view raw, ParseDelta* d) {
  if (raw.empty()) return;
  ParsedMessage& m = messages_.back();
  std::string text;
  if (append_lossy(raw, &text)) flag(&m, "invalid UTF-8 replaced by U+FFFD");
  std::get<std::string>(m.message.content.front()) += text;
  d->message = static_cast<int64_t>(messages_.size()) - 1;
  d->text += text;
}

void HarmonyParser::close_message(EndToken end, ParseDelta* d) {
  const std::string rest = dec_.flush();
  if (!rest.empty()) {
    flag(&messages_.back(), "incomplete UTF-8 character at the end of the content");
    append_text(rest, d);
  }
  messages_.back().end = end;
  messages_.back().complete = true;
  state_ = State::kExpectStart;
}

ParseDelta HarmonyParser::push(int32_t id) {
  ParseDelta d;
  turn_ended_ = false;
  const Kind k = classify(id);
  const std::string unknown = "token id " + std::to_string(id) + " has no token";
  const std::string_view bytes = enc_->tokenizer().token_bytes(id);
  const bool stop = k == Kind::kEnd || k == Kind::kReturn || k == Kind::kCall;
  const EndToken end = k == Kind::kEnd ? EndToken::kEnd : k == Kind::kReturn ? EndToken::kReturn : EndToken::kCall;
  switch (state_) {
    case State::kExpectStart:
      if (k == Kind::kStart) {
        begin_header(std::nullopt, nullptr);
      } else if (stop) {
        stray("stray " + std::string(bytes) + " between messages");
      } else if (k == Kind::kUnknown) {
        stray(unknown);
      } else {
        // text or a header token where <|start|> should be: read it as a header of the fallback role
        begin_header(fallback_role_, "missing <|start|>");
        if (k == Kind::kMessage) {
          d = open_message();
        } else {
          header_ids_.push_back(id);
        }
      }
      break;
    case State::kHeader:
      if (k == Kind::kMessage) {
        d = open_message();
      } else if (stop) {
        d = header_without_message(end, "header not followed by <|message|>");
      } else if (k == Kind::kStart) {
        if (!header_ids_.empty()) {
          d = header_without_message(EndToken::kNone, "header cut off by <|start|>");
        } else {
          add_problem(&problems_, "empty header");
        }
        begin_header(std::nullopt, nullptr);
      } else if (k == Kind::kUnknown) {
        add_problem(&problems_, unknown);
      } else {
        header_ids_.push_back(id);
      }
      break;
    case State::kContent:
      if (stop) {
        close_message(end, &d);
      } else if (k == Kind::kStart) {
        flag(&messages_.back(), "no <|end|> before <|start|>");
        close_message(EndToken::kNone, &d);
        begin_header(std::nullopt, nullptr);
      } else if (k == Kind::kText) {
        std::string raw;
        if (dec_.push(id, &raw).ok()) append_text(raw, &d);
      } else if (k == Kind::kUnknown) {
        flag(&messages_.back(), unknown);
      } else {
        // a special token inside content: kept as its text, as harmony keeps it
        flag(&messages_.back(), "stray " + std::string(bytes) + " in content");
        std::string raw = dec_.flush();
        raw.append(bytes);
        append_text(raw, &d);
      }
      break;
  }
  if (stop && k != Kind::kEnd) turn_ended_ = true;
  return d;
}

ParseDelta HarmonyParser::finish() {
  ParseDelta d;
  if (state_ == State::kHeader) {
    if (!header_ids_.empty()) {
      d = header_without_message(EndToken::kNone, "header cut off (no <|message|>)");
    } else if (!header_role_) {
      stray("stream ended after <|start|>");
    }
  } else if (state_ == State::kContent) {
    close_message(EndToken::kNone, &d);
  }
  state_ = State::kExpectStart;
  header_role_.reset();
  header_ids_.clear();
  if (!problems_.empty()) {
    // problems with no message after them: keep them visible on an empty message
    if (messages_.empty()) {
      ParsedMessage& m = new_message(fallback_role_, std::string());
      m.complete = true;
    } else {
      flag(&messages_.back(), problems_);
      problems_.clear();
    }
  }
  return d;
}

std::vector<ParsedMessage> parse_harmony(const HarmonyEncoding& enc, const std::vector<int32_t>& ids,
                                         std::optional<Role> role) {
  HarmonyParser p(enc, role);
  for (int32_t id : ids) p.push(id);
  p.finish();
  return p.messages();
}

}  // namespace oss4::harmony
