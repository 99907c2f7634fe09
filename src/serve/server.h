// The OpenAI-compatible HTTP server of `oss4 serve` (cpp-httplib): /v1/chat/completions, /v1/completions,
// /v1/responses (plain and streamed over SSE), /v1/models, /health and /metrics (Prometheus text), in front of an
// Engine. Every error is an OpenAI-shaped JSON body; no request can crash the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "oss4/status.h"
#include "serve/engine_names.h"
#include "text/harmony_render.h"

namespace oss4::serve {

// test facility (--script): instead of sampling, a request whose prompt text contains `when` gets `ids` (the first
// such reply in file order). The model still runs every step; only the chosen token is replaced.
struct ScriptReply {
  std::string when;
  std::vector<int32_t> ids;
};
// reads {"replies": [{"when": "...", "text": "<harmony text, special tokens spelled out>"}, ...]}.
Result<std::vector<ScriptReply>> load_script(const std::string& path, const Tokenizer& tok);

// the HTTP layer's defences (src/serve/http_guard.h)
struct HttpGuardConfig {
  int n_workers = 64;                // connections served at once
  int max_conns_per_client = 32;     // connections one client address may hold (served or queued)
  double request_deadline_s = 15.0;  // whole request (line, headers, body) within this many seconds
  double idle_keep_alive_s = 5.0;    // an idle keep-alive connection is closed after this many seconds
  double write_timeout_s = 60.0;     // a response write that makes no progress for this long ends the connection
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (see Server::port)
  std::string api_key;                   // empty: no authentication
  std::string model_name = "gpt-oss";    // what /v1/models lists; requests may name any model
  size_t max_body_bytes = size_t{8} << 20;
  HttpGuardConfig http;                  // workers, per-client connection cap, request deadline, keep-alive
  std::vector<ScriptReply> script;
};

class Server {
 public:
  // the engine and encoding must outlive the server.
  Server(Engine& engine, const harmony::HarmonyEncoding& enc, ServerConfig cfg);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // binds the socket; afterwards port() is the port bound.
  Status bind();
  int port() const;
  // serves until stop() (from another thread or a signal handler thread).
  Status run();
  void stop();
  // graceful stop (SIGTERM): from now on every request is answered 503; running generations may finish for up to
  // timeout_s seconds, then the engine is stopped, so the streams still open end with a final error event and
  // [DONE]; then the server stops and run() returns. Call from a thread other than run()'s.
  void shutdown(double timeout_s);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace oss4::serve
