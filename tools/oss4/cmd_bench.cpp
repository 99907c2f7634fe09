// oss4 bench: prefill and decode speed of a checkpoint on this machine, llama-bench style (pp<p> and tg<n> at each KV
// depth, mean ± stddev over repetitions), with the weight bytes each decoded token reads, the GB/s that makes, and
// this machine's read bandwidth measured by a probe in the same run.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "runtime/forward.h"
#include "commands.h"
#include "core/cpu_features.h"
#include "core/mem_bandwidth.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "model_loader.h"
#include "runtime/sampler.h"
#ifdef OSS4_HAVE_CUDA
#include "backend/cuda/cuda_forward.h"
#endif

namespace oss4::cli {

namespace {
struct BenchArgs {
  std::string model, depths = "0", seqs;
  RunOptions run;
  int64_t n_prompt = 512, n_gen = 128, chunk = 512, reps = 5;
  bool json = false, quiet = false;
  int64_t probe_mib = 512;
};

struct Stat {
  double mean = 0, stddev = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

Result<std::vector<int64_t>> parse_depths(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty() || tok.size() > 9 || tok.find_first_not_of("0123456789") != std::string::npos)
      return error("--depth: '" + tok + "' is not a non-negative integer");
    out.push_back(std::stoll(tok));
  }
  if (out.empty()) return error("--depth: no depths");
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct DepthResult {
  int64_t depth = 0;
  std::vector<double> prefill_tok_s, decode_tok_s, ttft_s;
};

// decode throughput of n_seq sequences stepped together (one row each per step)
struct SeqsResult {
  int64_t n_seq = 0;
  std::vector<double> tok_s;
};

int run_bench(const BenchArgs& a) {
  auto depths = parse_depths(a.depths);
  if (!depths.ok()) return fail(depths.status());
  std::vector<int64_t> seqs;
  if (!a.seqs.empty()) {
    auto s = parse_depths(a.seqs);
    if (!s.ok()) return fail(s.status().with_context("--seqs"));
    for (int64_t n : *s)
      if (n < 1 || n > 4096) return fail(error("--seqs: " + std::to_string(n) + " sequences (1 to 4096)"));
    seqs = *s;
  }
  if (a.n_prompt < 0 || a.n_gen < 0 || a.reps < 1) return fail(error("-p and -n must be >= 0 and -r >= 1"));
  if (a.n_prompt == 0 && a.n_gen == 0) return fail(error("nothing to measure: -p 0 and -n 0"));
  auto bo = backend_options(a.run);  // bad options fail before the probe and the load
  if (!bo.ok()) return fail(bo.status());
  const int threads = resolve_threads(a.run.threads);

  // the bandwidth probe runs first, on as many threads as the kernels use
  ReadBandwidth bw;
  {
    ThreadPool probe_pool(threads);
    bw = measure_read_bandwidth(probe_pool, static_cast<size_t>(a.probe_mib) << 20, 5);
  }

  const auto t_load = std::chrono::steady_clock::now();
  auto loaded = load_to_run(a.model, a.quiet || a.json, a.run);
  if (!loaded.ok()) return fail(loaded.status());
  const double load_s = seconds_since(t_load);
  const ModelWeights* m = loaded->weights.get();
  Forward& fwd = *loaded->fwd;
  const BackendInfo info = fwd.info();
  std::string probe_what = std::to_string(threads) + " threads";
  // the device memory in use, sampled after each phase (the backend's buffers only grow, so the last sample of a
  // phase is its peak); -1 on the CPU
  int64_t dev_mem = -1;
  auto sample_device_memory = [&] {
#ifdef OSS4_HAVE_CUDA
    if (info.device.rfind("cuda", 0) == 0) {
      auto used = cuda_memory_in_use();
      if (used.ok()) dev_mem = std::max(dev_mem, static_cast<int64_t>(*used));
    }
#endif
  };
  sample_device_memory();
#ifdef OSS4_HAVE_CUDA
  if (info.device.rfind("cuda", 0) == 0) {  // the GPU's memory, not the host's: a device-to-device copy
    auto dbw = measure_device_bandwidth(static_cast<size_t>(a.probe_mib) << 20, 10);
    if (!dbw.ok()) return fail(dbw.status());
    bw = *dbw;
    probe_what = "device copy, read + written";
  }
#endif
  const ModelConfig& c = m->cfg;
  int64_t max_depth = 0;
  for (int64_t d : *depths) max_depth = std::max(max_depth, d);
  const int64_t ctx = max_depth + std::max(a.n_prompt, a.n_gen) + 1;
  if (ctx > c.max_position_embeddings) return fail(error("depth + tokens exceed the model's context " + std::to_string(c.max_position_embeddings)));
  const int64_t chunk = std::max<int64_t>(1, std::min(a.chunk, std::max<int64_t>(a.n_prompt, 1)));

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok_dist(0, static_cast<int32_t>(std::min<int64_t>(c.n_vocab, 199998) - 1));
  auto random_ids = [&](int64_t n) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& id : ids) id = tok_dist(rng);
    return ids;
  };

