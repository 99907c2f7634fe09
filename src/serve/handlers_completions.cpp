// POST /v1/completions: a raw prompt (text or token ids), no chat format; text comes back decoded as it is.
#include "serve/output.h"
#include "serve/server_impl.h"

namespace oss4::serve {

void Server::Impl::handle_completions(const httplib::Request& req, httplib::Response& res) {
  auto body = read_body(req, res);
  if (!body) return;
  auto parsed = parse_completion_request(*body);
  if (!parsed.ok()) return send_error(res, parsed.error);
  CompletionRequest& cr = *parsed.value;
  GenRequest g;
  if (cr.prompt_is_ids) {
    g.prompt = cr.prompt_ids;
  } else {
    // special-token text in a raw prompt is read as the token (a harmony prompt can be typed out)
    Status st = enc.tokenizer().encode(cr.prompt_text, /*allow_special=*/true, &g.prompt);
    if (!st.ok()) return send_error(res, invalid("cannot tokenize the prompt: " + st.message(), "prompt"));
  }
  if (g.prompt.empty()) return send_error(res, invalid("the prompt has no tokens", "prompt"));
  for (int64_t e : engine.model().cfg.eos_token_ids) g.stop_ids.push_back(static_cast<int32_t>(e));
  const std::vector<int32_t> stop_ids = g.stop_ids;
  auto seq = submit(std::move(g), cr.gen, "prompt", res);
  if (!seq) return;
  const std::string id = new_id("cmpl-");
  const int64_t created = now_unix();
  const std::string model = request_model(*body);
  const bool include_usage = cr.gen.include_usage;
  const std::vector<std::string> stops = cr.gen.stop;

  if (!cr.gen.stream) {
    stream_body(res, seq, false, [this, seq, id, created, model, stop_ids, stops](StreamWriter& w) {
      TextOutput out(enc.tokenizer(), stops);
      std::string text;
      const std::optional<Outcome> o = text_turn(*seq, w, out, stop_ids, [&](const std::string& t) {
        text += t;
        return true;
      });
      if (!o) return false;
      if (o->error) return w.write(dump(api_error_json(*o->error)));
      Json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", o->finish_reason}};
      return w.write(dump(Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({choice})}, {"usage", usage_json(*seq)}}));
    });
    return;
  }

  stream_body(res, seq, true, [this, seq, id, created, model, include_usage, stop_ids, stops](StreamWriter& w) {
    auto chunk = [&](const std::string& text, Json finish) {
      Json c = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}};
      return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(c)})}};
    };
    TextOutput out(enc.tokenizer(), stops);
    const std::optional<Outcome> o = text_turn(*seq, w, out, stop_ids, [&](const std::string& text) { return w.write(sse(chunk(text, nullptr))); });
    if (!o) return false;
    auto usage = [&] {
      return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array()}, {"usage", usage_json(*seq)}};
    };
    return end_sse_stream(w, *o, [&](const std::string& finish) { return chunk("", finish); }, include_usage, usage);
  });
}

}  // namespace oss4::serve
