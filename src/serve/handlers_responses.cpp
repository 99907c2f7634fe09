// POST /v1/responses: input items -> harmony prompt; output items: reasoning (analysis), message (output_text) and
// function_call, one per harmony message. Streamed as the Responses API's typed SSE events. Nothing is stored.
#include "serve/output.h"
#include "serve/server_impl.h"

namespace oss4::serve {

namespace {

struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
  Json tools = Json::array();
  Json tool_choice = "auto";
  float temperature = 1.0f, top_p = 1.0f;
  std::optional<int64_t> max_output_tokens;
};

// "item_<the response id's hex>_<part>"
std::string output_item_id(const std::string& resp_id, size_t part) { return "item_" + resp_id.substr(5) + "_" + std::to_string(part); }

// one output item for a part, as it stands.
Json item_json(const OutputPart& p, const std::string& item_id, bool done) {
  const char* status = done ? "completed" : "in_progress";
  if (p.kind == PartKind::kReasoning) {
    return Json{{"id", item_id}, {"type", "reasoning"}, {"summary", Json::array()},
                {"content", Json::array({Json{{"type", "reasoning_text"}, {"text", p.text}}})}, {"status", status}};
  }
  if (p.kind == PartKind::kToolCall) {
    return Json{{"id", item_id}, {"type", "function_call"}, {"call_id", p.call_id}, {"name", p.tool_name}, {"arguments", p.text}, {"status", status}};
  }
  Json content = Json::array();
  if (done) content.push_back(Json{{"type", "output_text"}, {"text", p.text}, {"annotations", Json::array()}, {"logprobs", Json::array()}});
  return Json{{"id", item_id}, {"type", "message"}, {"role", "assistant"}, {"status", status}, {"content", std::move(content)}};
}

Json response_json(const ResponseMeta& m, const char* status, const Json& output, const Sequence* seq, const std::string& incomplete) {
  Json r = {{"id", m.id},
            {"object", "response"},
            {"created_at", m.created},
            {"status", status},
            {"model", m.model},
            {"output", output},
            {"parallel_tool_calls", true},
            {"tool_choice", m.tool_choice},
            {"tools", m.tools},
            {"temperature", m.temperature},
            {"top_p", m.top_p},
            {"max_output_tokens", m.max_output_tokens ? Json(*m.max_output_tokens) : Json(nullptr)},
            {"text", Json{{"format", Json{{"type", "text"}}}}},
            {"error", nullptr},
            {"incomplete_details", incomplete.empty() ? Json(nullptr) : Json{{"reason", incomplete}}},
            {"instructions", nullptr},
            {"metadata", Json::object()}};
  if (seq != nullptr) {
    r["usage"] = Json{{"input_tokens", seq->n_prompt()},
                      {"input_tokens_details", Json{{"cached_tokens", seq->n_reused()}}},
                      {"output_tokens", seq->n_generated()},
                      {"output_tokens_details", Json{{"reasoning_tokens", 0}}},
                      {"total_tokens", seq->n_prompt() + seq->n_generated()}};
  } else {
    r["usage"] = nullptr;
  }
  return r;
}

// the response once the turn ended: every part as a completed item; "incomplete" when max_output_tokens cut it.
Json finished_response_json(const ResponseMeta& m, const HarmonyOutput& out, const Outcome& o, const Sequence& seq) {
  Json output = Json::array();
  for (size_t i = 0; i < out.parts().size(); ++i) output.push_back(item_json(out.parts()[i], output_item_id(m.id, i), true));
  const bool incomplete = o.finish_reason == "length";
  return response_json(m, incomplete ? "incomplete" : "completed", output, &seq, incomplete ? "max_output_tokens" : "");
}

}  // namespace

