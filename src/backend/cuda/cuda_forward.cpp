#include "backend/cuda/cuda_forward.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "backend/cuda/attn_math.h"
#include "backend/cuda/cuda_kv.h"
#include "backend/cuda/cuda_weights.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"
#include "numeric/float_formats.h"
#include "runtime/schedule.h"

namespace oss4 {

using namespace cuda;

namespace {

Status cuda_ok(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return ok_status();
  return error("cuda: " + what + ": " + cudaGetErrorString(e));
}

// a device buffer that grows to the largest size asked of it
struct Scratch {
  DeviceBuffer b;
  uint64_t* generation = nullptr;  // bumped on every reallocation (recorded graphs hold the old addresses)
  Status fit(size_t n, const char* what) {
    if (b.size() >= n) return ok_status();
    b = DeviceBuffer();  // (free first: the new size may not fit beside the old)
    OSS4_ASSIGN_OR_RETURN(b, DeviceBuffer::alloc(n + n / 4, what));
    if (generation) ++*generation;
    return ok_status();
  }
  template <class T>
  T* as() const { return reinterpret_cast<T*>(b.data()); }
};

// pinned host memory, grown like Scratch
struct Pinned {
  void* p = nullptr;
  size_t n = 0;
  ~Pinned() {
    if (p) cudaFreeHost(p);
  }
  Status fit(size_t want) {
    if (n >= want) return ok_status();
    if (p) cudaFreeHost(p);
    p = nullptr;
    n = 0;
    OSS4_TRY(cuda_ok(cudaMallocHost(&p, want + want / 4), "pinned staging"));
    n = want + want / 4;
    return ok_status();
  }
};

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

class CudaOps final : public ForwardOps {
 public:
  CudaOps(const ModelWeights& m, const CudaWeights& w, const KvLayout& kv, Stream s) : c_(m.cfg), w_(w), kv_(kv), s_(s) {
    for (Scratch* b : {&x_, &h_, &h16_, &q_, &k_, &v_, &attn_, &attn16_, &out_, &router_, &topk_idx_, &topk_w_, &moe_, &attn_scratch_,
                       &rows16_, &logits_, &step_})
      b->generation = &generation_;
  }

  // graph mode (a decode step recorded into a CUDA graph, cuda_forward's run): the attention's key ranges are
  // rounded up to a power of two of splits, so one graph serves the steps until the longest range doubles
  void set_graph_mode(bool on) { graph_mode_ = on; }
  void set_flash(bool on) { flash_on_ = on; }
  // the next begin() is the one the caller already made (the recording replays the schedule, which begins again)
  void skip_next_begin() { skip_begin_ = true; }
  void clear_skip_begin() { skip_begin_ = false; }
  // recording into a graph: no synchronisation, no download of the logits (the caller downloads after the launch)
  void set_capturing(bool on) { capturing_ = on; }
  uint64_t generation() const { return generation_; }
  int64_t max_keys(int g) const { return max_keys_[g]; }
  bool all_rows() const { return all_rows_; }
  const float* logits_device() const { return logits_.as<float>(); }

