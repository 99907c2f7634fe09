// POST /v1/completions: a raw prompt (text or token ids), no chat format; text comes back decoded as it is. With
// `logprobs` N every token comes with its log-probability and the N most likely tokens; with `echo` the prompt comes
// back first (scored: its first token null), and `max_tokens: 0` scores a prompt without generating.
#include "serve/logprobs_json.h"
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
  std::string prompt_text = cr.prompt_text;
  if (cr.prompt_is_ids && (cr.gen.echo || cr.gen.logprobs >= 0)) {  // the text echo and text_offset need
    auto t = enc.tokenizer().decode(g.prompt);
    if (!t.ok()) return send_error(res, invalid(t.status().message(), "prompt"));
    prompt_text = std::move(t).value();
  }
  for (int64_t e : engine.model_config().eos_token_ids) g.stop_ids.push_back(static_cast<int32_t>(e));
  const std::vector<int32_t> stop_ids = g.stop_ids;
  auto seq = submit(std::move(g), cr.gen, "prompt", res);
  if (!seq) return;
  const std::string id = new_id("cmpl-");
  const int64_t created = now_unix();
  const std::string model = request_model(*body);
  const bool include_usage = cr.gen.include_usage;
  const std::vector<std::string> stops = cr.gen.stop;
  const bool want_lp = cr.gen.logprobs >= 0, echo = cr.gen.echo;
  // characters before the first listed token: text_offset counts from the start of the prompt
  const int64_t offset0 = echo ? 0 : utf8_chars(prompt_text);

  if (!cr.gen.stream) {
    stream_body(res, seq, false, [this, seq, id, created, model, stop_ids, stops, want_lp, echo, prompt_text, offset0](StreamWriter& w) {
      const Tokenizer& tok = enc.tokenizer();
      TextOutput out(enc.tokenizer(), stops);
      std::string text = echo ? prompt_text : "";
      const std::optional<Outcome> o = text_turn(*seq, w, out, stop_ids, [&](const std::string& t) {
        text += t;
        return true;
      });
      if (!o) return false;
      if (o->error) return w.write(dump(api_error_json(*o->error)));
      Json logprobs = nullptr;
      if (want_lp) {
        std::vector<TokenLogprob> lps = echo ? seq->prompt_logprobs() : std::vector<TokenLogprob>{};
        for (TokenLogprob& t : LogprobCursor(*seq, stop_ids).take(out.n_pushed())) lps.push_back(std::move(t));
        logprobs = legacy_logprobs(tok, lps, offset0);
      }
      Json choice = {{"index", 0}, {"text", text}, {"logprobs", std::move(logprobs)}, {"finish_reason", o->finish_reason}};
      return w.write(dump(Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({choice})}, {"usage", usage_json(*seq)}}));
    });
    return;
  }

  stream_body(res, seq, true, [this, seq, id, created, model, include_usage, stop_ids, stops, want_lp, echo, prompt_text, offset0](StreamWriter& w) {
      const Tokenizer& tok = enc.tokenizer();
    auto chunk = [&](const std::string& text, Json logprobs, Json finish) {
      Json c = {{"index", 0}, {"text", text}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish)}};
      return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array({std::move(c)})}};
    };
    TextOutput out(enc.tokenizer(), stops);
    LogprobCursor cursor(*seq, stop_ids);
    int64_t offset = offset0;  // text_offset of the next listed token
    bool echoed = !echo;
    // the log-probabilities of the tokens pushed since the last chunk (with echo, the prompt's before the first)
    auto lps_json = [&](std::vector<TokenLogprob> lps) -> Json {
      if (!want_lp) return nullptr;
      Json j = legacy_logprobs(tok, lps, offset);
      for (const auto& t : lps) offset += utf8_chars(tok.token_bytes(t.id));
      return j;
    };
    auto send_echo = [&] {
      if (echoed) return true;
      echoed = true;
      return w.write(sse(chunk(prompt_text, lps_json(want_lp ? seq->prompt_logprobs() : std::vector<TokenLogprob>{}), nullptr)));
    };
    const std::optional<Outcome> o = text_turn(*seq, w, out, stop_ids, [&](const std::string& text) {
      return send_echo() && w.write(sse(chunk(text, lps_json(want_lp ? cursor.take(out.n_pushed()) : std::vector<TokenLogprob>{}), nullptr)));
    });
    if (!o) return false;
    if (!o->error && !send_echo()) return false;
    auto usage = [&] {
      return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", Json::array()}, {"usage", usage_json(*seq)}};
    };
    // tokens whose text the stop matcher held back to the end come with the final chunk
    return end_sse_stream(w, *o, [&](const std::string& finish) {
      std::vector<TokenLogprob> rest = want_lp ? cursor.take(out.n_pushed()) : std::vector<TokenLogprob>{};
      return chunk("", rest.empty() ? Json(nullptr) : lps_json(std::move(rest)), finish);
    }, include_usage, usage);
  });
}

}  // namespace oss4::serve