  std::vector<float> logits;  // [n_vocab]
  std::vector<DepthResult> results;
  for (int64_t depth : *depths) {
    DepthResult r;
    r.depth = depth;
    auto base = fwd.new_cache(ctx, chunk);
    if (!base.ok()) return fail(base.status());
    if (depth > 0) {
      if (!a.quiet && !a.json) std::fprintf(stderr, "filling the KV cache to depth %lld\n", static_cast<long long>(depth));
      auto ids = random_ids(depth);
      Status s = eval(fwd, **base, ids.data(), depth, LogitsMode::kNone, nullptr);
      if (!s.ok()) return fail(s);
    }
    // one warm-up decode step (first touch of the weights' pages, thread start-up), not counted
    {
      std::unique_ptr<KvCache> warm = (*base)->clone();
      if (!warm) return fail(error("bench: the KV cache could not be copied (device memory?)"));
      auto ids = random_ids(1);
      Status s = eval(fwd, *warm, ids.data(), 1, LogitsMode::kLast, &logits);
      if (!s.ok()) return fail(s);
    }
    for (int64_t rep = 0; rep < a.reps; ++rep) {
      if (a.n_prompt > 0) {
        std::unique_ptr<KvCache> cache = (*base)->clone();
        if (!cache) return fail(error("bench: the KV cache could not be copied (device memory?)"));
        auto ids = random_ids(a.n_prompt);
        const auto t0 = std::chrono::steady_clock::now();
        Status s = eval(fwd, *cache, ids.data(), a.n_prompt, LogitsMode::kLast, &logits);
        if (!s.ok()) return fail(s);
        (void)argmax(logits.data(), c.n_vocab);  // the first token
        const double dt = seconds_since(t0);
        r.prefill_tok_s.push_back(static_cast<double>(a.n_prompt) / dt);
        r.ttft_s.push_back(dt);
      }
      if (a.n_gen > 0) {
        std::unique_ptr<KvCache> cache = (*base)->clone();
        if (!cache) return fail(error("bench: the KV cache could not be copied (device memory?)"));
        int32_t id = random_ids(1)[0];
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < a.n_gen; ++i) {
          Status s = eval(fwd, *cache, &id, 1, LogitsMode::kLast, &logits);
          if (!s.ok()) return fail(s);
          id = argmax(logits.data(), c.n_vocab);
        }
        r.decode_tok_s.push_back(static_cast<double>(a.n_gen) / seconds_since(t0));
      }
      if (!a.quiet && !a.json) std::fprintf(stderr, "depth %lld: repetition %lld of %lld done\n", static_cast<long long>(depth),
                                            static_cast<long long>(rep + 1), static_cast<long long>(a.reps));
    }
    sample_device_memory();
    results.push_back(std::move(r));
  }

  // decode throughput at several sequence counts: every sequence at the first depth, one row each per step
  std::vector<SeqsResult> seq_results;
  for (int64_t ns : seqs) {
    SeqsResult sr;
    sr.n_seq = ns;
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<KvCache*> ptrs;
    const int64_t d0 = depths->front();
    const int64_t steps = std::max<int64_t>(1, a.n_gen / a.reps);
    for (int64_t i = 0; i < ns; ++i) {
      auto c = fwd.new_cache(d0 + (a.reps + 1) * steps + 1, chunk);
      if (!c.ok()) return fail(c.status());
      if (d0 > 0) {
        auto ids = random_ids(d0);
        Status s = eval(fwd, **c, ids.data(), d0, LogitsMode::kNone, nullptr);
        if (!s.ok()) return fail(s);
      }
      caches.push_back(std::move(*c));
      ptrs.push_back(caches.back().get());
    }
    std::vector<float> blog(static_cast<size_t>(ns * c.n_vocab));  // [ns, n_vocab]
    std::vector<int32_t> ids = random_ids(ns);
    Batch b;
    for (int64_t rep = 0; rep <= a.reps; ++rep) {  // (repetition 0 warms up, not counted)
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t st = 0; st < steps; ++st) {
        b.clear();
        for (int64_t i = 0; i < ns; ++i) b.add(ids[static_cast<size_t>(i)], ptrs[static_cast<size_t>(i)]->n_pos(), static_cast<int32_t>(i), true);
        Status s = fwd.run(b, ptrs.data(), ns, blog.data());
        if (!s.ok()) return fail(s);
        for (int64_t i = 0; i < ns; ++i) ids[static_cast<size_t>(i)] = argmax(blog.data() + i * c.n_vocab, c.n_vocab);
      }
      if (rep > 0) sr.tok_s.push_back(static_cast<double>(ns * steps) / seconds_since(t0));
    }
    sample_device_memory();
    if (!a.quiet && !a.json) std::fprintf(stderr, "%lld sequences done\n", static_cast<long long>(ns));
    seq_results.push_back(std::move(sr));
  }
  sample_device_memory();

  const double wbytes = static_cast<double>(info.weight_bytes_per_token);
  const double model_bytes = static_cast<double>(m->store.total_bytes());
  const int64_t rss = peak_rss_bytes();
  auto depth_json = [&](const DepthResult& r) {
    const Stat pp = stat(r.prefill_tok_s), tg = stat(r.decode_tok_s), tt = stat(r.ttft_s);
    const double gbs = tg.mean * wbytes / 1e9;
    return nlohmann::json{{"depth", r.depth},
                          {"prefill_tok_s", pp.mean},
                          {"prefill_tok_s_stddev", pp.stddev},
                          {"decode_tok_s", tg.mean},
                          {"decode_tok_s_stddev", tg.stddev},
                          {"ttft_s", tt.mean},
                          {"ttft_s_stddev", tt.stddev},
                          {"decode_gb_s", gbs},
                          {"bw_ratio", bw.median_gb_s > 0 ? gbs / bw.median_gb_s : 0.0}};
  };
  if (a.json) {
    nlohmann::json j = depth_json(results.front());
    j["model"] = a.model;
    j["checkpoint_kind"] = checkpoint_kind_name(m->checkpoint_kind);
    j["model_bytes"] = model_bytes;
    j["n_prompt"] = a.n_prompt;
    j["n_gen"] = a.n_gen;
    j["repetitions"] = a.reps;
    j["threads"] = info.threads;
    j["device"] = info.device;
    j["kernels"] = info.kernels;
    j["lm_head"] = info.lm_head;
    j["activations"] = info.activations;
    j["cpu_features"] = cpu_features_string();
    j["weight_bytes_per_token"] = wbytes;
    j["read_bw_gb_s"] = bw.median_gb_s;
    j["read_bw_best_gb_s"] = bw.best_gb_s;
    j["read_bw_probe_bytes"] = bw.bytes;
    j["read_bw_probe"] = probe_what;
    j["load_s"] = load_s;
    j["peak_rss_bytes"] = rss;
    if (dev_mem >= 0) j["device_memory_peak_bytes"] = dev_mem;
    j["seqs"] = nlohmann::json::array();
    for (const auto& sr : seq_results) {
      const Stat t = stat(sr.tok_s);
      j["seqs"].push_back({{"n_seq", sr.n_seq}, {"depth", depths->front()}, {"decode_tok_s", t.mean}, {"decode_tok_s_stddev", t.stddev}});
    }
    j["depths"] = nlohmann::json::array();
    for (const auto& r : results) j["depths"].push_back(depth_json(r));
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("| model | size | lm_head | act | kernels | threads | test | t/s |\n|---|---:|---|---|---|---:|---:|---:|\n");
  for (const auto& r : results) {
    const Stat pp = stat(r.prefill_tok_s), tg = stat(r.decode_tok_s);
    const std::string at = r.depth > 0 ? " @ d" + std::to_string(r.depth) : "";
    if (a.n_prompt > 0)
      std::printf("| %s | %s | %s | %s | %s | %d | pp%lld%s | %.2f ± %.2f |\n", checkpoint_kind_name(m->checkpoint_kind), format_bytes(model_bytes).c_str(),
                  info.lm_head.c_str(), info.activations.c_str(), info.kernels.c_str(), info.threads, static_cast<long long>(a.n_prompt), at.c_str(), pp.mean, pp.stddev);
    if (a.n_gen > 0)
      std::printf("| %s | %s | %s | %s | %s | %d | tg%lld%s | %.2f ± %.2f |\n", checkpoint_kind_name(m->checkpoint_kind), format_bytes(model_bytes).c_str(),
                  info.lm_head.c_str(), info.activations.c_str(), info.kernels.c_str(), info.threads, static_cast<long long>(a.n_gen), at.c_str(), tg.mean, tg.stddev);
  }
  for (const auto& sr : seq_results) {
    const Stat t = stat(sr.tok_s);
    std::printf("| %s | %s | %s | %s | %s | %d | tg x%lld seqs | %.2f ± %.2f |\n", checkpoint_kind_name(m->checkpoint_kind),
                format_bytes(model_bytes).c_str(), info.lm_head.c_str(), info.activations.c_str(), info.kernels.c_str(), info.threads,
                static_cast<long long>(sr.n_seq), t.mean, t.stddev);
  }
  const DepthResult& r0 = results.front();
  const Stat tg = stat(r0.decode_tok_s);
  const double gbs = tg.mean * wbytes / 1e9;
  std::printf("\n");
  if (a.n_prompt > 0) std::printf("time to first token (pp%lld)  %.3f s\n", static_cast<long long>(a.n_prompt), stat(r0.ttft_s).mean);
  std::printf("weights read per token      %s\n", format_bytes(wbytes).c_str());
  if (a.n_gen > 0) std::printf("decode weight traffic       %.2f GB/s\n", gbs);
  std::printf("read bandwidth (probe)      %.2f GB/s median, %.2f best (%s, %s buffer)\n", bw.median_gb_s, bw.best_gb_s, probe_what.c_str(),
              format_bytes(static_cast<double>(bw.bytes)).c_str());
  if (dev_mem >= 0) std::printf("device memory (peak)        %s (every process's, the CUDA context included)\n", format_bytes(static_cast<double>(dev_mem)).c_str());
  if (a.n_gen > 0) std::printf("decode / read bandwidth     %.0f%%\n", bw.median_gb_s > 0 ? 100.0 * gbs / bw.median_gb_s : 0.0);
  std::printf("load                        %.2f s\npeak RSS                    %s (model %s)\nCPU                         %s\n", load_s,
              format_bytes(static_cast<double>(rss)).c_str(), format_bytes(model_bytes).c_str(), cpu_features_string().c_str());
  return 0;
}
}  // namespace

