// POST /v1/chat/completions: messages -> harmony prompt -> engine -> harmony parser -> message or SSE chunks.
// The analysis channel becomes reasoning_content, calls to functions become tool_calls.
#include <algorithm>

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
  const std::vector<int32_t> harmony_stops = enc.stop_tokens_for_assistant_actions();
  const std::vector<int32_t> eos = turn_stop_ids();
  auto is_other_eos = [eos, harmony_stops](int32_t tok) {
    return std::find(eos.begin(), eos.end(), tok) != eos.end() && std::find(harmony_stops.begin(), harmony_stops.end(), tok) == harmony_stops.end();
  };

  if (!cr.gen.stream) {
    auto out = std::make_shared<HarmonyOutput>(enc, cr.gen.stop, "call_" + id.substr(9) + "_");
    auto take = [out, is_other_eos](const std::vector<int32_t>& toks) {
      for (int32_t t : toks) {
        if (!is_other_eos(t)) out->push(t);
        if (out->stop_hit()) return false;
      }
      return true;
    };
    auto finish = [out, seq, id, created, model]() -> Json {
      if (out->stop_hit()) seq->cancel();
      out->finish();
      Outcome o = outcome_of(*seq, out->stop_hit(), out->has_tool_calls());
      if (o.error) return api_error_json(*o.error);
      Json msg = {{"role", "assistant"}};
      const std::string text = out->text(), reasoning = out->reasoning();
      msg["content"] = text.empty() && out->has_tool_calls() ? Json(nullptr) : Json(text);
      if (!reasoning.empty()) msg["reasoning_content"] = reasoning;
      if (out->has_tool_calls()) {
        Json calls = Json::array();
        for (const auto& p : out->parts()) {
          if (p.kind == PartKind::kToolCall) calls.push_back(tool_call_json(p));
        }
        msg["tool_calls"] = std::move(calls);
      }
      Json choice = {{"index", 0}, {"message", std::move(msg)}, {"logprobs", nullptr}, {"finish_reason", o.finish_reason}};
      return Json{{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(choice)})}, {"usage", usage_json(*seq)}};
    };
    reply_when_done(res, seq, std::move(take), std::move(finish));
    return;
  }

  const bool include_usage = cr.gen.include_usage;
  const std::vector<std::string> stops = cr.gen.stop;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, seq, id, created, model, include_usage, stops, is_other_eos](size_t, httplib::DataSink& sink) {
        auto chunk = [&](Json delta, Json finish) {
          Json c = {{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}};
          return Json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(c)})}};
        };
        StreamWriter w(sink, *seq);
        auto write = [&](const std::string& s) { return w.write(s); };
        if (!write(sse(chunk(Json{{"role", "assistant"}, {"content", ""}}, nullptr)))) return false;
        HarmonyOutput out(enc, stops, "call_" + id.substr(9) + "_");
        std::map<size_t, int> call_index;  // part -> tool_calls index
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
            if (!write(sse(chunk(std::move(delta), nullptr)))) return false;
          }
          return true;
        };
        auto take = [&](const std::vector<int32_t>& toks) {
          for (int32_t t : toks) {
            if (is_other_eos(t)) continue;
            if (!send_events(out.push(t)) || out.stop_hit()) return false;
          }
          return true;
        };
        if (!pump(*seq, w, take)) return false;
        if (out.stop_hit()) seq->cancel();
        if (!send_events(out.finish())) return false;
        Outcome o = outcome_of(*seq, out.stop_hit(), out.has_tool_calls());
        auto usage = [&] {
          return Json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", Json::array()}, {"usage", usage_json(*seq)}};
        };
        if (!end_sse_stream(w, o, [&](const std::string& finish) { return chunk(Json::object(), finish); }, include_usage, usage)) return false;
        sink.done();
        return true;
      },
      [seq](bool success) {
        if (!success) seq->cancel();
      });
}

}  // namespace oss4::serve
