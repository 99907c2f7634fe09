#include "serve/output.h"

#include <algorithm>

namespace oss4::serve {

namespace h = oss4::harmony;

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) max_len_ = std::max(max_len_, s.size());
}

std::string StopMatcher::push(const std::string& text) {
  if (hit_) return "";
  held_ += text;
  if (stops_.empty()) return std::exchange(held_, std::string());
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    hit_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // keep the last max_len - 1 bytes (they could begin a stop string), cut at a UTF-8 character boundary
  size_t keep_from = held_.size() > max_len_ - 1 ? held_.size() - (max_len_ - 1) : 0;
  while (keep_from > 0 && (static_cast<unsigned char>(held_[keep_from]) & 0xC0) == 0x80) --keep_from;
  std::string out = held_.substr(0, keep_from);
  held_.erase(0, keep_from);
  return out;
}

std::string StopMatcher::flush() {
  if (hit_) return "";
  return std::exchange(held_, std::string());
}

HarmonyOutput::HarmonyOutput(const h::HarmonyEncoding& enc, std::vector<std::string> stops, std::string call_id_prefix)
    : parser_(enc, h::Role::kAssistant), stop_(std::move(stops)), call_prefix_(std::move(call_id_prefix)), enc_(enc) {}

bool HarmonyOutput::has_tool_calls() const {
  return std::any_of(parts_.begin(), parts_.end(), [](const OutputPart& p) { return p.kind == PartKind::kToolCall; });
}

std::string HarmonyOutput::text() const {
  std::string s;
  for (const auto& p : parts_) {
    if (p.kind == PartKind::kText) s += p.text;
  }
  return s;
}

std::vector<bool> HarmonyOutput::content_tokens() const {
  const auto& msgs = parser_.messages();
  std::vector<bool> out(token_places_.size(), false);
  for (size_t i = 0; i < token_places_.size(); ++i) {
    const TokenPlace& t = token_places_[i];
    if (t.message < 0 || t.message >= static_cast<int64_t>(part_of_msg_.size())) continue;
    const int64_t pi = part_of_msg_[static_cast<size_t>(t.message)];
    if (pi < 0 || parts_[static_cast<size_t>(pi)].kind != PartKind::kText) continue;
    const h::ParsedMessage& m = msgs[static_cast<size_t>(t.message)];
    // a header token is content only when its header became the message's text (no <|message|> came)
    out[i] = !t.header || (m.malformed && m.text() == m.header);
  }
  return out;
}

std::string HarmonyOutput::reasoning() const {
  std::string s;
  for (const auto& p : parts_) {
    if (p.kind == PartKind::kReasoning) s += p.text;
  }
  return s;
}

void HarmonyOutput::route(const h::ParseDelta& d, std::vector<OutputEvent>* ev) {
  const auto& msgs = parser_.messages();
  while (part_of_msg_.size() < msgs.size()) part_of_msg_.push_back(-1);
  auto open_part = [&](size_t mi) -> size_t {
    if (part_of_msg_[mi] >= 0) return static_cast<size_t>(part_of_msg_[mi]);
    const h::Message& m = msgs[mi].message;
    OutputPart p;
    if (m.recipient && *m.recipient != "all" && *m.recipient != "assistant") {
      p.kind = PartKind::kToolCall;
      p.tool_name = m.recipient->rfind("functions.", 0) == 0 ? m.recipient->substr(10) : *m.recipient;
      p.call_id = call_prefix_ + std::to_string(std::count_if(parts_.begin(), parts_.end(), [](const OutputPart& q) { return q.kind == PartKind::kToolCall; }));
    } else if (m.channel && *m.channel == "analysis") {
      p.kind = PartKind::kReasoning;
    } else {
      p.kind = PartKind::kText;
    }
    parts_.push_back(std::move(p));
    part_of_msg_[mi] = static_cast<int64_t>(parts_.size() - 1);
    ev->push_back(OutputEvent{OutputEvent::Type::kOpen, parts_.size() - 1, ""});
    return parts_.size() - 1;
  };
  if (d.message >= 0 && !d.text.empty()) {
    const size_t pi = open_part(static_cast<size_t>(d.message));
    OutputPart& p = parts_[pi];
    std::string text = p.kind == PartKind::kText ? stop_.push(d.text) : d.text;
    if (!text.empty()) {
      p.text += text;
      ev->push_back(OutputEvent{OutputEvent::Type::kDelta, pi, std::move(text)});
    }
  }
  // messages that completed: text parts release what the stop matcher held; tool calls without arguments still count
  while (n_closed_msgs_ < msgs.size() && msgs[n_closed_msgs_].complete) {
    const size_t mi = n_closed_msgs_++;
    const h::Message& m = msgs[mi].message;
    const bool tool = m.recipient && *m.recipient != "all" && *m.recipient != "assistant";
    if (part_of_msg_[mi] < 0 && !tool) continue;
    close_part(open_part(mi), ev);
  }
}

void HarmonyOutput::close_part(size_t pi, std::vector<OutputEvent>* ev) {
  OutputPart& p = parts_[pi];
  if (p.kind == PartKind::kText) {
    std::string rest = stop_.flush();
    if (!rest.empty()) {
      p.text += rest;
      ev->push_back(OutputEvent{OutputEvent::Type::kDelta, pi, std::move(rest)});
    }
  }
  p.closed = true;
  ev->push_back(OutputEvent{OutputEvent::Type::kClose, pi, ""});
}

void HarmonyOutput::close_open(std::vector<OutputEvent>* ev) {
  for (size_t pi = 0; pi < parts_.size(); ++pi) {
    if (!parts_[pi].closed) close_part(pi, ev);
  }
}

std::vector<OutputEvent> HarmonyOutput::push(int32_t id) {
  std::vector<OutputEvent> ev;
  if (stop_.hit()) return ev;
  route(parser_.push(id), &ev);
  const auto& msgs = parser_.messages();
  TokenPlace place;
  if (parser_.in_header()) {
    place = {static_cast<int64_t>(msgs.size()), true};  // the message this header will make
  } else if (!msgs.empty() && !msgs.back().complete && !enc_.tokenizer().is_special(id)) {
    place = {static_cast<int64_t>(msgs.size()) - 1, false};
  }
  token_places_.push_back(place);
  if (stop_.hit()) close_open(&ev);
  return ev;
}

std::vector<OutputEvent> HarmonyOutput::finish() {
  std::vector<OutputEvent> ev;
  if (!stop_.hit()) route(parser_.finish(), &ev);
  close_open(&ev);
  return ev;
}

std::string TextOutput::push(int32_t id) {
  ++n_pushed_;
  std::string piece;
  if (!dec_.push(id, &piece).ok()) piece = "\xEF\xBF\xBD";  // an id without bytes: U+FFFD
  return stop_.push(piece);
}

std::string TextOutput::finish() {
  std::string out = stop_.push(dec_.flush());
  return out + stop_.flush();
}

}  // namespace oss4::serve
