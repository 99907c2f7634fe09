// Internals of the server shared by server.cpp (setup, auth, models, health, metrics) and the generation
// endpoints (handlers_chat.cpp, handlers_completions.cpp, handlers_responses.cpp).
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>

#include "serve/api_request.h"
#include "serve/http_guard.h"
#include "serve/output.h"
#include "serve/server.h"

namespace oss4::serve {

// takes the new tokens of one wait; returns false when no more are wanted (a stop string matched, a write failed).
using TakeFn = std::function<bool(const std::vector<int32_t>& toks)>;

struct Server::Impl {
  Impl(Engine& e, const harmony::HarmonyEncoding& h, ServerConfig c) : engine(e), enc(h), cfg(std::move(c)), http(cfg.http) {}

  Engine& engine;
  const harmony::HarmonyEncoding& enc;
  ServerConfig cfg;
  GuardedHttpServer http;
  int bound_port = -1;

  std::mutex mu;
  std::map<std::pair<std::string, int>, int64_t> n_requests;  // (path, HTTP status) -> count
  std::atomic<uint64_t> next_id{1};

  void setup_routes();
  std::string new_id(const char* prefix);
  static int64_t now_unix();
  // false (and a 401 written) when an API key is set and the request lacks it.
  bool authorized(const httplib::Request& req, httplib::Response& res);
  static void send_error(httplib::Response& res, const ApiError& e);
  static void send_json(httplib::Response& res, const Json& j);
  // queues a generation; on a refusal writes the error and returns null.
  // prompt_param: the field a too-long prompt is blamed on ("messages", "prompt", "input").
  std::shared_ptr<Sequence> submit(GenRequest r, const GenSettings& g, const char* prompt_param, httplib::Response& res);
  // renders a parsed chat / responses request as an assistant completion (forced tool-call prefixes included) and
  // submits it; null after an error reply. param: the request field the conversation came from.
  std::shared_ptr<Sequence> submit_conversation(const ChatRequest& cr, const char* param, httplib::Response& res);
  // the request's "model" when it is a string, else the served model's name
  std::string request_model(const Json& body) const;
  // the chat prompt of a conversation, and the ids that end an assistant turn.
  std::vector<int32_t> turn_stop_ids() const;
  // the ids of turn_stop_ids() that are not harmony stops (the model's other eos ids): chat and responses keep them
  // from the harmony parser.
  std::vector<int32_t> other_eos_ids() const;
  std::vector<int32_t> script_for(const std::vector<int32_t>& prompt) const;
  // the body of a generation request, authorized and parsed as a JSON object; null after writing an error.
  std::optional<Json> read_body(const httplib::Request& req, httplib::Response& res);

  void handle_chat(const httplib::Request& req, httplib::Response& res);
  void handle_completions(const httplib::Request& req, httplib::Response& res);
  void handle_responses(const httplib::Request& req, httplib::Response& res);
  void handle_metrics(httplib::Response& res);
};

// "data: {json}\n\n"
inline std::string sse(const Json& j) { return "data: " + j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n"; }
// a JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
inline std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// what the client gets back for a finished sequence: "stop", "length", "tool_calls"; or an error to send.
struct Outcome {
  std::string finish_reason;
  std::optional<ApiError> error;
};
Outcome outcome_of(const Sequence& seq, bool stop_hit, bool tool_calls);

// waits (at most 0.5 s) for the next tokens of a sequence; returns true once the sequence ended and all were taken.
bool next_tokens(Sequence& seq, std::vector<int32_t>* out);

// the writes of a response body while its sequence runs: a failed write (the client is gone) cancels the sequence
// at once. keep_alive() writes `idle` when nothing was written for 0.25 s, so a client that left while nothing is
// written (its request queued, the model still inside a message header, or a non-streamed reply) is noticed too:
// an SSE comment for streams, a space (leading whitespace, valid JSON) for a plain JSON body.
class StreamWriter {
 public:
  StreamWriter(httplib::DataSink& sink, Sequence& seq, std::string idle = ": keep-alive\n\n")
      : sink_(sink), seq_(seq), idle_(std::move(idle)), last_(std::chrono::steady_clock::now()) {}
  bool write(const std::string& s) {
    if (!gone_ && sink_.write(s.data(), s.size())) {
      last_ = std::chrono::steady_clock::now();
      return true;
    }
    gone_ = true;
    seq_.cancel();
    return false;
  }
  bool keep_alive() {
    if (std::chrono::steady_clock::now() - last_ < std::chrono::milliseconds(250)) return true;
    return write(idle_);
  }
  bool gone() const { return gone_; }

 private:
  httplib::DataSink& sink_;
  Sequence& seq_;
  std::string idle_;
  std::chrono::steady_clock::time_point last_;
  bool gone_ = false;
};

// the stream driver of every endpoint: hands the sequence's tokens to take() as they come until the sequence ends
// or take() has enough, keeping the connection checked in between (StreamWriter::keep_alive). False: the client is
// gone (the sequence is cancelled).
bool pump(Sequence& seq, StreamWriter& w, const TakeFn& take);

// the body of a generation reply (StreamWriter), written by body() while it returns true.
using BodyFn = std::function<bool(StreamWriter& w)>;

// answers a generation with a chunked body that body() writes while the sequence runs; a client that leaves (a
// failed write, the connection closed) cancels the sequence. event_stream: SSE (text/event-stream, not cached),
// kept alive with SSE comments; else an application/json body kept alive with spaces (a space every 0.25 s, so a
// client that leaves is noticed at once). The status, 200, goes out first: an error found later (a failed
// generation, the server stopping) is an error object or event in that body.
void stream_body(httplib::Response& res, std::shared_ptr<Sequence> seq, bool event_stream, BodyFn body);

// the events of one token, or of the end, of a harmony turn; false: no more are wanted (a write failed).
using EventsFn = std::function<bool(const std::vector<OutputEvent>& evs)>;
// the text released by one wait, or by the end, of a raw completion; false: no more is wanted (a write failed).
using TextFn = std::function<bool(const std::string& text)>;

// the token loop of chat and responses, plain or streamed: hands the sequence's tokens, less `skip`, to out and each
// token's events to on_events (none for a plain reply, which reads out's parts at the end) until the sequence ends,
// a stop string matched (then the sequence is cancelled) or on_events fails; then the events of out.finish(). The
// outcome; none when the client is gone.
std::optional<Outcome> harmony_turn(Sequence& seq, StreamWriter& w, HarmonyOutput& out, const std::vector<int32_t>& skip, const EventsFn& on_events);
// the same for completions' raw text: on_text gets the text each wait released (when there is some), then the rest.
std::optional<Outcome> text_turn(Sequence& seq, StreamWriter& w, TextOutput& out, const std::vector<int32_t>& skip, const TextFn& on_text);

// usage of chat completions and completions.
Json usage_json(const Sequence& seq);

// the end of a chat-completions or completions stream: the error event, or final_chunk (with finish_reason) and,
// when include_usage, usage_chunk; then "data: [DONE]". False: the client is gone.
bool end_sse_stream(StreamWriter& w, const Outcome& o, const std::function<Json(const std::string& finish)>& final_chunk, bool include_usage,
                    const std::function<Json()>& usage_chunk);

}  // namespace oss4::serve
