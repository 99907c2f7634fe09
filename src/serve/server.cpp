#include "serve/server.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "format/json_read.h"
#include "serve/server_impl.h"

namespace oss4::serve {

Result<std::vector<ScriptReply>> load_script(const std::string& path, const Tokenizer& tok) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return error(path + ": cannot open the script");
  std::stringstream ss;
  ss << f.rdbuf();
  auto parsed = parse_json(ss.str());
  if (!parsed.ok()) return parsed.status().with_context(path);
  const Json& j = parsed.value();
  if (!j.is_object() || !j.contains("replies") || !j["replies"].is_array()) {
    return error(path + ": expected {\"replies\": [{\"when\": \"...\", \"text\": \"...\"}, ...]}");
  }
  std::vector<ScriptReply> out;
  for (size_t i = 0; i < j["replies"].size(); ++i) {
    const Json& r = j["replies"][i];
    if (!r.is_object() || !r.contains("when") || !r["when"].is_string() || !r.contains("text") || !r["text"].is_string()) {
      return error(path + ": replies[" + std::to_string(i) + "] needs string fields 'when' and 'text'");
    }
    ScriptReply s;
    s.when = r["when"].get<std::string>();
    auto ids = tok.encode(r["text"].get<std::string>(), /*allow_special=*/true);
    if (!ids.ok()) return ids.status().with_context(path + ": replies[" + std::to_string(i) + "]");
    s.ids = std::move(ids).value();
    out.push_back(std::move(s));
  }
  return out;
}

// ---- shared helpers ----

std::string Server::Impl::new_id(const char* prefix) {
  static const char* hex = "0123456789abcdef";
  uint64_t x = next_id.fetch_add(1) * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(now_unix());
  std::string s = prefix;
  for (int i = 0; i < 16; ++i, x >>= 4) s += hex[x & 15];
  return s;
}

int64_t Server::Impl::now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void Server::Impl::send_json(httplib::Response& res, const Json& j) { res.set_content(dump(j), "application/json"); }

void Server::Impl::send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  send_json(res, api_error_json(e));
}

bool Server::Impl::authorized(const httplib::Request& req, httplib::Response& res) {
  if (cfg.api_key.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + cfg.api_key) return true;
  ApiError e;
  e.http_status = 401;
  e.message = req.has_header("Authorization") ? "Incorrect API key provided." : "You didn't provide an API key (Authorization: Bearer KEY).";
  e.code = "invalid_api_key";
  send_error(res, e);
  return false;
}

std::optional<Json> Server::Impl::read_body(const httplib::Request& req, httplib::Response& res) {
  if (!authorized(req, res)) return std::nullopt;
  auto body = parse_body(req.body);
  if (!body.ok()) {
    send_error(res, body.error);
    return std::nullopt;
  }
  return std::move(body.value);
}

std::vector<int32_t> Server::Impl::turn_stop_ids() const {
  std::vector<int32_t> ids = enc.stop_tokens_for_assistant_actions();
  for (int64_t e : engine.model_config().eos_token_ids) ids.push_back(static_cast<int32_t>(e));
  return ids;
}

std::vector<int32_t> Server::Impl::other_eos_ids() const {
  const std::vector<int32_t> harmony_stops = enc.stop_tokens_for_assistant_actions();
  std::vector<int32_t> ids;
  for (int32_t t : turn_stop_ids()) {
    if (std::find(harmony_stops.begin(), harmony_stops.end(), t) == harmony_stops.end()) ids.push_back(t);
  }
  return ids;
}

std::vector<int32_t> Server::Impl::script_for(const std::vector<int32_t>& prompt) const {
  if (cfg.script.empty()) return {};
  auto text = enc.tokenizer().decode(prompt);
  if (!text.ok()) return {};
  for (const auto& r : cfg.script) {
    if (text->find(r.when) != std::string::npos) return r.ids;
  }
  return {};
}

std::shared_ptr<Sequence> Server::Impl::submit_conversation(const ChatRequest& cr, const char* param, httplib::Response& res) {
  GenRequest g;
  Status st = enc.render_conversation_for_completion(cr.conv, harmony::Role::kAssistant, harmony::RenderConfig{}, &g.prompt);
  if (!st.ok()) {
    send_error(res, invalid(std::string("cannot render the ") + (std::string(param) == "input" ? "input" : "conversation") + ": " + st.message(), param));
    return nullptr;
  }
  g.stop_ids = turn_stop_ids();
  st = tool_call_prefixes(cr, enc, &g.prefixes);
  if (!st.ok()) {
    send_error(res, invalid("cannot encode the forced tool call: " + st.message(), "tool_choice"));
    return nullptr;
  }
  return submit(std::move(g), cr.gen, param, res);
}