  Status begin(const Batch& b, const BatchPlan& plan, KvCache* const* caches) override {
    if (skip_begin_) {
      skip_begin_ = false;
      return ok_status();
    }
    st_ = ok_status();
    pending_add_.reset();
    plan_ = &plan;
    n_ = b.size();
    const int64_t k = c_.n_experts_used, nl = static_cast<int64_t>(plan.logit_rows.size());
    // the step's activations
    const size_t fn = static_cast<size_t>(n_) * sizeof(float), hn = static_cast<size_t>(n_) * 2;
    OSS4_TRY(x_.fit(fn * c_.n_embd, "x"));
    OSS4_TRY(h_.fit(fn * c_.n_embd, "h"));
    OSS4_TRY(h16_.fit(hn * c_.n_embd, "h (bf16)"));
    OSS4_TRY(q_.fit(fn * c_.q_dim(), "q"));
    OSS4_TRY(k_.fit(fn * c_.kv_dim(), "k"));
    OSS4_TRY(v_.fit(fn * c_.kv_dim(), "v"));
    OSS4_TRY(attn_.fit(fn * c_.q_dim(), "attention output"));
    OSS4_TRY(attn16_.fit(hn * c_.q_dim(), "attention output (bf16)"));
    OSS4_TRY(out_.fit(fn * c_.n_embd, "block output"));
    OSS4_TRY(router_.fit(fn * c_.n_experts, "router logits"));
    OSS4_TRY(topk_idx_.fit(static_cast<size_t>(n_ * k) * 4, "top-k ids"));
    OSS4_TRY(topk_w_.fit(static_cast<size_t>(n_ * k) * 4, "top-k weights"));
    OSS4_TRY(moe_.fit(moe_scratch_bytes(n_, k, c_.n_experts, c_.n_ff, c_.n_embd), "MoE scratch"));
    OSS4_TRY(rows16_.fit(static_cast<size_t>(std::max<int64_t>(nl, 1)) * c_.n_embd * 2, "lm_head rows"));
    OSS4_TRY(logits_.fit(static_cast<size_t>(std::max<int64_t>(nl, 1)) * c_.n_vocab * sizeof(float), "logits"));
    // the step descriptor: ids, positions, sequences, logit rows, page tables
    int64_t n_seq = 0, max_pos = 0;
    for (const SeqRun& r : plan.runs) n_seq = std::max<int64_t>(n_seq, r.seq + 1);
    for (int64_t i = 0; i < n_; ++i) max_pos = std::max(max_pos, b.pos[static_cast<size_t>(i)]);
    if (max_pos >= w_.n_rope_pos)
      return error("cuda: position " + std::to_string(max_pos) + " is past the model's " + std::to_string(w_.n_rope_pos) + " (max_position_embeddings)");
    max_keys_[0] = max_pos + 1;
    max_keys_[1] = kv_.window > 0 ? std::min(kv_.window, max_pos + 1) : max_pos + 1;
    if (graph_mode_) {
      for (int64_t& mk : max_keys_) {
        int64_t splits = 1;
        while (splits < n_key_splits(mk)) splits *= 2;
        mk = splits * kKeysPerSplit;
      }
    }
    // a prefill chunk of one sequence (16 rows or more) takes the tensor-core attention (flash_attention.h), which
    // needs no scratch
    flash_ = flash_on_ && !graph_mode_ && plan.runs.size() == 1 && plan.runs[0].n == n_ && n_ >= 16 &&
             attention_prefill_supports(c_.head_dim);
    attn_tile_ = std::min(n_, attention_tile_rows(c_.n_heads, c_.head_dim, max_keys_[0]));
    if (!flash_)
      OSS4_TRY(attn_scratch_.fit(attention_scratch_bytes(attn_tile_, c_.n_heads, c_.head_dim, max_keys_[0]), "attention scratch"));
    const size_t o_ids = 0, o_pos = align256(fn), o_seq = o_pos + align256(fn), o_lrows = o_seq + align256(fn),
                 o_tab = o_lrows + align256(static_cast<size_t>(std::max<int64_t>(nl, 1)) * 4),
                 total = o_tab + static_cast<size_t>(std::max<int64_t>(n_seq, 1)) * 2 * sizeof(PageTable);
    OSS4_TRY(step_host_.fit(total));
    OSS4_TRY(step_.fit(total, "step descriptor"));
    auto* hb = static_cast<uint8_t*>(step_host_.p);
    auto* ids = reinterpret_cast<int32_t*>(hb + o_ids);
    auto* pos = reinterpret_cast<int32_t*>(hb + o_pos);
    auto* seq = reinterpret_cast<int32_t*>(hb + o_seq);
    auto* lrows = reinterpret_cast<int32_t*>(hb + o_lrows);
    auto* tab = reinterpret_cast<PageTable*>(hb + o_tab);
    for (int64_t i = 0; i < n_; ++i) {
      ids[i] = b.ids[static_cast<size_t>(i)];
      pos[i] = static_cast<int32_t>(b.pos[static_cast<size_t>(i)]);
      seq[i] = b.seq[static_cast<size_t>(i)];
    }
    all_rows_ = nl == n_;
    for (int64_t i = 0; i < nl; ++i) {
      lrows[i] = static_cast<int32_t>(plan.logit_rows[static_cast<size_t>(i)]);
      all_rows_ = all_rows_ && lrows[i] == i;
    }
    flash_p0_ = b.pos[0];
    for (int64_t sq = 0; sq < n_seq; ++sq) tab[2 * sq] = tab[2 * sq + 1] = PageTable{};
    for (const SeqRun& r : plan.runs) {
      const auto* cache = dynamic_cast<const CudaKvCache*>(caches[r.seq]);
      if (!cache) return error("cuda: sequence " + std::to_string(r.seq) + "'s KV cache was not made by the CUDA backend");
      tab[2 * r.seq] = cache->table(0);
      tab[2 * r.seq + 1] = cache->table(1);
      flash_tables_[0] = tab[2 * r.seq], flash_tables_[1] = tab[2 * r.seq + 1];  // (used when there is one run)
    }
    OSS4_TRY(cuda_ok(cudaMemcpyAsync(step_.b.data(), hb, total, cudaMemcpyHostToDevice, s_), "step upload"));
    const uint8_t* db = step_.b.data();
    ids_ = reinterpret_cast<const int32_t*>(db + o_ids);
    lrows_ = reinterpret_cast<const int32_t*>(db + o_lrows);
    rows_ = RowsView{reinterpret_cast<const int32_t*>(db + o_pos), reinterpret_cast<const int32_t*>(db + o_seq),
                     reinterpret_cast<const PageTable*>(db + o_tab), n_};
    return ok_status();
  }

