// oss4 serve: an OpenAI-compatible HTTP server (chat completions, completions, responses) with continuous
// batching, a KV memory budget and prefix reuse. See docs/serving.md.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "commands.h"
#include "model_loader.h"
#ifdef OSS4_HAVE_CUDA
#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/device_plan.h"
#endif
#include "serve/server.h"
#include "text/harmony_parse.h"

namespace oss4::cli {

namespace {
struct ServeArgs {
  std::string model, tokenizer, host = "127.0.0.1", api_key, model_name, script;
  RunOptions run;
  int port = 8080;
  int64_t max_seqs = 16, max_queue = 256, ctx = 4096, chunk = 128, prefill_chunk = 256;
  double kv_gib = 0.0, max_body_mib = 8.0;  // kv_gib 0: auto
  double shutdown_timeout_s = 10.0, request_timeout_s = 15.0, keep_alive_s = 5.0;
  int max_conns_per_client = 32;
  bool no_prefix_reuse = false, quiet = false;
};

int run_serve(const ServeArgs& a) {
  // SIGINT / SIGTERM stop the server from a thread of their own. Blocked first, before any thread starts (loading
  // starts the kernel thread pool), so every thread inherits the mask and only sigwait below receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  if (a.port < 0 || a.port > 65535) return fail(error("--port: expected 0..65535, got " + std::to_string(a.port)));
  if (!(a.kv_gib >= 0)) return fail(error("--kv-memory: expected a positive number of GiB, or 0 for auto"));
  if (!(a.max_body_mib > 0)) return fail(error("--max-body: expected a positive number of MiB"));
  auto tok = load_model_tokenizer(a.model, a.tokenizer);
  if (!tok.ok()) return fail(tok.status());
  auto enc = harmony::HarmonyEncoding::create(*tok);
  if (!enc.ok()) return fail(enc.status());
  serve::ServerConfig sc;
  sc.host = a.host;
  sc.port = a.port;
  sc.api_key = a.api_key;
  sc.max_body_bytes = static_cast<size_t>(a.max_body_mib * 1024 * 1024);
  sc.model_name = a.model_name.empty() ? std::filesystem::path(a.model).filename().string() : a.model_name;
  if (sc.model_name.empty()) sc.model_name = std::filesystem::path(a.model).parent_path().filename().string();
  if (a.max_conns_per_client < 1) return fail(error("--max-conns-per-client: expected at least 1"));
  if (!(a.request_timeout_s > 0) || !(a.keep_alive_s > 0) || !(a.shutdown_timeout_s >= 0)) {
    return fail(error("--request-timeout and --keep-alive: expected positive seconds; --shutdown-timeout: expected seconds >= 0"));
  }
  sc.http.n_workers = static_cast<int>(std::max<int64_t>(64, a.max_seqs + a.max_queue / 4 + 8));
  sc.http.max_conns_per_client = a.max_conns_per_client;
  sc.http.request_deadline_s = a.request_timeout_s;
  sc.http.idle_keep_alive_s = a.keep_alive_s;
  if (!a.script.empty()) {
    auto s = serve::load_script(a.script, *tok);
    if (!s.ok()) return fail(s.status().with_context("--script"));
    sc.script = std::move(s).value();
  }
  auto loaded = load_to_run(a.model, a.quiet, a.run);
  if (!loaded.ok()) return fail(loaded.status());
  const ModelWeights* m = loaded->weights.get();
  if (m->cfg.n_vocab <= enc->ids().call) {
    return fail(error(a.model + ": vocabulary of " + std::to_string(m->cfg.n_vocab) + " ids has no room for the harmony tokens"));
  }
  serve::EngineConfig ec;
  ec.max_seqs = a.max_seqs;
  ec.max_queue = a.max_queue;
  ec.ctx = std::min<int64_t>(a.ctx, m->cfg.max_position_embeddings);
  ec.chunk = a.chunk;
  ec.prefill_chunk = a.prefill_chunk;
  double kv_gib = a.kv_gib > 0 ? a.kv_gib : 4.0;  // auto on the CPU: 4 GiB
#ifdef OSS4_HAVE_CUDA
  if (a.kv_gib == 0 && loaded->fwd->info().device.rfind("cuda", 0) == 0) {
    // auto on the GPU: 90% of the device memory left after the weights, less the step scratch the plan counts
    auto free_b = cuda_memory_free();
    auto lmt = parse_lm_head_type(a.run.lm_head);
    auto plan = cuda::plan_device_memory(*m, lmt.ok() ? *lmt : LmHeadType::kStored, ec.ctx,
                                         std::max(ec.chunk, ec.prefill_chunk), ec.max_seqs);
    if (!free_b.ok()) return fail(free_b.status());
    if (!plan.ok()) return fail(plan.status());
    const double left = static_cast<double>(*free_b) - static_cast<double>(plan->scratch_bytes);
    kv_gib = std::max(0.25, 0.9 * left / (1024.0 * 1024.0 * 1024.0));
  }
#endif
  ec.kv_budget_bytes = static_cast<int64_t>(kv_gib * 1024.0 * 1024.0 * 1024.0);
  ec.prefix_reuse = !a.no_prefix_reuse;
  auto engine = serve::Engine::create(*loaded->fwd, ec);
  if (!engine.ok()) return fail(engine.status());

  serve::Server server(**engine, *enc, sc);
  Status s = server.bind();
  if (!s.ok()) return fail(s);
  (*engine)->start();
  std::atomic<bool> server_done{false};
  std::thread sig_thread([&] {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0 || (sig != SIGINT && sig != SIGTERM)) return;
    if (!server_done.load()) {
      std::fprintf(stderr, "oss4 serve: %s: refusing new requests, stopping within %.1f s\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", a.shutdown_timeout_s);
      std::fflush(stderr);
    }
    server.shutdown(a.shutdown_timeout_s);  // 503 for new requests; streams end with a final event; then run() returns
  });
  std::fprintf(stderr, "oss4 serve: %s on http://%s:%d (max %lld sequences, ctx %lld, KV budget %.2f GiB, prefix reuse %s%s)\n",
               sc.model_name.c_str(), a.host.c_str(), server.port(), static_cast<long long>(ec.max_seqs), static_cast<long long>(ec.ctx), kv_gib,
               ec.prefix_reuse ? "on" : "off", sc.script.empty() ? "" : ", SCRIPTED replies");
  std::fflush(stderr);
  s = server.run();
  server_done = true;
  (*engine)->stop();
  pthread_kill(sig_thread.native_handle(), SIGTERM);
  sig_thread.join();
  if (!s.ok()) return fail(s);
  return 0;
}
}  // namespace

