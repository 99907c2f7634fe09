// POST /v1/chat/completions: messages -> harmony prompt -> engine -> harmony parser -> message or SSE chunks.
// The analysis channel becomes reasoning_content, calls to functions become tool_calls. With `logprobs`,
// logprobs.content has the content tokens only (the final message's text), as OpenAI's API keeps reasoning apart.
#include "serve/logprobs_json.h"
#include "serve/output.h"
#include "serve/server_impl.h"

namespace oss4::serve {

namespace {

Json tool_call_json(const OutputPart& p) {
  return Json{{"id", p.call_id}, {"type", "function"}, {"function", Json{{"name", p.tool_name}, {"arguments", p.text}}}};
}

}  // namespace

void Server::Impl::handle_chat(const httplib::Request& req, httplib::Response& res) {
  auto body = read_body(req, res);
  if (!body) return;
  auto parsed = parse_chat_request(*body);
  if (!parsed.ok()) return send_error(res, parsed.error);
  ChatRequest& cr = *parsed.value;
  auto seq = submit_conversation(cr, "messages", res);
  if (!seq) return;
  const std::string id = new_id("chatcmpl-");
  const int64_t created = now_unix();
  const std::string model = request_model(*body);
  const std::vector<int32_t> skip = other_eos_ids();
  const bool include_usage = cr.gen.include_usage;
  const std::vector<std::string> stops = cr.gen.stop;
  const bool want_lp = cr.gen.logprobs >= 0;

  if (!cr.gen.stream) {
    stream_body(res, seq, false, [this, seq, id, created, model, skip, stops, want_lp](StreamWriter& w) {
      HarmonyOutput out(enc, stops, "call_" + id.substr(9) + "_");
      const std::optional<Outcome> o = harmony_turn(*seq, w, out, skip, nullptr);
      if (!o) return false;
      if (o->error) return w.write(dump(api_error_json(*o->error)));
      Json msg = {{"role", "assistant"}};
      const std::string text = out.text(), reasoning = out.reasoning();
      msg["content"] = text.empty() && out.has_tool_calls() ? Json(nullptr) : Json(text);
      if (!reasoning.empty()) msg["reasoning_content"] = reasoning;
      if (out.has_tool_calls()) {
        Json calls = Json::array();
        for (const auto& p : out.parts()) {
          if (p.kind == PartKind::kToolCall) calls.push_back(tool_call_json(p));
        }
        msg["tool_calls"] = std::move(calls);
      }
      Json logprobs = nullptr;
      if (want_lp) {
        const std::vector<bool> is_content = out.content_tokens();
        std::vector<TokenLogprob> all = LogprobCursor(*seq, skip).take(static_cast<int64_t>(is_content.size())), content;
        for (size_t i = 0; i < all.size(); ++i) {
          if (is_content[i]) content.push_back(std::move(all[i]));
        }
        logprobs = Json{{"content", chat_logprobs_content(enc.tokenizer(), content)}, {"refusal", nullptr}};
      }
      Json choice = {{"index", 0}, {"message", std::move(msg)}, {"logprobs", std::move(logprobs)}, {"finish_reason", o->finish_reason}};
      return w.write(dump(Json{{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(choice)})}, {"usage", usage_json(*seq)}}));
    });
    return;
  }

  stream_body(res, seq, true, [this, seq, id, created, model, include_usage, stops, skip, want_lp](StreamWriter& w) {
    auto chunk = [&](Json delta, Json finish, Json logprobs = nullptr) {
      Json c = {{"index", 0}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish)}};
      return Json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(c)})}};
    };
    auto write = [&](const std::string& s) { return w.write(s); };
    if (!write(sse(chunk(Json{{"role", "assistant"}, {"content", ""}}, nullptr)))) return false;
    HarmonyOutput out(enc, stops, "call_" + id.substr(9) + "_");
    std::map<size_t, int> call_index;  // part -> tool_calls index
    LogprobCursor cursor(*seq, skip);
    size_t n_lp_seen = 0;  // pushed tokens whose log-probabilities were sent (content) or passed over
    // the content tokens' log-probabilities since the last content delta
    auto content_lps = [&]() -> Json {
      if (!want_lp) return nullptr;
      const std::vector<bool> is_content = out.content_tokens();
      std::vector<TokenLogprob> all = cursor.take(static_cast<int64_t>(is_content.size())), content;
      for (size_t i = 0; i < all.size(); ++i) {
        if (is_content[n_lp_seen + i]) content.push_back(std::move(all[i]));
      }
      n_lp_seen += all.size();
      return Json{{"content", chat_logprobs_content(enc.tokenizer(), content)}, {"refusal", nullptr}};
    };
    auto send_events = [&](const std::vector<OutputEvent>& evs) {
      for (const auto& e : evs) {
        const OutputPart& p = out.parts()[e.part];
        Json delta;
        if (p.kind == PartKind::kToolCall) {
          if (e.type == OutputEvent::Type::kOpen) {
            const int k = static_cast<int>(call_index.size());
            call_index[e.part] = k;
            delta["tool_calls"] = Json::array({Json{{"index", k}, {"id", p.call_id}, {"type", "function"}, {"function", Json{{"name", p.tool_name}, {"arguments", ""}}}}});
          } else if (e.type == OutputEvent::Type::kDelta) {
            delta["tool_calls"] = Json::array({Json{{"index", call_index[e.part]}, {"function", Json{{"arguments", e.text}}}}});
          } else {
            continue;
          }
        } else if (e.type == OutputEvent::Type::kDelta) {
          delta[p.kind == PartKind::kReasoning ? "reasoning_content" : "content"] = e.text;
        } else {
          continue;
        }
        Json lps = p.kind == PartKind::kText ? content_lps() : Json(nullptr);
        if (!write(sse(chunk(std::move(delta), nullptr, std::move(lps))))) return false;
      }
      return true;
    };
    const std::optional<Outcome> o = harmony_turn(*seq, w, out, skip, send_events);
    if (!o) return false;
    auto usage = [&] {
      return Json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", Json::array()}, {"usage", usage_json(*seq)}};
    };
    return end_sse_stream(w, *o, [&](const std::string& finish) { return chunk(Json::object(), finish); }, include_usage, usage);
  });
}

}  // namespace oss4::serve