  void embed(Act out) override {
    flush_add();
    if (st_.ok()) note(embed_rows(w_.embed, w_.embed_f32, c_.n_vocab, c_.n_embd, ids_, n_, f32(out), s_));
  }

  void rmsnorm(int64_t layer, Norm which, Act in, Act out) override {
    const float* w = which == Norm::kFinal ? w_.final_norm
                     : which == Norm::kAttn ? w_.layers[static_cast<size_t>(layer)].attn_norm
                                            : w_.layers[static_cast<size_t>(layer)].mlp_norm;
    const float eps = static_cast<float>(c_.rms_norm_eps);
    if (pending_add_ && *pending_add_acc_ == in && in != out) {  // the residual add the schedule asked just before
      const Act y = *pending_add_;
      pending_add_.reset();
      if (st_.ok()) note(f32_add_rmsnorm(f32(in), f32(y), w, n_, c_.n_embd, eps, f32(out), bf16(out), s_));
      return;
    }
    flush_add();
    if (st_.ok()) note(f32_rmsnorm(f32(in), w, n_, c_.n_embd, eps, f32(out), bf16(out), s_));
  }

  void linear(int64_t layer, const ProjJob* jobs, int64_t n_jobs) override {
    flush_add();
    const DevLayer& L = w_.layers[static_cast<size_t>(layer)];
    for (int64_t j = 0; j < n_jobs && st_.ok(); ++j) {
      const ProjJob& job = jobs[j];
      const DevMatrix& W = job.w == Proj::kQ ? L.wq : job.w == Proj::kK ? L.wk : job.w == Proj::kV ? L.wv : L.wo;
      const float* bias = job.w == Proj::kQ ? L.bq : job.w == Proj::kK ? L.bk : job.w == Proj::kV ? L.bv : L.bo;
      const uint16_t* x = bf16(job.in);
      if (!x) {
        note(error("cuda: linear input has no BF16 copy"));
        return;
      }
      note(matmul(W, x, n_, bias, f32(job.out)));
    }
  }

  void rope_store_kv(int64_t layer, Act q, Act k, Act v) override {
    flush_add();
    if (st_.ok()) note(cuda::rope_store_kv(rows_, layer_kv(layer), f32(q), f32(k), f32(v), c_.n_heads, c_.n_kv_heads, c_.head_dim, w_.rope_cs, s_));
  }

