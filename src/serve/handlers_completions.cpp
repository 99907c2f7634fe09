// POST /v1/completions: a raw prompt (text or token ids), no chat format; text comes back decoded as it is.
#include <algorithm>

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
  auto is_stop = [stop_ids](int32_t t) { return std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end(); };

  if (!cr.gen.stream) {
    struct State {
      TextOutput out;
      std::string text;
    };
    auto state = std::make_shared<State>(State{TextOutput(enc.tokenizer(), cr.gen.stop), ""});
    auto take = [state, is_stop](const std::vector<int32_t>& toks) {
      for (int32_t t : toks) {
        if (is_stop(t)) continue;
        state->text += state->out.push(t);
        if (state->out.stop_hit()) return false;
      }
      return true;
    };
    auto finish = [state, seq, id, created, model]() -> Json {
      if (state->out.stop_hit()) seq->cancel();
      state->text += state->out.finish();
      Outcome o = outcome_of(*seq, state->out.stop_hit(), false);
      if (o.error) return api_error_json(*o.error);
      Json choice = {{"index", 0}, {"text", state->text}, {"logprobs", nullptr}, {"finish_reason", o.finish_reason}};
      return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({choice})}, {"usage", usage_json(*seq)}};
    };
    reply_when_done(res, seq, std::move(take), std::move(finish));
    return;
  }

  const bool include_usage = cr.gen.include_usage;
  const std::vector<std::string> stops = cr.gen.stop;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, seq, id, created, model, include_usage, stops, is_stop](size_t, httplib::DataSink& sink) {
        auto chunk = [&](const std::string& text, Json finish) {
          Json c = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}};
          return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(c)})}};
        };
        StreamWriter w(sink, *seq);
        auto write = [&](const std::string& s) { return w.write(s); };
        TextOutput out(enc.tokenizer(), stops);
        auto take = [&](const std::vector<int32_t>& toks) {
          std::string text;
          bool more = true;
          for (int32_t t : toks) {
            if (is_stop(t)) continue;
            text += out.push(t);
            if (out.stop_hit()) {
              more = false;
              break;
            }
          }
          return (text.empty() || write(sse(chunk(text, nullptr)))) && more;
        };
        if (!pump(*seq, w, take)) return false;
        if (out.stop_hit()) seq->cancel();
        const std::string rest = out.finish();
        if (!rest.empty() && !write(sse(chunk(rest, nullptr)))) return false;
        Outcome o = outcome_of(*seq, out.stop_hit(), false);
        auto usage = [&] {
          return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array()}, {"usage", usage_json(*seq)}};
        };
        if (!end_sse_stream(w, o, [&](const std::string& finish) { return chunk("", finish); }, include_usage, usage)) return false;
        sink.done();
        return true;
      },
      [seq](bool success) {
        if (!success) seq->cancel();
      });
}

}  // namespace oss4::serve
