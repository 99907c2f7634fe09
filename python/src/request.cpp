// oss4._core.Request (request.h).
#include "request.h"

#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <chrono>

namespace oss4::py {

Request::Request(std::shared_ptr<Sequence> seq, Text how, bool want_logprobs)
    : seq_(std::move(seq)), how_(std::move(how)), want_logprobs_(want_logprobs) {
  if (how_.enc) {
    harmony_.emplace(*how_.enc, how_.stops, "call_");
  } else if (how_.tok) {
    decoder_.emplace(*how_.tok);
    matcher_.emplace(how_.stops);
  }
}

Request::~Request() {
  if (!done_) seq_->cancel();
}

std::tuple<std::vector<int32_t>, nb::str, nb::str, bool> Request::poll() {
  std::vector<int32_t> ids;
  std::string text, reasoning;
  if (!done_) {
    const bool ended = seq_->wait(&ids, std::chrono::milliseconds(0));
    size_t n_taken = 0;
    for (int32_t id : ids) {
      if (stop_hit()) break;  // a stop string ended the text: later tokens are not part of the output
      consume(id, &text, &reasoning);
      ++n_taken;
    }
    ids.resize(n_taken);
    token_ids_.insert(token_ids_.end(), ids.begin(), ids.end());
    if (ended || stop_hit()) finish(&text, &reasoning);
  }
  return {std::move(ids), utf8(text), utf8(reasoning), done_};
}

void Request::route(const std::vector<serve::OutputEvent>& ev, std::string* text, std::string* reasoning) {
  for (const serve::OutputEvent& e : ev) {
    if (e.type != serve::OutputEvent::Type::kDelta) continue;
    const serve::OutputPart& p = harmony_->parts()[e.part];
    if (p.kind == serve::PartKind::kText) *text += e.text;
    if (p.kind == serve::PartKind::kReasoning) *reasoning += e.text;
  }
}

void Request::consume(int32_t id, std::string* text, std::string* reasoning) {
  std::string t, r;
  const bool hidden = std::find(how_.hidden_ids.begin(), how_.hidden_ids.end(), id) != how_.hidden_ids.end();
  if (harmony_) {
    // the model's EOS ids that are not harmony's own stops end the turn without being part of it (as the server)
    if (!hidden) route(harmony_->push(id), &t, &r);
  } else if (decoder_) {
    if (hidden || (how_.skip_special && how_.tok->is_special(id)) || id >= how_.tok->n_vocab()) return;
    std::string piece;
    check(decoder_->push(id, &piece));
    t = matcher_->push(piece);
  }
  *text += t, text_ += t;
  *reasoning += r, reasoning_ += r;
}

void Request::finish(std::string* text, std::string* reasoning) {
  if (stop_hit()) seq_->cancel();  // a stop string: the engine drops the sequence before its next step
  std::string t, r;
  if (harmony_) {
    route(harmony_->finish(), &t, &r);
  } else if (decoder_) {
    if (!matcher_->hit()) t = matcher_->push(decoder_->flush());
    if (!matcher_->hit()) t += matcher_->flush();
  }
  *text += t, text_ += t;
  *reasoning += r, reasoning_ += r;
  done_ = true;
}

std::string Request::finish_reason() const {
  if (!done_) return "";
  if (stop_hit()) return "stop";
  switch (seq_->finish_reason()) {
    case StopReason::kStopToken: return "stop";
    case StopReason::kLength: return "length";
    case StopReason::kCancelled: return "abort";
    case StopReason::kError: return "error";
    case StopReason::kNone: break;
  }
  return "";
}

std::vector<std::tuple<int32_t, double, std::vector<std::pair<int32_t, double>>>> Request::logprobs() const {
  std::vector<std::tuple<int32_t, double, std::vector<std::pair<int32_t, double>>>> out;
  if (!want_logprobs_) return out;
  const std::vector<TokenLogprob> all = seq_->logprobs();
  for (size_t i = 0; i < all.size() && i < token_ids_.size(); ++i) {
    std::vector<std::pair<int32_t, double>> top;
    for (const TopLogprob& x : all[i].top) top.emplace_back(x.id, x.logprob);
    out.emplace_back(all[i].id, all[i].logprob, std::move(top));
  }
  return out;
}

std::vector<std::tuple<std::string, std::string, std::string>> Request::tool_calls() const {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  if (!harmony_) return out;
  for (const serve::OutputPart& p : harmony_->parts()) {
    if (p.kind == serve::PartKind::kToolCall) out.emplace_back(p.call_id, p.tool_name, p.text);
  }
  return out;
}

void bind_request(nb::module_& m) {
  nb::class_<Request>(m, "Request", "one submitted sequence (oss4.LLM drives it)")
      .def("poll", &Request::poll, "the new tokens: (ids, text delta, reasoning delta, done)")
      .def("cancel", &Request::cancel)
      .def_prop_ro("done", &Request::done)
      .def_prop_ro("token_ids", &Request::token_ids)
      .def_prop_ro("text", [](const Request& r) { return utf8(r.text()); })
      .def_prop_ro("reasoning", [](const Request& r) { return utf8(r.reasoning()); })
      .def_prop_ro("finish_reason", &Request::finish_reason)
      .def_prop_ro("error", &Request::error)
      .def_prop_ro("n_prompt", &Request::n_prompt)
      .def_prop_ro("n_reused", &Request::n_reused)
      .def("logprobs", &Request::logprobs)
      .def("tool_calls", &Request::tool_calls);
}

}  // namespace oss4::py