  void attention(int64_t layer, Act q, Act out) override {
    flush_add();
    if (!st_.ok()) return;
    const LayerKv lk = layer_kv(layer);
    const int64_t window = lk.group == 1 ? kv_.window : 0;
    const int64_t qd = c_.q_dim();
    const float* sinks = w_.layers[static_cast<size_t>(layer)].sinks;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
    if (flash_) {
      FlashArgs a;
      a.q = f32(q);
      a.n_rows = n_;
      a.p0 = flash_p0_;
      a.table = flash_tables_[lk.group];
      a.geom = lk.geom;
      a.gl = lk.gl;
      a.n_heads = static_cast<int>(c_.n_heads);
      a.n_kv_heads = static_cast<int>(c_.n_kv_heads);
      a.window = window;
      a.sinks = sinks;
      a.scale = scale;
      a.out = f32(out);
      a.out16 = bf16(out);
      note(attention_prefill(a, c_.head_dim, s_));
      return;
    }
    // in tiles of rows that keep the scratch within its cap (one tile unless a long chunk sits deep in the context)
    for (int64_t r0 = 0; r0 < n_ && st_.ok(); r0 += attn_tile_) {
      const int64_t nr = std::min(attn_tile_, n_ - r0);
      const RowsView rv{rows_.pos + r0, rows_.seq + r0, rows_.tables, nr};
      note(cuda::attention(rv, lk, f32(q) + r0 * qd, c_.n_heads, c_.n_kv_heads, c_.head_dim, window, sinks, scale,
                           max_keys_[lk.group], attn_scratch_.b.data(), f32(out) + r0 * qd, bf16(out) + r0 * qd, s_));
    }
  }

  void moe(int64_t layer, Act in, Act out, const TraceFn* trace) override {
    flush_add();
    if (!st_.ok()) return;
    const DevLayer& L = w_.layers[static_cast<size_t>(layer)];
    const int64_t k = c_.n_experts_used;
    note(matmul(L.router, bf16(in), n_, L.router_bias, router_.as<float>()));
    if (st_.ok()) note(router_topk(router_.as<float>(), n_, c_.n_experts, k, topk_idx_.as<int32_t>(), topk_w_.as<float>(), s_));
    const MoeScratch sc = moe_scratch_carve(moe_.b.data(), n_, k, c_.n_experts, c_.n_ff, c_.n_embd);
    const SwigluParams sw{static_cast<float>(c_.swiglu_alpha), static_cast<float>(c_.swiglu_limit)};
    if (st_.ok())
      note(bf16_fp4w_moe(L.gate_up, L.down, c_.n_experts, bf16(in), n_, topk_idx_.as<int32_t>(), topk_w_.as<float>(), k,
                         L.gate_up_bias, L.down_bias, sw, sc, f32(out), s_));
    if (trace && *trace && st_.ok()) {
      // "expert_act": the down projections' inputs, one row per routed pair, grouped by expert (the kernel's order)
      const int64_t np = n_ * k;
      std::vector<uint16_t> h(static_cast<size_t>(np * c_.n_ff));  // [n_pairs, n_ff] bf16
      note(cuda_ok(cudaMemcpyAsync(h.data(), sc.h, h.size() * 2, cudaMemcpyDeviceToHost, s_), "expert_act trace"));
      note(cuda_ok(cudaStreamSynchronize(s_), "expert_act trace"));
      if (!st_.ok()) return;
      std::vector<float> f(h.size());  // [n_pairs, n_ff] f32
      for (size_t i = 0; i < h.size(); ++i) f[i] = bf16_to_f32(h[i]);
      (*trace)("expert_act", layer, f.data(), np, c_.n_ff);
    }
  }

  // acc += y, deferred to the RMSNorm that reads acc next (one kernel, one pass less); any other op first runs it
  void add(Act acc, Act y) override {
    flush_add();
    pending_add_acc_ = acc;
    pending_add_ = y;
  }

