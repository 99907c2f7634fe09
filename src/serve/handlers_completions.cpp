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
  const std::string model = body->contains("model") && (*body)["model"].is_string() ? (*body)["model"].get<std::string>() : cfg.model_name;
  auto usage = [seq] {
    return Json{{"prompt_tokens", seq->n_prompt()},
                {"completion_tokens", seq->n_generated()},
                {"total_tokens", seq->n_prompt() + seq->n_generated()},
                {"prompt_tokens_details", Json{{"cached_tokens", seq->n_reused()}}}};
  };
  auto is_stop = [stop_ids](int32_t t) { return std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end(); };

  if (!cr.gen.stream) {
    TextOutput out(enc.tokenizer(), cr.gen.stop);
    std::string text;
    std::vector<int32_t> toks;
    for (bool ended = false; !ended && !out.stop_hit();) {
      toks.clear();
      ended = next_tokens(*seq, &toks);
      for (int32_t t : toks) {
        if (is_stop(t)) continue;
        text += out.push(t);
        if (out.stop_hit()) break;
      }
    }
    if (out.stop_hit()) seq->cancel();
    text += out.finish();
    Outcome o = outcome_of(*seq, out.stop_hit(), false);
    if (o.error) return send_error(res, *o.error);
    Json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", o.finish_reason}};
    send_json(res, Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({choice})}, {"usage", usage()}});
    return;
  }

  const bool include_usage = cr.gen.include_usage;
  const std::vector<std::string> stops = cr.gen.stop;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, seq, id, created, model, include_usage, stops, is_stop, usage](size_t, httplib::DataSink& sink) {
        auto chunk = [&](const std::string& text, Json finish) {
          Json c = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}};
          return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(c)})}};
        };
        SseWriter w(sink, *seq);
        auto write = [&](const std::string& s) { return w.write(s); };
        TextOutput out(enc.tokenizer(), stops);
        std::vector<int32_t> toks;
        for (bool ended = false; !ended && !out.stop_hit();) {
          toks.clear();
          ended = next_tokens(*seq, &toks);
          std::string text;
          for (int32_t t : toks) {
            if (is_stop(t)) continue;
            text += out.push(t);
            if (out.stop_hit()) break;
          }
          if (!text.empty() && !write(sse(chunk(text, nullptr)))) return false;
          if (!ended && !w.keep_alive()) return false;
        }
        if (out.stop_hit()) seq->cancel();
        const std::string rest = out.finish();
        if (!rest.empty() && !write(sse(chunk(rest, nullptr)))) return false;
        Outcome o = outcome_of(*seq, out.stop_hit(), false);
        if (o.error) {
          if (!write(sse(api_error_json(*o.error)))) return false;
        } else {
          if (!write(sse(chunk("", o.finish_reason)))) return false;
          if (include_usage) {
            Json u = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array()}, {"usage", usage()}};
            if (!write(sse(u))) return false;
          }
        }
        if (!write("data: [DONE]\n\n")) return false;
        sink.done();
        return true;
      },
      [seq](bool success) {
        if (!success) seq->cancel();
      });
}

}  // namespace oss4::serve
