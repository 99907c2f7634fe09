// The OpenAI-compatible HTTP server of `oss4 serve` (cpp-httplib): /v1/chat/completions, /v1/completions,
// /v1/responses (plain and streamed over SSE), /v1/models, /health and /metrics (Prometheus text), in front of an
// Engine. Every error is an OpenAI-shaped JSON body; no request can crash the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "oss4/status.h"
#include "serve/engine.h"
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

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (see Server::port)
  std::string api_key;                   // empty: no authentication
  std::string model_name = "gpt-oss";    // what /v1/models lists; requests may name any model
  size_t max_body_bytes = size_t{8} << 20;
  int n_http_threads = 64;               // connections served at once
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

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace oss4::serve
