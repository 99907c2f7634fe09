// oss4._core.Model: a loaded checkpoint (the public API's Model::load) and the continuous-batching engine over its
// backend (runtime/engine.h, as `oss4 serve` runs it). Python submits requests and calls step() until they are
// done: each step is one scheduler iteration (every running sequence's decode token and the prefill chunks admitted
// together, one batched forward), run with the GIL released; a pending Ctrl-C raises KeyboardInterrupt after it.
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/model_impl.h"
#include "common.h"
#include "request.h"
#include "runtime/engine.h"
#include "serve/api_request.h"
#include "text/harmony_render.h"
#include "tokenizer.h"

namespace oss4::py {

namespace {

using namespace nb::literals;

class PyModel {
 public:
  PyModel(const std::string& dir, const std::string& device, const std::string& lm_head, const std::string& activations,
          const std::string& kernels, int threads, int64_t max_num_seqs, double kv_memory_gib, int64_t max_model_len,
          const std::optional<std::string>& tokenizer, const std::function<void(int64_t, int64_t)>& progress) {
    require_path(dir, "model");
    if (tokenizer) require_path(*tokenizer, "tokenizer");
    if (threads < 0) raise(PyExc_ValueError, "threads: must be at least 1 (None: every core), not " + std::to_string(threads));
    if (max_num_seqs < 1) raise(PyExc_ValueError, "max_num_seqs: must be at least 1, not " + std::to_string(max_num_seqs));
    if (!(kv_memory_gib > 0)) raise(PyExc_ValueError, "kv_memory_gib: must be positive, not " + std::to_string(kv_memory_gib));
    if (max_model_len != 0 && max_model_len < 2) raise(PyExc_ValueError, "max_model_len: must be at least 2, not " + std::to_string(max_model_len));
    // the options are checked (ValueError) before the checkpoint is read
    check(backend_options(RunOptions{device, lm_head, activations, kernels, threads}).status(), Err::kValue);
    ModelOptions mo{device, lm_head, activations, kernels, threads, tokenizer.value_or(""), nullptr};
    bool failed = false;
    mo.progress = gil_progress(progress, &failed);
    Status st;
    {
      nb::gil_scoped_release nogil;
      auto m = Model::load(dir, mo);
      if (m.ok()) model_ = std::move(*m);
      else st = m.status();
    }
    if (failed) throw nb::python_error();
    check(st);
    const Model::Impl& im = model_->impl();
    if (im.tokenizer) enc_.emplace(take(harmony::HarmonyEncoding::create(*im.tokenizer)));
    EngineConfig ec;
    ec.max_seqs = max_num_seqs;
    // Python submits a whole list at once: the queue holds what it is given (the KV budget still admits)
    ec.max_queue = int64_t{1} << 40;
    const int64_t max_ctx = model_->max_context();
    ec.ctx = max_model_len > 0 ? std::min(max_model_len, max_ctx) : std::min<int64_t>(max_ctx, 8192);
    ec.kv_budget_bytes = static_cast<int64_t>(kv_memory_gib * static_cast<double>(int64_t{1} << 30));
    engine_ = take(Engine::create(*im.run.fwd, ec), Err::kValue);
  }

  ~PyModel() { engine_.reset(); }  // the engine runs the model's backend: gone first

  const Model& model() const { return *model_; }
  int64_t max_model_len() const { return engine_->config().ctx; }

  const Tokenizer& tokenizer() const {
    if (!model_->impl().tokenizer) raise(PyExc_RuntimeError, model_->dir() + ": the model has no tokenizer.json (pass tokenizer=...)");
    return *model_->impl().tokenizer;
  }

  // harmony: the completion prompt of an OpenAI-style chat request body (JSON text: messages, tools, tool_choice,
  // reasoning_effort), rendered as `oss4 serve` renders /v1/chat/completions, and the token sequences a reply must
  // begin with under tool_choice.
  std::pair<std::vector<int32_t>, std::vector<std::vector<int32_t>>> render_chat(const std::string& body) const {
    const harmony::HarmonyEncoding& enc = harmony();
    auto j = serve::parse_body(body);
    if (!j.ok()) raise(PyExc_ValueError, j.error.message);
    auto r = serve::parse_chat_request(*j.value);
    if (!r.ok()) raise(PyExc_ValueError, r.error.message);
    std::vector<int32_t> ids;
    check(enc.render_conversation_for_completion(r.value->conv, harmony::Role::kAssistant, harmony::RenderConfig{}, &ids), Err::kValue);
    std::vector<std::vector<int32_t>> prefixes;
    check(serve::tool_call_prefixes(*r.value, enc, &prefixes), Err::kValue);
    return {std::move(ids), std::move(prefixes)};
  }