  void lm_head(Act in, float* logits) override {
    flush_add();
    if (!st_.ok()) return;
    const int64_t nl = static_cast<int64_t>(plan_->logit_rows.size());
    const uint16_t* x = bf16(in);
    if (!all_rows_) {
      note(gather_rows_bf16(x, lrows_, nl, c_.n_embd, rows16_.as<uint16_t>(), s_));
      x = rows16_.as<uint16_t>();
    }
    if (st_.ok()) note(matmul(w_.lm_head, x, nl, nullptr, logits_.as<float>()));
    if (st_.ok() && !capturing_)
      note(cuda_ok(cudaMemcpyAsync(logits, logits_.b.data(), static_cast<size_t>(nl * c_.n_vocab) * sizeof(float),
                                   cudaMemcpyDeviceToHost, s_), "logits download"));
  }

  const float* host_rows(Act a) override {
    flush_add();
    const size_t n = static_cast<size_t>(n_ * width(a));
    host_.resize(n);
    if (st_.ok()) note(cuda_ok(cudaMemcpyAsync(host_.data(), f32(a), n * sizeof(float), cudaMemcpyDeviceToHost, s_), "trace download"));
    if (st_.ok()) note(cuda_ok(cudaStreamSynchronize(s_), "trace download"));
    if (!st_.ok()) std::fill(host_.begin(), host_.end(), std::nanf(""));
    return host_.data();
  }

  Status status() override {
    // (a residual add still pending here is the last layer's: the final norm takes it, or nothing reads it)
    if (!capturing_) {  // (also after an error: the step's upload may still be reading the pinned descriptor)
      Status s = cuda_ok(cudaStreamSynchronize(s_), "step");
      note(std::move(s));
    }
    return st_;
  }

 private:
  void note(Status s) {
    if (st_.ok() && !s.ok()) st_ = std::move(s);
  }
  // runs a deferred residual add on its own
  void flush_add() {
    if (!pending_add_) return;
    const Act acc = *pending_add_acc_, y = *pending_add_;
    pending_add_.reset();
    if (st_.ok()) note(f32_add(f32(acc), f32(y), n_ * width(acc), s_));
  }
  Status matmul(const DevMatrix& W, const uint16_t* x, int64_t n, const float* bias, float* y) {
    if (W.fp4) return bf16_fp4w_matmul(W.tiles, x, n, bias, y, s_);
    return bf16_bf16w_matmul(W.bf16, W.n_out, W.n_in, x, n, bias, y, s_);
  }
  LayerKv layer_kv(int64_t layer) const {
    const int g = kv_.group[static_cast<size_t>(layer)];
    return LayerKv{g, kv_.gl[static_cast<size_t>(layer)], kv_.geom[g]};
  }
  int64_t width(Act a) const {
    switch (a) {
      case Act::kQ:
      case Act::kAttn: return c_.q_dim();
      case Act::kK:
      case Act::kV: return c_.kv_dim();
      default: return c_.n_embd;
    }
  }
  float* f32(Act a) const {
    switch (a) {
      case Act::kX: return x_.as<float>();
      case Act::kH: return h_.as<float>();
      case Act::kQ: return q_.as<float>();
      case Act::kK: return k_.as<float>();
      case Act::kV: return v_.as<float>();
      case Act::kAttn: return attn_.as<float>();
      case Act::kOut: return out_.as<float>();
    }
    return nullptr;
  }
  // the BF16 copy the matmuls read (the normed input and the attention output have one)
  uint16_t* bf16(Act a) const {
    if (a == Act::kH) return h16_.as<uint16_t>();
    if (a == Act::kAttn) return attn16_.as<uint16_t>();
    return nullptr;
  }