void add_bench(CLI::App& app, int* rc) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "prefill and decode speed (llama-bench style), weight GB/s against this machine's "
                                              "measured read bandwidth, time to first token, peak RSS");
  sub->add_option("-m,--model", a->model, "checkpoint directory")->required();
  sub->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens for the prefill test (0 = skip)")->capture_default_str();
  sub->add_option("-n,--n-gen", a->n_gen, "tokens for the decode test (0 = skip)")->capture_default_str();
  sub->add_option("--depth", a->depths, "KV cache depths to test at, comma-separated")->capture_default_str();
  sub->add_option("-r,--repetitions", a->reps, "repetitions of each test")->capture_default_str();
  sub->add_option("--chunk", a->chunk, "prefill chunk size")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seqs", a->seqs, "also decode this many sequences together (comma-separated counts, at the first depth): "
                                     "throughput in tokens/s of all of them");
  add_run_options(sub, &a->run);
  sub->add_option("--probe-mib", a->probe_mib, "size of the read-bandwidth probe buffer in MiB")->capture_default_str()->check(CLI::Range(16, 8192));
  sub->add_flag("--json", a->json, "print one JSON object");
  sub->add_flag("-q,--quiet", a->quiet, "no progress on stderr");
  sub->callback([a, rc] { *rc = run_bench(*a); });
}

}  // namespace oss4::cli