std::string Server::Impl::request_model(const Json& body) const {
  return body.contains("model") && body["model"].is_string() ? body["model"].get<std::string>() : cfg.model_name;
}

std::shared_ptr<Sequence> Server::Impl::submit(GenRequest r, const GenSettings& g, const char* prompt_param, httplib::Response& res) {
  const auto n_prompt = static_cast<int64_t>(r.prompt.size());
  const int64_t ctx = engine.config().ctx;
  if (n_prompt >= ctx) {
    send_error(res, invalid("this model's maximum context length is " + std::to_string(ctx) + " tokens; the prompt has " + std::to_string(n_prompt) +
                                " tokens",
                            prompt_param, "context_length_exceeded"));
    return nullptr;
  }
  r.max_tokens = g.max_tokens ? *g.max_tokens : ctx - n_prompt;
  r.sampling = g.sampling;
  r.top_logprobs = g.logprobs;
  r.score_prompt = g.echo && (g.logprobs >= 0 || r.max_tokens == 0);
  r.script = script_for(r.prompt);
  SubmitResult s = engine.submit(std::move(r));
  if (s.err == SubmitError::kNone) return s.seq;
  ApiError e = invalid(s.message);
  if (s.err == SubmitError::kTooLong) {
    e.code = "context_length_exceeded";
    e.param = "max_tokens";
  } else if (s.err == SubmitError::kOverloaded) {
    e.http_status = 429;
    e.type = "rate_limit_error";
    e.code = "rate_limit_exceeded";
  }
  send_error(res, e);
  return nullptr;
}

Outcome outcome_of(const Sequence& seq, bool stop_hit, bool tool_calls) {
  Outcome o;
  switch (seq.finish_reason()) {
    case FinishReason::kError: {
      ApiError e;
      e.http_status = 500;
      e.type = "server_error";
      e.message = "generation failed: " + seq.error_message();
      o.error = e;
      return o;
    }
    case FinishReason::kCancelled:
      if (!stop_hit) {
        ApiError e;
        e.http_status = 503;
        e.type = "server_error";
        e.message = seq.error_message().empty() ? "the request was cancelled" : seq.error_message();
        o.error = e;
        return o;
      }
      break;
    default: break;
  }
  if (tool_calls) {
    o.finish_reason = "tool_calls";
  } else if (!stop_hit && seq.finish_reason() == FinishReason::kLength) {
    o.finish_reason = "length";
  } else {
    o.finish_reason = "stop";
  }
  return o;
}

bool next_tokens(Sequence& seq, std::vector<int32_t>* out) { return seq.wait(out, std::chrono::milliseconds(500)); }

bool pump(Sequence& seq, StreamWriter& w, const TakeFn& take) {
  std::vector<int32_t> toks;
  for (bool ended = false; !ended;) {
    toks.clear();
    ended = next_tokens(seq, &toks);
    if (!take(toks)) return !w.gone();
    if (!ended && !w.keep_alive()) return false;
  }
  return true;
}

Json usage_json(const Sequence& seq) {
  const int64_t n_out = seq.n_generated();
  return Json{{"prompt_tokens", seq.n_prompt()},
              {"completion_tokens", n_out},
              {"total_tokens", seq.n_prompt() + n_out},
              {"prompt_tokens_details", Json{{"cached_tokens", seq.n_reused()}}}};
}

bool end_sse_stream(StreamWriter& w, const Outcome& o, const std::function<Json(const std::string& finish)>& final_chunk, bool include_usage,
                    const std::function<Json()>& usage_chunk) {
  if (o.error) {
    if (!w.write(sse(api_error_json(*o.error)))) return false;
  } else {
    if (!w.write(sse(final_chunk(o.finish_reason)))) return false;
    if (include_usage && !w.write(sse(usage_chunk()))) return false;
  }
  return w.write("data: [DONE]\n\n");
}

void stream_body(httplib::Response& res, std::shared_ptr<Sequence> seq, bool event_stream, BodyFn body) {
  if (event_stream) res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      event_stream ? "text/event-stream" : "application/json",
      [seq, event_stream, body = std::move(body)](size_t, httplib::DataSink& sink) {
        StreamWriter w = event_stream ? StreamWriter(sink, *seq) : StreamWriter(sink, *seq, " ");
        if (!body(w)) return false;
        sink.done();
        return true;
      },
      [seq](bool success) {
        if (!success) seq->cancel();
      });
}

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t t) { return std::find(ids.begin(), ids.end(), t) != ids.end(); }

}  // namespace