void add_serve(CLI::App& app, int* rc) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* sub = app.add_subcommand("serve", "OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/responses (docs/serving.md)");
  sub->add_option("-m,--model", a->model, "checkpoint directory")->required();
  add_run_options(sub, &a->run);
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or .tiktoken (default: the model's tokenizer.json, else the built-in o200k_base vocabulary)");
  sub->add_option("--host", a->host, "address to listen on (loopback unless told otherwise)")->capture_default_str();
  sub->add_option("--port", a->port, "port (0: any free port, printed at start)")->capture_default_str();
  sub->add_option("--api-key", a->api_key, "require 'Authorization: Bearer KEY' on /v1 and /metrics");
  sub->add_option("--max-seqs", a->max_seqs, "sequences decoded together (continuous batching)")->capture_default_str();
  sub->add_option("--max-queue", a->max_queue, "requests that may wait; beyond this the server answers 429")->capture_default_str();
  sub->add_option("--kv-memory", a->kv_gib, "KV cache budget in GiB for running and cached sequences (0: auto, 4 GiB on the CPU; "
                                            "on CUDA 90% of the device memory left after the weights and the step scratch)")
      ->capture_default_str();
  sub->add_option("--ctx", a->ctx, "context size of one sequence (prompt + generated)")->capture_default_str();
  sub->add_option("--chunk", a->chunk, "prefill chunk size (tokens per forward call)")->capture_default_str();
  sub->add_option("--prefill-chunk", a->prefill_chunk,
                  "prompt tokens prefilled per scheduler step before the running sequences decode (whole --chunks; 0: whole prompts)")
      ->capture_default_str();
  sub->add_option("--model-name", a->model_name, "model id listed by /v1/models (default: the directory name)");
  sub->add_option("--max-body", a->max_body_mib, "largest request body in MiB")->capture_default_str();
  sub->add_option("--max-conns-per-client", a->max_conns_per_client, "connections one client address may hold; past this: 429 and close")
      ->capture_default_str();
  sub->add_option("--request-timeout", a->request_timeout_s, "seconds a connection has to deliver a whole request (line, headers, body)")
      ->capture_default_str();
  sub->add_option("--keep-alive", a->keep_alive_s, "seconds an idle keep-alive connection stays open (closed sooner under pressure)")
      ->capture_default_str();
  sub->add_option("--shutdown-timeout", a->shutdown_timeout_s,
                  "on SIGTERM/SIGINT: seconds running generations may go on before they are ended (new requests get 503 at once)")
      ->capture_default_str();
  sub->add_flag("--no-prefix-reuse", a->no_prefix_reuse, "do not keep finished sequences' KV for later prompts");
  sub->add_option("--script", a->script, "TEST FACILITY: replay scripted harmony replies instead of sampled tokens (docs/serving.md)");
  sub->add_flag("-q,--quiet", a->quiet, "no loading progress");
  sub->callback([a, rc] { *rc = run_serve(*a); });
}

}  // namespace oss4::cli