  const ModelConfig& c_;
  const CudaWeights& w_;
  const KvLayout& kv_;
  Stream s_;
  Status st_;
  bool graph_mode_ = false, skip_begin_ = false, capturing_ = false;
  std::optional<Act> pending_add_, pending_add_acc_;  // a residual add (acc += y) the next RMSNorm of acc performs
  uint64_t generation_ = 0;
  const BatchPlan* plan_ = nullptr;
  int64_t n_ = 0;
  int64_t max_keys_[2] = {1, 1};  // the longest key range of the step, per group
  int64_t attn_tile_ = 1;         // rows per attention call
  bool flash_on_ = true;          // OSS4_CUDA_FLASH=0: prefill chunks take the split kernel too
  bool flash_ = false;            // this step is one prefill chunk: the tensor-core attention
  int64_t flash_p0_ = 0;          // its first position
  PageTable flash_tables_[2];     // its sequence's tables
  bool all_rows_ = false;         // every row asks for logits, in order
  // device activations of the step (n_ rows)
  Scratch x_;       // [n, n_embd] f32 residual stream
  Scratch h_;       // [n, n_embd] f32 normed input of a block
  Scratch h16_;     // [n, n_embd] bf16 copy of h
  Scratch q_;       // [n, n_heads, head_dim] f32
  Scratch k_, v_;   // [n, kv_dim] f32
  Scratch attn_;    // [n, q_dim] f32
  Scratch attn16_;  // [n, q_dim] bf16
  Scratch out_;     // [n, n_embd] f32 block output
  Scratch router_;  // [n, n_experts] f32
  Scratch topk_idx_, topk_w_;  // [n, k] i32, f32
  Scratch moe_;     // moe_scratch_bytes
  Scratch attn_scratch_;  // attention_scratch_bytes
  Scratch rows16_;  // [n_logit_rows, n_embd] bf16 gathered lm_head inputs
  Scratch logits_;  // [n_logit_rows, n_vocab] f32
  Scratch step_;    // the step descriptor (device)
  Pinned step_host_;  // the step descriptor (host)
  const int32_t* ids_ = nullptr;    // [n] (in step_)
  const int32_t* lrows_ = nullptr;  // [n_logit_rows] (in step_)
  RowsView rows_;
  std::vector<float> host_;  // host_rows
};

class CudaForward final : public Forward {
 public:
  static Result<std::unique_ptr<CudaForward>> create(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress) {
    OSS4_TRY(cuda_ok(cudaSetDevice(0), "device 0"));
    std::unique_ptr<CudaForward> f(new CudaForward(m, o));
    OSS4_ASSIGN_OR_RETURN(f->w_, cuda_prepare_weights(m, o.lm_head, o.threads, progress));
    cudaStream_t s;
    OSS4_TRY(cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream"));
    f->s_ = s;
    f->ops_ = std::make_unique<CudaOps>(m, f->w_, f->pool_->layout(), s);
    const char* g = std::getenv("OSS4_CUDA_GRAPHS");
    f->graphs_on_ = !(g && std::string(g) == "0");
    const char* fl = std::getenv("OSS4_CUDA_FLASH");
    f->ops_->set_flash(!(fl && std::string(fl) == "0"));
    cudaDeviceProp p{};
    OSS4_TRY(cuda_ok(cudaGetDeviceProperties(&p, 0), "device properties"));
    f->sm_ = "sm_" + std::to_string(p.major) + std::to_string(p.minor);
    return f;
  }
  ~CudaForward() override {
    clear_graphs();
    ops_.reset();
    if (s_) cudaStreamDestroy(s_);
  }

  const ModelConfig& config() const override { return m_.cfg; }

  BackendInfo info() const override {
    BackendInfo i;
    i.device = "cuda:0";
    i.kernels = sm_;
    i.activations = "bf16";
    i.lm_head = w_.lm_head_type;
    i.threads = 1;
    i.weight_bytes_per_token = w_.bytes_per_token;
    i.device_weight_bytes = w_.bytes;
    return i;
  }

  Result<std::unique_ptr<KvCache>> new_cache(int64_t max_ctx, int64_t max_chunk, bool sliding_ring) const override {
    OSS4_ASSIGN_OR_RETURN(std::unique_ptr<CudaKvCache> c, CudaKvCache::create(pool_, max_ctx, max_chunk, sliding_ring));
    return std::unique_ptr<KvCache>(std::move(c));
  }

  int64_t kv_bytes_per_position() const override { return pool_->layout().bytes_per_position(); }

  Status run(const Batch& b, KvCache* const* caches, int64_t n_caches, float* logits, const TraceFn& trace) override {
    OSS4_TRY(check_batch(b, caches, n_caches, m_.cfg, &plan_));
    bool decode = graphs_on_ && !trace;
    for (const SeqRun& r : plan_.runs) decode = decode && r.n == 1;
    ops_->set_graph_mode(decode);
    if (!decode) return run_gpt_oss(*ops_, m_.cfg, b, plan_, caches, logits, trace);
    return run_decode_graph(b, caches, logits);
  }

 private:
  CudaForward(const ModelWeights& m, const BackendOptions& o)
      : m_(m), o_(o), pool_(std::make_shared<PagePool>(KvLayout::of(m.cfg))) {}

  // a decode step (one row per sequence) as a CUDA graph: recorded the first time its shape comes (rows, logit rows,
  // the attention's rounded key ranges, the scratch buffers' addresses), replayed after. The step descriptor (ids,
  // positions, page tables) is uploaded before the launch into the buffer the graph reads; the caches advance after.
  Status run_decode_graph(const Batch& b, KvCache* const* caches, float* logits) {
    if (!plan_.logit_rows.empty() && logits == nullptr) return error("run: the batch asks for logits but no logits buffer was given");
    OSS4_TRY(ops_->begin(b, plan_, caches));
    if (ops_->generation() != graph_generation_) {
      clear_graphs();
      graph_generation_ = ops_->generation();
    }
    const int64_t nl = static_cast<int64_t>(plan_.logit_rows.size());
    const GraphKey key{b.size(), nl, ops_->all_rows(), ops_->max_keys(0), ops_->max_keys(1)};
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      if (graphs_.size() >= 64) clear_graphs();
      OSS4_TRY(cuda_ok(cudaStreamBeginCapture(s_, cudaStreamCaptureModeThreadLocal), "graph capture"));
      ops_->skip_next_begin();
      ops_->set_capturing(true);
      Status st = run_gpt_oss(*ops_, m_.cfg, b, plan_, caches, logits, nullptr, /*advance_caches=*/false);
      ops_->set_capturing(false);
      ops_->clear_skip_begin();
      cudaGraph_t g = nullptr;
      const cudaError_t e = cudaStreamEndCapture(s_, &g);
      if (st.ok()) st = cuda_ok(e, "graph capture");
      cudaGraphExec_t x = nullptr;
      if (st.ok()) st = cuda_ok(cudaGraphInstantiate(&x, g, 0), "graph instantiate");
      if (g) cudaGraphDestroy(g);
      if (!st.ok()) {
        // a step that cannot be recorded runs eagerly, and so does every later one (a capture that failed once,
        // out of memory for the instantiation say, would fail again)
        cudaGetLastError();
        std::fprintf(stderr, "oss4: cuda: decode steps run without CUDA graphs from now on: %s\n", st.message().c_str());
        graphs_on_ = false;
        clear_graphs();
        ops_->set_graph_mode(false);
        return run_gpt_oss(*ops_, m_.cfg, b, plan_, caches, logits, nullptr);
      }
      it = graphs_.emplace(key, x).first;
    }
    OSS4_TRY(cuda_ok(cudaGraphLaunch(it->second, s_), "graph launch"));
    if (nl > 0)
      OSS4_TRY(cuda_ok(cudaMemcpyAsync(logits, ops_->logits_device(), static_cast<size_t>(nl * m_.cfg.n_vocab) * sizeof(float),
                                       cudaMemcpyDeviceToHost, s_), "logits download"));
    OSS4_TRY(cuda_ok(cudaStreamSynchronize(s_), "decode step"));
    for (const SeqRun& r : plan_.runs) caches[r.seq]->advance(r.n);
    return ok_status();
  }