std::optional<Outcome> harmony_turn(Sequence& seq, StreamWriter& w, HarmonyOutput& out, const std::vector<int32_t>& skip, const EventsFn& on_events) {
  auto send = [&](const std::vector<OutputEvent>& evs) { return !on_events || on_events(evs); };
  auto take = [&](const std::vector<int32_t>& toks) {
    for (int32_t t : toks) {
      if (contains(skip, t)) continue;
      if (!send(out.push(t)) || out.stop_hit()) return false;
    }
    return true;
  };
  if (!pump(seq, w, take)) return std::nullopt;
  if (out.stop_hit()) seq.cancel();
  if (!send(out.finish())) return std::nullopt;
  return outcome_of(seq, out.stop_hit(), out.has_tool_calls());
}

std::optional<Outcome> text_turn(Sequence& seq, StreamWriter& w, TextOutput& out, const std::vector<int32_t>& skip, const TextFn& on_text) {
  // one piece of text per wait, not per token: a streamed completion sends a chunk per wait
  auto take = [&](const std::vector<int32_t>& toks) {
    std::string text;
    bool more = true;
    for (int32_t t : toks) {
      if (contains(skip, t)) continue;
      text += out.push(t);
      if (out.stop_hit()) {
        more = false;
        break;
      }
    }
    return (text.empty() || on_text(text)) && more;
  };
  if (!pump(seq, w, take)) return std::nullopt;
  if (out.stop_hit()) seq.cancel();
  const std::string rest = out.finish();
  if (!rest.empty() && !on_text(rest)) return std::nullopt;
  return outcome_of(seq, out.stop_hit(), false);
}

// ---- routes ----

void Server::Impl::handle_metrics(httplib::Response& res) {
  const EngineStats s = engine.stats();
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << v << "\n";
  };
  o << "# HELP oss4_requests_total HTTP requests by path and status.\n# TYPE oss4_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lk(mu);
    for (const auto& [key, n] : n_requests) {
      o << "oss4_requests_total{path=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
    }
  }
  metric("oss4_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", static_cast<double>(s.n_prompt_tokens));
  metric("oss4_prompt_tokens_reused_total", "counter", "Prompt tokens whose K/V came from the prefix cache.", static_cast<double>(s.n_reused_tokens));
  metric("oss4_generated_tokens_total", "counter", "Tokens generated by finished sequences.", static_cast<double>(s.n_generated_tokens));
  metric("oss4_sequences_finished_total", "counter", "Sequences that ran to their end.", static_cast<double>(s.n_finished));
  metric("oss4_sequences_cancelled_total", "counter", "Sequences cancelled (client gone, stop string).", static_cast<double>(s.n_cancelled));
  metric("oss4_requests_rejected_total", "counter", "Requests the engine refused (invalid, too long, queue full).", static_cast<double>(s.n_rejected));
  metric("oss4_decode_steps_total", "counter", "Batched decode steps.", static_cast<double>(s.n_steps));
  metric("oss4_prefill_calls_total", "counter", "Prefill forward calls (one per sequence per step that prefilled a piece of it).",
         static_cast<double>(s.n_prefill_calls));
  metric("oss4_queue_length", "gauge", "Requests waiting for a slot or KV memory.", static_cast<double>(s.n_waiting));
  metric("oss4_running_sequences", "gauge", "Sequences in the running batch.", static_cast<double>(s.n_running));
  metric("oss4_parked_sequences", "gauge", "Finished sequences kept for prefix reuse.", static_cast<double>(s.n_parked));
  metric("oss4_kv_bytes_used", "gauge", "K/V bytes allocated (running and parked).", static_cast<double>(s.kv_bytes_used));
  metric("oss4_kv_bytes_reserved", "gauge", "K/V bytes admission counts (running plans and parked).", static_cast<double>(s.kv_bytes_reserved));
  metric("oss4_kv_bytes_parked", "gauge", "K/V bytes of parked sequences (all of oss4_kv_bytes_used when nothing runs).",
         static_cast<double>(s.kv_bytes_parked));
  metric("oss4_kv_bytes_budget", "gauge", "The K/V budget (--kv-memory).", static_cast<double>(s.kv_bytes_budget));
  const HttpGuardStats g = http.guard_stats();
  metric("oss4_http_connections_open", "gauge", "Connections being served or idle between keep-alive requests.", static_cast<double>(g.n_open));
  metric("oss4_http_refused_per_client_total", "counter", "Connections refused (429) because their address held too many.",
         static_cast<double>(g.n_refused_per_client));
  metric("oss4_http_request_deadline_total", "counter", "Connections closed because a request did not arrive whole in time.",
         static_cast<double>(g.n_request_deadline));
  metric("oss4_http_idle_closed_total", "counter", "Idle keep-alive connections closed to make room or at shutdown.",
         static_cast<double>(g.n_idle_closed));
  metric("oss4_decode_tokens_per_second", "gauge", "Tokens per second of recent decode steps (moving average).", s.decode_tok_per_s);
  res.set_content(o.str(), "text/plain; version=0.0.4");
}