void Server::Impl::handle_responses(const httplib::Request& req, httplib::Response& res) {
  auto body = read_body(req, res);
  if (!body) return;
  auto parsed = parse_responses_request(*body);
  if (!parsed.ok()) return send_error(res, parsed.error);
  ChatRequest& cr = *parsed.value;
  auto seq = submit_conversation(cr, "input", res);
  if (!seq) return;
  ResponseMeta meta;
  meta.id = new_id("resp_");
  meta.created = now_unix();
  meta.model = request_model(*body);
  if (body->contains("tools") && (*body)["tools"].is_array()) meta.tools = (*body)["tools"];
  if (body->contains("tool_choice") && !(*body)["tool_choice"].is_null()) meta.tool_choice = (*body)["tool_choice"];
  meta.temperature = cr.gen.sampling.temperature;
  meta.top_p = cr.gen.sampling.top_p;
  meta.max_output_tokens = cr.gen.max_tokens;
  const std::vector<int32_t> skip = other_eos_ids();
  const std::vector<std::string> stops = cr.gen.stop;

  if (!cr.gen.stream) {
    stream_body(res, seq, false, [this, seq, meta, stops, skip](StreamWriter& w) {
      HarmonyOutput out(enc, stops, "call_" + meta.id.substr(5) + "_");
      const std::optional<Outcome> o = harmony_turn(*seq, w, out, skip, nullptr);
      if (!o) return false;
      if (o->error) return w.write(dump(api_error_json(*o->error)));
      return w.write(dump(finished_response_json(meta, out, *o, *seq)));
    });
    return;
  }

  stream_body(res, seq, true, [this, seq, meta, stops, skip](StreamWriter& w) {
    int64_t seq_no = 0;
    auto write = [&](Json ev) {
      ev["sequence_number"] = seq_no++;
      return w.write("event: " + ev["type"].get<std::string>() + "\n" + sse(ev));
    };
    if (!write(Json{{"type", "response.created"}, {"response", response_json(meta, "in_progress", Json::array(), nullptr, "")}})) return false;
    if (!write(Json{{"type", "response.in_progress"}, {"response", response_json(meta, "in_progress", Json::array(), nullptr, "")}})) return false;
    HarmonyOutput out(enc, stops, "call_" + meta.id.substr(5) + "_");
    auto send_events = [&](const std::vector<OutputEvent>& evs) {
      for (const auto& e : evs) {
        const OutputPart& p = out.parts()[e.part];
        const std::string iid = output_item_id(meta.id, e.part);
        const auto idx = static_cast<int64_t>(e.part);
        if (e.type == OutputEvent::Type::kOpen) {
          if (!write(Json{{"type", "response.output_item.added"}, {"output_index", idx}, {"item", item_json(p, iid, false)}})) return false;
          if (p.kind == PartKind::kText) {
            Json part = {{"type", "output_text"}, {"text", ""}, {"annotations", Json::array()}};
            if (!write(Json{{"type", "response.content_part.added"}, {"item_id", iid}, {"output_index", idx}, {"content_index", 0}, {"part", part}})) return false;
          }
        } else if (e.type == OutputEvent::Type::kDelta) {
          const char* type = p.kind == PartKind::kText        ? "response.output_text.delta"
                             : p.kind == PartKind::kReasoning ? "response.reasoning_text.delta"
                                                              : "response.function_call_arguments.delta";
          Json ev = {{"type", type}, {"item_id", iid}, {"output_index", idx}, {"delta", e.text}};
          if (p.kind != PartKind::kToolCall) ev["content_index"] = 0;
          if (p.kind == PartKind::kText) ev["logprobs"] = Json::array();
          if (!write(std::move(ev))) return false;
        } else {
          if (p.kind == PartKind::kText) {
            if (!write(Json{{"type", "response.output_text.done"}, {"item_id", iid}, {"output_index", idx}, {"content_index", 0}, {"text", p.text}, {"logprobs", Json::array()}})) return false;
            Json part = {{"type", "output_text"}, {"text", p.text}, {"annotations", Json::array()}};
            if (!write(Json{{"type", "response.content_part.done"}, {"item_id", iid}, {"output_index", idx}, {"content_index", 0}, {"part", part}})) return false;
          } else if (p.kind == PartKind::kReasoning) {
            if (!write(Json{{"type", "response.reasoning_text.done"}, {"item_id", iid}, {"output_index", idx}, {"content_index", 0}, {"text", p.text}})) return false;
          } else {
            if (!write(Json{{"type", "response.function_call_arguments.done"}, {"item_id", iid}, {"output_index", idx}, {"arguments", p.text}})) return false;
          }
          if (!write(Json{{"type", "response.output_item.done"}, {"output_index", idx}, {"item", item_json(p, iid, true)}})) return false;
        }
      }
      return true;
    };
    const std::optional<Outcome> o = harmony_turn(*seq, w, out, skip, send_events);
    if (!o) return false;
    if (o->error) {
      Json r = response_json(meta, "failed", Json::array(), seq.get(), "");
      r["error"] = Json{{"code", "server_error"}, {"message", o->error->message}};
      return write(Json{{"type", "response.failed"}, {"response", r}});
    }
    const bool incomplete = o->finish_reason == "length";
    return write(Json{{"type", incomplete ? "response.incomplete" : "response.completed"}, {"response", finished_response_json(meta, out, *o, *seq)}});
  });
}

}  // namespace oss4::serve