  void clear_graphs() {
    for (auto& [k, x] : graphs_) cudaGraphExecDestroy(x);
    graphs_.clear();
  }

  struct GraphKey {
    int64_t rows, logit_rows;
    bool all_rows;
    int64_t keys_full, keys_sliding;
    bool operator<(const GraphKey& o) const {
      return std::tie(rows, logit_rows, all_rows, keys_full, keys_sliding) <
             std::tie(o.rows, o.logit_rows, o.all_rows, o.keys_full, o.keys_sliding);
    }
  };

  const ModelWeights& m_;
  BackendOptions o_;
  std::shared_ptr<PagePool> pool_;
  bool graphs_on_ = true;  // OSS4_CUDA_GRAPHS=0 turns them off (every step eager)
  std::map<GraphKey, cudaGraphExec_t> graphs_;
  uint64_t graph_generation_ = 0;
  CudaWeights w_;
  cudaStream_t s_ = nullptr;
  std::unique_ptr<CudaOps> ops_;
  std::string sm_;
  BatchPlan plan_;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // (clears the sticky "no driver" error)
    return 0;
  }
  return n;
}

Result<std::string> cuda_device_summary() {
  cudaDeviceProp p{};
  OSS4_TRY(cuda_ok(cudaGetDeviceProperties(&p, 0), "device 0"));
  char gib[32];
  std::snprintf(gib, sizeof(gib), "%.1f GiB", static_cast<double>(p.totalGlobalMem) / (1 << 30));
  return std::string(p.name) + ", sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + gib;
}

Result<ReadBandwidth> measure_device_bandwidth(size_t bytes, int passes) {
  OSS4_TRY(cuda_ok(cudaSetDevice(0), "device 0"));
  OSS4_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::alloc(bytes, "bandwidth probe"));
  OSS4_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::alloc(bytes, "bandwidth probe"));
  OSS4_TRY(cuda_ok(cudaMemset(a.data(), 1, bytes), "bandwidth probe"));
  cudaEvent_t e0, e1;
  OSS4_TRY(cuda_ok(cudaEventCreate(&e0), "bandwidth probe"));
  OSS4_TRY(cuda_ok(cudaEventCreate(&e1), "bandwidth probe"));
  std::vector<double> gbs;
  Status st;
  for (int i = 0; i <= passes && st.ok(); ++i) {
    st = cuda_ok(cudaEventRecord(e0), "bandwidth probe");
    if (st.ok()) st = cuda_ok(cudaMemcpy(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice), "bandwidth probe");
    if (st.ok()) st = cuda_ok(cudaEventRecord(e1), "bandwidth probe");
    if (st.ok()) st = cuda_ok(cudaEventSynchronize(e1), "bandwidth probe");
    float ms = 0;
    if (st.ok()) st = cuda_ok(cudaEventElapsedTime(&ms, e0, e1), "bandwidth probe");
    if (st.ok() && i > 0 && ms > 0) gbs.push_back(2.0 * static_cast<double>(bytes) / (ms * 1e6));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  OSS4_TRY(st);
  if (gbs.empty()) return error("bandwidth probe: no timed pass");
  std::sort(gbs.begin(), gbs.end());
  ReadBandwidth r;
  r.median_gb_s = gbs[gbs.size() / 2];
  r.best_gb_s = gbs.back();
  r.bytes = bytes;
  r.passes = static_cast<int>(gbs.size());
  return r;
}