void Server::Impl::setup_routes() {
  http.set_payload_max_length(cfg.max_body_bytes);
  // once shutting down, every request gets 503 (before its body is read)
  http.set_pre_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    if (!http.draining()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e;
    e.http_status = 503;
    e.type = "server_error";
    e.code = "shutting_down";
    e.message = "the server is shutting down";
    send_error(res, e);
    res.set_header("Connection", "close");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const EngineStats s = engine.stats();
    send_json(res, Json{{"status", "ok"}, {"running", s.n_running}, {"waiting", s.n_waiting}});
  });
  http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (authorized(req, res)) handle_metrics(res);
  });
  auto models = [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    Json m = {{"id", cfg.model_name}, {"object", "model"}, {"created", now_unix()}, {"owned_by", "oss4"}};
    send_json(res, Json{{"object", "list"}, {"data", Json::array({m})}});
  };
  http.Get("/v1/models", models);
  http.Get("/v1/models/(.*)", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    if (req.matches[1] != cfg.model_name) {
      ApiError e = invalid("The model '" + std::string(req.matches[1]) + "' does not exist", "model", "model_not_found");
      e.http_status = 404;
      send_error(res, e);
      return;
    }
    send_json(res, Json{{"id", cfg.model_name}, {"object", "model"}, {"created", now_unix()}, {"owned_by", "oss4"}});
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle_chat(req, res); });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { handle_completions(req, res); });
  http.Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) { handle_responses(req, res); });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.http_status = res.status;
    if (res.status == 404) {
      e.message = "unknown path: " + req.method + " " + req.path;
      e.code = "unknown_url";
    } else if (res.status == 413) {
      e.message = "the request body is too large";
      e.code = "request_too_large";
    } else {
      e.message = "HTTP " + std::to_string(res.status);
    }
    send_error(res, e);
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    ApiError e;
    e.http_status = 500;
    e.type = "server_error";
    e.message = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      e.message = std::string("internal error: ") + ex.what();
    } catch (...) {
    }
    send_error(res, e);
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    std::lock_guard<std::mutex> lk(mu);
    ++n_requests[{req.matches.empty() ? std::string("other") : req.path, res.status}];
  });
}

Server::Server(Engine& engine, const harmony::HarmonyEncoding& enc, ServerConfig cfg)
    : impl_(std::make_unique<Impl>(engine, enc, std::move(cfg))) {
  impl_->setup_routes();
}

Server::~Server() { stop(); }

Status Server::bind() {
  Impl& s = *impl_;
  if (s.cfg.port == 0) {
    s.bound_port = s.http.bind_to_any_port(s.cfg.host);
  } else {
    s.bound_port = s.http.bind_to_port(s.cfg.host, s.cfg.port) ? s.cfg.port : -1;
  }
  if (s.bound_port < 0) return error("cannot listen on " + s.cfg.host + ":" + std::to_string(s.cfg.port));
  if (!s.http.widen_backlog(4096)) return error("cannot listen on " + s.cfg.host + ":" + std::to_string(s.bound_port) + " with a backlog of 4096");
  return ok_status();
}

int Server::port() const { return impl_->bound_port; }

Status Server::run() {
  if (impl_->bound_port < 0) OSS4_TRY(bind());
  if (!impl_->http.listen_after_bind()) return error("the HTTP server stopped with an error");
  return ok_status();
}

void Server::stop() {
  if (impl_) impl_->http.stop();
}

void Server::shutdown(double timeout_s) {
  Impl& s = *impl_;
  s.http.begin_drain();
  using Clock = std::chrono::steady_clock;
  auto waited_until = [](Clock::time_point end, const std::function<bool()>& done) {
    while (!done() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return done();
  };
  const auto end = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, timeout_s) * 1000));
  waited_until(end, [&] {
    const EngineStats st = s.engine.stats();
    return st.n_running == 0 && st.n_waiting == 0;
  });
  // what still runs is cancelled ("the server is shutting down"): its stream writes a final event and ends
  s.engine.stop();
  waited_until(Clock::now() + std::chrono::seconds(2), [&] { return s.http.n_responding() == 0; });
  s.http.stop();
  s.http.close_unserved_connections();
}

}  // namespace oss4::serve