  std::unique_ptr<Request> submit(std::vector<int32_t> prompt, float temperature, float top_p, int64_t top_k, uint64_t seed,
                                  int64_t max_tokens, std::vector<int32_t> stop_token_ids, std::vector<std::string> stop,
                                  int64_t logprobs, bool ignore_eos, bool skip_special_tokens, bool chat,
                                  std::vector<std::vector<int32_t>> prefixes, std::vector<int32_t> script) {
    GenRequest g;
    g.prompt = std::move(prompt);
    g.sampling = {temperature, top_p, top_k, seed};
    check(validate_sampler_params(g.sampling), Err::kValue);
    if (max_tokens < 1) raise(PyExc_ValueError, "max_tokens: must be at least 1, not " + std::to_string(max_tokens));
    g.max_tokens = max_tokens;
    g.top_logprobs = logprobs;
    g.stop_ids = std::move(stop_token_ids);
    Request::Text how;
    how.tok = model_->impl().tokenizer.get();
    how.stops = std::move(stop);
    how.skip_special = skip_special_tokens;
    const std::vector<int32_t>& eos = model_->eos_token_ids();
    if (chat) {
      const harmony::HarmonyEncoding& enc = harmony();
      how.enc = &enc;
      const std::vector<int32_t> turn_end = enc.stop_tokens_for_assistant_actions();
      g.stop_ids.insert(g.stop_ids.end(), turn_end.begin(), turn_end.end());
      // the EOS ids that are not harmony's own stops end the turn silently (the server's other_eos_ids)
      for (int32_t id : eos) {
        g.stop_ids.push_back(id);
        if (std::find(turn_end.begin(), turn_end.end(), id) == turn_end.end()) how.hidden_ids.push_back(id);
      }
    } else {
      if (!ignore_eos) g.stop_ids.insert(g.stop_ids.end(), eos.begin(), eos.end());
      how.hidden_ids = g.stop_ids;  // like vLLM, a stop token is in token_ids but not in the text
    }
    g.prefixes = std::move(prefixes);
    // the engine's test facility (GenRequest::script): these ids come out in place of sampled ones, so the tests can
    // drive the output parser with a known reply, as the server's tests do
    g.script = std::move(script);
    SubmitResult s = engine_->submit(std::move(g));
    if (s.err != SubmitError::kNone) raise(PyExc_ValueError, s.message);
    return std::make_unique<Request>(std::move(s.seq), std::move(how), logprobs >= 0);
  }

  // one scheduler iteration with the GIL released; false when there was nothing to do. One thread steps at a time
  // (the engine's step is not reentrant); another waits for it without the GIL.
  bool step() {
    bool more = false;
    {
      nb::gil_scoped_release nogil;
      std::lock_guard<std::mutex> lk(step_mu_);
      more = engine_->step();
    }
    check_signals();
    return more;
  }

  // (running, waiting, steps, forward runs, K/V bytes in use)
  std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t> stats() const {
    const EngineStats s = engine_->stats();
    return {s.n_running, s.n_waiting, s.n_steps, s.n_runs, s.kv_bytes_used};
  }

 private:
  const harmony::HarmonyEncoding& harmony() const {
    if (!enc_) raise(PyExc_RuntimeError, model_->dir() + ": the model has no tokenizer.json, so no harmony chat");
    return *enc_;
  }

  std::unique_ptr<Model> model_;
  std::optional<harmony::HarmonyEncoding> enc_;
  std::unique_ptr<Engine> engine_;
  std::mutex step_mu_;
};

}  // namespace

void bind_engine(nb::module_& m) {
  nb::class_<PyModel>(m, "Model", "a loaded checkpoint and its engine (oss4.LLM wraps it)")
      .def(nb::init<const std::string&, const std::string&, const std::string&, const std::string&, const std::string&, int,
                    int64_t, double, int64_t, const std::optional<std::string>&, const std::function<void(int64_t, int64_t)>&>(),
           "model"_a, "device"_a = "auto", "lm_head"_a = "stored", "activations"_a = "f32", "kernels"_a = "auto",
           "threads"_a = 0, "max_num_seqs"_a = 16, "kv_memory_gib"_a = 4.0, "max_model_len"_a = 0,
           "tokenizer"_a = nb::none(), "progress"_a = nb::none())
      .def("tokenizer", [](nb::handle self) {
             const PyModel& p = nb::cast<const PyModel&>(self);
             return PyTokenizer{nullptr, &p.tokenizer(), nb::borrow(self)};
           })
      .def("render_chat", &PyModel::render_chat, "body"_a)
      .def("submit", &PyModel::submit, "prompt"_a, "temperature"_a, "top_p"_a, "top_k"_a, "seed"_a, "max_tokens"_a,
           "stop_token_ids"_a, "stop"_a, "logprobs"_a, "ignore_eos"_a, "skip_special_tokens"_a, "chat"_a, "prefixes"_a,
           "script"_a = std::vector<int32_t>{}, nb::keep_alive<0, 1>())
      .def("step", &PyModel::step)
      .def("stats", &PyModel::stats)
      .def_prop_ro("n_vocab", [](const PyModel& p) { return p.model().n_vocab(); })
      .def_prop_ro("max_model_len", &PyModel::max_model_len)
      .def_prop_ro("eos_token_ids", [](const PyModel& p) { return p.model().eos_token_ids(); })
      .def_prop_ro("dir", [](const PyModel& p) { return p.model().dir(); });
}

}  // namespace oss4::py