Result<size_t> cuda_memory_in_use() {
  size_t free_b = 0, total = 0;
  OSS4_TRY(cuda_ok(cudaMemGetInfo(&free_b, &total), "memory info"));
  return total - free_b;
}

Result<size_t> cuda_memory_free() {
  size_t free_b = 0, total = 0;
  OSS4_TRY(cuda_ok(cudaMemGetInfo(&free_b, &total), "memory info"));
  return free_b;
}

Status check_cuda_options(const BackendOptions& o) {
  if (o.activations_given && o.activations != ActPrecision::kBf16)
    return error(std::string("--activations ") + act_precision_name(o.activations) +
                 ": the CUDA backend runs BF16 activations (bf16, its default); f32 and q8 are the CPU backend's");
  if (cuda_device_count() == 0) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();
    std::string why = e == cudaSuccess ? "none found" : cudaGetErrorString(e);
    if (e == cudaErrorInsufficientDriver) why += ": no NVIDIA driver, or one older than this build's CUDA runtime";
    return error("--device cuda: no CUDA device is visible (" + why + ")");
  }
  return ok_status();
}

Result<std::unique_ptr<Forward>> make_cuda_forward(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress) {
  OSS4_TRY(check_cuda_options(o));
  OSS4_ASSIGN_OR_RETURN(std::unique_ptr<CudaForward> f, CudaForward::create(m, o, progress));
  return std::unique_ptr<Forward>(std::move(f));
}

}  // namespace oss4
