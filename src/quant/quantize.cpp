#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/mapped_file.h"
#include "core/parallel_for.h"
#include "core/thread_pool.h"
#include "core/transpose.h"
#include "format/checkpoint_writer.h"
#include "format/json_read.h"
#include "model/lm_head.h"
#include "model/weight_decode.h"
#include "numeric/float_formats.h"
#include "numeric/mxfp4.h"
#include "numeric/nvfp4.h"
#include "quant/calibrate.h"

namespace oss4 {

using json = nlohmann::json;

namespace {

// squared error of one 16-block quantized with block factor f; writes the nibbles to q[16]. Candidates other than
// ModelOpt's own scale round w * (1/f) (a search needs no bit-exactness); the error is exact for the nibbles chosen.
float block_sse(const float* w, float f, uint8_t* q) {
  const float inv = 1.0f / f;
  float e = 0;
  for (int i = 0; i < 16; ++i) {
    q[i] = f32_to_e2m1_rne(w[i] * inv);
    const float d = w[i] - kE2m1Lut[q[i]] * f;
    e += d * d;
  }
  return e;
}

// block_sse's error without the nibbles: the E2M1 value is summed from the rounding thresholds (no table lookup,
// so the 16 lanes vectorize); used to rank the candidate scales, the winner's nibbles come from block_sse.
float block_sse_value(const float* w, float f) {
  const float inv = 1.0f / f;
  float e = 0;
  for (int i = 0; i < 16; ++i) {
    const float aw = std::fabs(w[i]), a = aw * inv;
    const float v = 0.5f * static_cast<float>((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f)) +
                    static_cast<float>((a > 2.5f) + (a >= 3.5f)) + 2.0f * static_cast<float>(a > 5.0f);
    const float d = aw - v * f;
    e += d * d;
  }
  return e;
}

// the same for the nibbles ModelOpt's rule already chose (packed [8] bytes).
float block_sse_packed(const float* w, float f, const uint8_t* packed, uint8_t* q) {
  float e = 0;
  for (int i = 0; i < 16; ++i) {
    q[i] = i % 2 == 0 ? packed[i / 2] & 15 : packed[i / 2] >> 4;
    const float d = w[i] - kE2m1Lut[q[i]] * f;
    e += d * d;
  }
  return e;
}

void pack_block(const uint8_t* q, uint8_t* dst) {
  for (int j = 0; j < 8; ++j) dst[j] = static_cast<uint8_t>(q[2 * j] | (q[2 * j + 1] << 4));
}

}  // namespace

Status nvfp4_quantize_mse(const float* w, int64_t n_out, int64_t n_in, float amax, Nvfp4Matrix* out, const std::string& name) {
  out->packed.resize(static_cast<size_t>(n_out * n_in / 2));
  out->scales.resize(static_cast<size_t>(n_out * n_in / 16));
  OSS4_TRY(nvfp4_quantize_ref(w, n_out, n_in, amax, out->packed.data(), out->scales.data(), &out->scale2, name));
  uint8_t best_q[16];
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t b = 0; b < n_in / 16; ++b) {
      const float* wb = w + o * n_in + b * 16;
      uint8_t& code = out->scales[static_cast<size_t>(o * (n_in / 16) + b)];
      const uint8_t c0 = code;
      float best = block_sse_packed(wb, e4m3_to_f32(c0) * out->scale2, out->packed.data() + o * n_in / 2 + b * 8, best_q);
      uint8_t best_c = c0;
      // positive E4M3 codes 0x01..0x7e are ordered by value; the amax code stays the fallback, so never worse
      for (int c = std::max(1, c0 - 6); c <= std::min(0x7e, c0 + 2); ++c) {
        if (c == c0) continue;
        const float e = block_sse_value(wb, e4m3_to_f32(static_cast<uint8_t>(c)) * out->scale2);
        if (e < best) {
          best = e;
          best_c = static_cast<uint8_t>(c);
        }
      }
      if (best_c != c0) block_sse(wb, e4m3_to_f32(best_c) * out->scale2, best_q);
      code = best_c;
      pack_block(best_q, out->packed.data() + o * n_in / 2 + b * 8);
    }
  }
  return ok_status();
}

void mxfp4_transcode(const LinearWeight& mx, int k_max, Nvfp4Matrix* out, int64_t* n_inexact, double* worst_rel_err) {
  const int64_t n_out = mx.n_out, n_in = mx.n_in, groups = n_in / 32;
  const int m = k_max - 8;  // scale2 = 2^m puts the largest block scale at 2^8 = 256 <= 448
  out->scale2 = std::ldexp(1.0f, m);
  out->packed.resize(static_cast<size_t>(n_out * n_in / 2));
  out->scales.resize(static_cast<size_t>(n_out * n_in / 16));
  float vals[32];
  uint8_t q[16];
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* blk = mx.data + (o * groups + g) * 16;
      uint8_t* dst = out->packed.data() + o * n_in / 2 + g * 16;
      uint8_t* sc = out->scales.data() + o * (n_in / 16) + g * 2;
      const int d = static_cast<int>(mx.scales[o * groups + g]) - 127 - m;
      if (d >= -9) {  // 2^d is an E4M3 value (subnormals reach 2^-9): the same nibbles, exactly
        sc[0] = sc[1] = f32_to_e4m3_rne(std::ldexp(1.0f, d));
        std::copy(blk, blk + 16, dst);
        continue;
      }
      // below E4M3's range: quantize the block's values with a data-derived block scale, as ModelOpt falls back to
      mxfp4_decode_row_ref(blk, mx.scales + o * groups + g, 32, vals);
      double max_w = 0, max_err = 0;
      for (int h = 0; h < 2; ++h) {
        float bmax = 0;
        for (int i = 0; i < 16; ++i) bmax = std::max(bmax, std::fabs(vals[h * 16 + i]));
        sc[h] = nvfp4_block_scale(bmax, out->scale2);
        const float f = e4m3_to_f32(sc[h]) * out->scale2;
        block_sse(vals + h * 16, f, q);
        pack_block(q, dst + h * 8);
        for (int i = 0; i < 16; ++i) {
          max_w = std::max(max_w, std::fabs(static_cast<double>(vals[h * 16 + i])));
          max_err = std::max(max_err, std::fabs(static_cast<double>(vals[h * 16 + i]) - kE2m1Lut[q[i]] * f));
        }
      }
      if (max_err > 0) {
        ++*n_inexact;
        *worst_rel_err = std::max(*worst_rel_err, max_w > 0 ? max_err / max_w : 0.0);
      }
    }
  }
}

namespace {

struct Quantized {
  std::vector<uint8_t> packed, scales;  // in the on-disk layout
  float scale2 = 0;
};

float abs_max(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

void add_error(const float* w, const Nvfp4Matrix& q, int64_t n_out, int64_t n_in, double* err, double* ref) {
  std::vector<float> row(static_cast<size_t>(n_in));  // [n_in] decoded
  for (int64_t o = 0; o < n_out; ++o) {
    nvfp4_decode_row_ref(q.packed.data() + o * n_in / 2, q.scales.data() + o * n_in / 16, q.scale2, n_in, row.data());
    for (int64_t i = 0; i < n_in; ++i) {
      const double d = static_cast<double>(w[o * n_in + i]) - row[static_cast<size_t>(i)];
      *err += d * d;
      *ref += static_cast<double>(w[o * n_in + i]) * w[o * n_in + i];
    }
  }
}

void finish_report(TensorReport* r, double err, double ref) {
  r->rel_mse = ref > 0 ? err / ref : 0.0;
  r->snr_db = r->rel_mse > 0 ? -10.0 * std::log10(r->rel_mse) : INFINITY;
}

// a ModelOpt fake-quant checkpoint's 0-d `_amax` buffer (BF16 or F32), if the store has it.
std::optional<float> stored_amax(const TensorStore& st, const std::string& name) {
  const TensorView* t = st.find(name);
  if (t == nullptr || t->numel() != 1) return std::nullopt;
  if (t->dtype == DType::kBF16) return bf16_to_f32(*reinterpret_cast<const uint16_t*>(t->data));
  if (t->dtype == DType::kF32) return *reinterpret_cast<const float*>(t->data);
  return std::nullopt;
}

class Quantizer {
 public:
  Quantizer(const ModelWeights& m, const QuantizeOptions& opt, QuantizeReport* report) : m_(m), opt_(opt), report_(report) {}

  // the calibrated weight amax of a fake-quant input (q/k/v: the max of theirs, as ModelOpt's export fuses them).
  std::optional<float> weight_amax(const std::string& lpre, const std::string& proj) const {
    if (proj == "gate_up_proj" || proj == "down_proj") return stored_amax(m_.store, lpre + "mlp.experts." + proj + "_weight_quantizer._amax");
    if (proj == "o_proj") return stored_amax(m_.store, lpre + "self_attn.o_proj.weight_quantizer._amax");
    std::optional<float> a;
    for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
      auto v = stored_amax(m_.store, lpre + "self_attn." + p + ".weight_quantizer._amax");
      if (!v) return std::nullopt;
      a = std::max(a.value_or(0.0f), *v);
    }
    return a;
  }

  // attention projection `base` (e.g. model.layers.3.self_attn.q_proj): [n_out, n_in/2] + [n_out, n_in/16].
  Result<std::shared_ptr<Quantized>> linear(int64_t l, const std::string& proj, const std::string& base) {
    if (auto it = cache_.find(base); it != cache_.end()) return it->second;
    const LayerWeights& L = m_.layers[static_cast<size_t>(l)];
    const LinearWeight& w = proj == "q_proj" ? L.wq : proj == "k_proj" ? L.wk : proj == "v_proj" ? L.wv : L.wo;
    std::vector<float> f(static_cast<size_t>(w.n_out * w.n_in));  // [n_out, n_in]
    decode_weight_f32(w, f.data());
    float amax = abs_max(f);
    if (auto stored = weight_amax("model.layers." + std::to_string(l) + ".", proj)) {
      amax = *stored;
    } else if (proj != "o_proj") {  // q, k and v share one amax, as ModelOpt's export fuses them
      for (const LinearWeight* o : {&L.wq, &L.wk, &L.wv}) {
        std::vector<float> g(static_cast<size_t>(o->n_out * o->n_in));
        decode_weight_f32(*o, g.data());
        amax = std::max(amax, abs_max(g));
      }
    }
    Nvfp4Matrix q;
    if (opt_.method == QuantMethod::kMse) {
      OSS4_TRY(nvfp4_quantize_mse(f.data(), w.n_out, w.n_in, amax, &q, w.name));
    } else {
      q.packed.resize(static_cast<size_t>(w.n_out * w.n_in / 2));
      q.scales.resize(static_cast<size_t>(w.n_out * w.n_in / 16));
      OSS4_TRY(nvfp4_quantize_ref(f.data(), w.n_out, w.n_in, amax, q.packed.data(), q.scales.data(), &q.scale2, w.name));
    }
    TensorReport r;
    r.name = base + ".weight";
    r.n_blocks = w.n_out * w.n_in / 16;
    double err = 0, ref = 0;
    add_error(f.data(), q, w.n_out, w.n_in, &err, &ref);
    finish_report(&r, err, ref);
    report_->tensors.push_back(r);
    auto out = std::make_shared<Quantized>(Quantized{std::move(q.packed), std::move(q.scales), q.scale2});
    cache_[base] = out;
    return out;
  }

  // lm_head (--lm-head nvfp4): ModelOpt's rules on max |w|, whatever the method, in the export's row-major layout;
  // the same bytes as --lm-head nvfp4 makes at load.
  Result<std::shared_ptr<Quantized>> lm_head() {
    if (auto it = cache_.find("lm_head"); it != cache_.end()) return it->second;
    const LinearWeight& w = m_.lm_head;
    LmHeadNvfp4 q;
    ThreadPool pool(default_threads());
    OSS4_TRY(nvfp4_quantize_lm_head(w, /*in_major=*/false, pool, &q));
    TensorReport r;
    r.name = "lm_head.weight";
    r.n_blocks = w.n_out * w.n_in / 16;
    // the error in chunks of rows: the whole matrix in f32 would take 2.3 GB for gpt-oss
    const int64_t chunk = 1024, cb = w.n_in / 2, sb = w.n_in / 16;
    std::vector<float> f;  // [nr, n_in]
    Nvfp4Matrix part;      // rows [r0, r0 + nr) of q
    part.scale2 = q.scale2;
    double err = 0, ref = 0;
    for (int64_t r0 = 0; r0 < w.n_out; r0 += chunk) {
      const int64_t nr = std::min(chunk, w.n_out - r0);
      f.resize(static_cast<size_t>(nr * w.n_in));
      lm_head_rows_f32(w, r0, r0 + nr, f.data());
      part.packed.assign(q.packed.begin() + r0 * cb, q.packed.begin() + (r0 + nr) * cb);
      part.scales.assign(q.scales.begin() + r0 * sb, q.scales.begin() + (r0 + nr) * sb);
      add_error(f.data(), part, nr, w.n_in, &err, &ref);
    }
    finish_report(&r, err, ref);
    report_->tensors.push_back(r);
    auto out = std::make_shared<Quantized>(Quantized{std::move(q.packed), std::move(q.scales), q.scale2});
    cache_["lm_head"] = out;
    return out;
  }

  // experts `base` (model.layers.L.mlp.experts.gate_up_proj / down_proj): [E, n_in/2, n_out] + [E, n_in/16, n_out].
  Result<std::shared_ptr<Quantized>> experts(int64_t l, const std::string& proj, const std::string& base) {
    if (auto it = cache_.find(base); it != cache_.end()) return it->second;
    const LayerWeights& L = m_.layers[static_cast<size_t>(l)];
    const std::vector<LinearWeight>& ws = proj == "gate_up_proj" ? L.gate_up : L.down;
    const int64_t E = static_cast<int64_t>(ws.size()), n_out = ws[0].n_out, n_in = ws[0].n_in;
    const bool transcode = opt_.method == QuantMethod::kTranscode;
    if (transcode && ws[0].type != WeightType::kMxfp4) return error(base + ": --method transcode needs MXFP4 experts");
    const int n_threads = default_thread_count();
    // one [n_out, n_in] f32 buffer per worker
    std::vector<std::vector<float>> fbuf(static_cast<size_t>(n_threads), std::vector<float>(static_cast<size_t>(n_out * n_in)));
    // one amax (or one exponent max) over all experts of the layer, as ModelOpt's single expert quantizer has it
    float amax = 0;
    int k_max = -127;
    const std::optional<float> stored = transcode ? std::nullopt : weight_amax("model.layers." + std::to_string(l) + ".", proj);
    if (stored) {
      amax = *stored;
    } else if (transcode) {
      for (const auto& w : ws)
        for (int64_t i = 0; i < n_out * n_in / 32; ++i) k_max = std::max(k_max, static_cast<int>(w.scales[i]) - 127);
    } else {
      std::vector<float> part(static_cast<size_t>(E), 0.0f);
      OSS4_TRY(parallel_for(E, n_threads, [&](int64_t e, int t) {
        std::vector<float>& f = fbuf[static_cast<size_t>(t)];
        decode_weight_f32(ws[static_cast<size_t>(e)], f.data());
        part[static_cast<size_t>(e)] = abs_max(f);
        return ok_status();
      }));
      for (float a : part) amax = std::max(amax, a);
    }
    auto out = std::make_shared<Quantized>();
    out->packed.resize(static_cast<size_t>(E * n_in / 2 * n_out));
    out->scales.resize(static_cast<size_t>(E * n_in / 16 * n_out));
    TensorReport r;
    r.name = base;
    r.n_blocks = E * n_out * n_in / 16;
    struct PerExpert {
      double err = 0, ref = 0, worst = 0;
      int64_t inexact = 0;
      float scale2 = 0;
    };
    std::vector<PerExpert> pe(static_cast<size_t>(E));
    OSS4_TRY(parallel_for(E, n_threads, [&](int64_t e, int t) -> Status {
      const LinearWeight& w = ws[static_cast<size_t>(e)];
      std::vector<float>& f = fbuf[static_cast<size_t>(t)];
      decode_weight_f32(w, f.data());
      PerExpert& x = pe[static_cast<size_t>(e)];
      Nvfp4Matrix q;
      if (transcode) {
        mxfp4_transcode(w, k_max, &q, &x.inexact, &x.worst);
      } else if (opt_.method == QuantMethod::kMse) {
        OSS4_TRY(nvfp4_quantize_mse(f.data(), n_out, n_in, amax, &q, w.name));
      } else {
        q.packed.resize(static_cast<size_t>(n_out * n_in / 2));
        q.scales.resize(static_cast<size_t>(n_out * n_in / 16));
        OSS4_TRY(nvfp4_quantize_ref(f.data(), n_out, n_in, amax, q.packed.data(), q.scales.data(), &q.scale2, w.name));
      }
      x.scale2 = q.scale2;
      add_error(f.data(), q, n_out, n_in, &x.err, &x.ref);
      // ModelOpt's export transposes experts back to input-major: [in/2, out] bytes, [in/16, out] scales
      transpose_u8(q.packed.data(), n_out, n_in / 2, out->packed.data() + e * n_in / 2 * n_out);
      transpose_u8(q.scales.data(), n_out, n_in / 16, out->scales.data() + e * n_in / 16 * n_out);
      return ok_status();
    }));
    double err = 0, ref = 0;
    for (const PerExpert& x : pe) {
      err += x.err;
      ref += x.ref;
      r.n_inexact += x.inexact;
      r.worst_block_rel_err = std::max(r.worst_block_rel_err, x.worst);
      out->scale2 = x.scale2;
    }
    finish_report(&r, err, ref);
    report_->tensors.push_back(r);
    cache_[base] = out;
    return out;
  }

  void drop(const std::string& base) { cache_.erase(base); }

 private:
  const ModelWeights& m_;
  const QuantizeOptions& opt_;
  QuantizeReport* report_;
  std::map<std::string, std::shared_ptr<Quantized>> cache_;  // base -> result, until its last tensor is written
};

Status write_bytes(SafetensorsWriter& w, const void* p, size_t n) { return w.write(p, n); }

// splits "model.layers.12.self_attn.q_proj.weight" into layer 12 and the rest after the layer prefix.
bool layer_of(const std::string& name, int64_t* layer, std::string* rest) {
  const std::string pre = "model.layers.";
  if (name.rfind(pre, 0) != 0) return false;
  size_t dot = name.find('.', pre.size());
  if (dot == std::string::npos) return false;
  *layer = std::stoll(name.substr(pre.size(), dot - pre.size()));
  *rest = name.substr(dot + 1);
  return true;
}

json quant_config_json(const QuantizeOptions& opt, bool with_inputs) {
  json ignore = {"model.embed_tokens", "model.layers.*.mlp.router"};
  if (!opt.lm_head_nvfp4) ignore.insert(ignore.begin(), "lm_head");
  if (opt.scope == QuantScope::kExperts) ignore.push_back("model.layers.*.self_attn*");
  const json fp4 = {{"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
  json group = {{"weights", fp4}, {"targets", {"Linear"}}};
  if (with_inputs) group["input_activations"] = fp4;
  return {{"config_groups", {{"group_0", group}}},
          {"ignore", ignore},
          {"quant_algo", with_inputs ? "NVFP4" : "W4A16_NVFP4"},
          {"producer", {{"name", "oss4"}, {"version", "0.1.0"}}},
          {"quant_method", "modelopt"}};
}

Status write_configs(const QuantizeOptions& opt, bool with_inputs, const std::string& tmp) {
  OSS4_ASSIGN_OR_RETURN(std::string text, read_text_file(opt.in_dir + "/config.json"));
  auto parsed = parse_json(text);
  if (!parsed.ok()) return parsed.status().with_context(opt.in_dir + "/config.json");
  json cfg = std::move(parsed.value());
  cfg["quantization_config"] = quant_config_json(opt, with_inputs);
  std::string out = cfg.dump(2) + "\n";
  OSS4_TRY(write_file_atomic(tmp + "/config.json", out.data(), out.size()));
  json hf = {{"producer", {{"name", "oss4"}, {"version", "0.1.0"}}},
             {"quantization",
              {{"quant_algo", with_inputs ? "NVFP4" : "W4A16_NVFP4"}, {"kv_cache_quant_algo", nullptr}, {"group_size", 16}, {"exclude_modules", cfg["quantization_config"]["ignore"]}}}};
  out = hf.dump(2) + "\n";
  OSS4_TRY(write_file_atomic(tmp + "/hf_quant_config.json", out.data(), out.size()));
  for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"}) {
    if (file_exists(opt.in_dir + "/" + f)) OSS4_TRY(copy_file_atomic(opt.in_dir + "/" + f, tmp + "/" + f));
  }
  return ok_status();
}

// compressed-tensors nvfp4-pack-quantized -> ModelOpt's export layout, without re-quantizing: the same codes and block
// scales, the reciprocal global scales inverted, llm-compressor's per-expert Linears gathered into the input-major
// [E, in/2, out] expert tensors (gate/up interleaved as loaded).
Status repack_compressed_tensors(const QuantizeOptions& opt, ModelWeights& m, const ProgressFn& progress, QuantizeReport* report) {
  const ModelConfig& c = m.cfg;
  const int64_t E = c.n_experts;
  std::vector<TensorPlan> plan;
  bool with_inputs = true;
  auto f32_scalar = [](const std::string& name, float v) {
    return TensorPlan{name, DType::kF32, {}, [v](SafetensorsWriter& w) { return write_bytes(w, &v, 4); }};
  };
  auto scalar_of = [&](const std::string& name) -> std::optional<float> {
    const TensorView* t = m.store.find(name);
    if (t == nullptr || t->dtype != DType::kF32 || t->numel() != 1) return std::nullopt;
    return *reinterpret_cast<const float*>(t->data);
  };
  for (const std::string& name : m.store.names()) {
    const TensorView* src = m.store.find(name);
    int64_t l = -1;
    std::string rest;
    const bool in_layer = layer_of(name, &l, &rest);
    const std::string lpre = in_layer ? "model.layers." + std::to_string(l) + "." : "";
    auto ends = [&](const char* suffix) {
      const size_t n = std::strlen(suffix);
      return name.size() > n && name.compare(name.size() - n, n, suffix) == 0;
    };
    if (in_layer && rest.rfind("mlp.experts.experts.", 0) == 0) {
      if (rest != "mlp.experts.experts.0.gate_proj.weight_packed") continue;  // the layer's experts go out at once
      const LayerWeights& L = m.layers[static_cast<size_t>(l)];
      for (const char* proj : {"gate_up_proj", "down_proj"}) {
        const std::vector<LinearWeight>& ws = std::string(proj) == "gate_up_proj" ? L.gate_up : L.down;
        const int64_t n_out = ws[0].n_out, n_in = ws[0].n_in;
        const std::string base = lpre + "mlp.experts." + proj;
        plan.push_back({base, DType::kU8, {E, n_in / 2, n_out}, [&ws, n_out, n_in](SafetensorsWriter& w) {
                          std::vector<uint8_t> t(static_cast<size_t>(n_in / 2 * n_out));  // [in/2, out] one expert
                          for (const LinearWeight& x : ws) {
                            transpose_u8(x.data, n_out, n_in / 2, t.data());
                            OSS4_TRY(write_bytes(w, t.data(), t.size()));
                          }
                          return ok_status();
                        }});
        plan.push_back({base + "_weight_scale", DType::kF8E4M3, {E, n_in / 16, n_out}, [&ws, n_out, n_in](SafetensorsWriter& w) {
                          std::vector<uint8_t> t(static_cast<size_t>(n_in / 16 * n_out));  // [in/16, out] one expert
                          for (const LinearWeight& x : ws) {
                            transpose_u8(x.scales, n_out, n_in / 16, t.data());
                            OSS4_TRY(write_bytes(w, t.data(), t.size()));
                          }
                          return ok_status();
                        }});
        bool same = true;
        for (const LinearWeight& x : ws) same = same && x.scale2 == ws[0].scale2;
        if (same) {
          plan.push_back(f32_scalar(base + "_weight_scale_2", ws[0].scale2));
        } else {  // one per expert: oss4 and ModelOpt-layout loaders that broadcast per expert read [E]
          plan.push_back({base + "_weight_scale_2", DType::kF32, {E}, [&ws](SafetensorsWriter& w) {
                            for (const LinearWeight& x : ws) OSS4_TRY(write_bytes(w, &x.scale2, 4));
                            return ok_status();
                          }});
        }
        // one input scale per projection (ModelOpt's experts share one quantizer): the largest amax, i.e. the
        // smallest of compressed-tensors' reciprocal input_global_scale
        std::optional<float> in_gs;
        for (int64_t e = 0; e < E; ++e) {
          for (const char* part : std::string(proj) == "gate_up_proj" ? std::vector<const char*>{"gate_proj", "up_proj"} : std::vector<const char*>{"down_proj"}) {
            auto v = scalar_of(lpre + "mlp.experts.experts." + std::to_string(e) + "." + part + ".input_global_scale");
            if (!v) {
              with_inputs = false;
            } else {
              in_gs = std::min(in_gs.value_or(*v), *v);
            }
          }
        }
        if (with_inputs && in_gs) plan.push_back(f32_scalar(base + "_input_scale", 1.0f / *in_gs));
        const std::vector<float>& bias = std::string(proj) == "gate_up_proj" ? L.gate_up_bias : L.down_bias;
        plan.push_back({base + "_bias", DType::kBF16, {E, n_out}, [&bias](SafetensorsWriter& w) {
                          std::vector<uint16_t> b(bias.size());  // the biases were BF16: exact both ways
                          for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16(bias[i]);
                          return write_bytes(w, b.data(), b.size() * 2);
                        }});
      }
      continue;
    }
    if (ends(".weight_packed")) {
      const std::string base = name.substr(0, name.size() - 14);
      plan.push_back({base + ".weight", DType::kU8, src->shape, [src](SafetensorsWriter& w) { return write_bytes(w, src->data, src->nbytes); }});
      continue;
    }
    if (ends(".weight_global_scale")) {
      auto v = scalar_of(name);
      if (!v || !(*v > 0)) return error(*src->path + ": tensor '" + name + "' is not a positive F32 scalar");
      plan.push_back(f32_scalar(name.substr(0, name.size() - 20) + ".weight_scale_2", 1.0f / *v));
      continue;
    }
    if (ends(".input_global_scale")) {
      auto v = scalar_of(name);
      if (!v || !(*v > 0)) return error(*src->path + ": tensor '" + name + "' is not a positive F32 scalar");
      plan.push_back(f32_scalar(name.substr(0, name.size() - 19) + ".input_scale", 1.0f / *v));
      continue;
    }
    plan.push_back({name, src->dtype, src->shape, [src](SafetensorsWriter& w) { return write_bytes(w, src->data, src->nbytes); }});
  }
  // attention input scales came along one by one: keep them only if every quantized linear had one
  for (const auto& t : plan)
    if (t.name.size() > 12 && t.name.compare(t.name.size() - 12, 12, ".weight_scale") == 0) {
      const std::string base = t.name.substr(0, t.name.size() - 13);
      bool found = false;
      for (const auto& u : plan) found = found || u.name == base + ".input_scale";
      with_inputs = with_inputs && found;
    }
  if (!with_inputs) {
    plan.erase(std::remove_if(plan.begin(), plan.end(), [](const TensorPlan& t) {
                 return t.name.find("input_scale") != std::string::npos;
               }),
               plan.end());
  }
  report->amax_source = "compressed-tensors global scales (repacked, not re-quantized)";
  report->input_scales = with_inputs ? "compressed-tensors input_global_scale (inverted)" : "none (weight-only W4A16_NVFP4)";
  for (const auto& t : plan) report->bytes_out += static_cast<int64_t>(t.bytes());
  report->bytes_in = static_cast<int64_t>(m.store.total_bytes());
  return write_directory_atomic(opt.out_dir, [&](const std::string& tmp) {
    OSS4_TRY(write_checkpoint_tensors(tmp, plan, 4800000000ull, progress));
    return write_configs(opt, with_inputs, tmp);
  });
}

}  // namespace

Status quantize_checkpoint(const QuantizeOptions& opt, const ProgressFn& progress, QuantizeReport* report) {
  LoadOptions lo;
  lo.quantize_fakequant = false;  // a ModelOpt fake-quant input is quantized here, from its BF16 weights and _amax
  OSS4_ASSIGN_OR_RETURN(ModelWeights m, load_model(opt.in_dir, nullptr, lo));
  if (m.checkpoint_kind == CheckpointKind::kNvfp4CompressedTensors) {
    if (opt.lm_head_nvfp4)
      return error(opt.in_dir + ": --lm-head nvfp4: a compressed-tensors checkpoint is repacked as it is, not requantized; run it with --lm-head nvfp4 instead");
    return repack_compressed_tensors(opt, m, progress, report);
  }
  if (checkpoint_kind_is_nvfp4(m.checkpoint_kind))
    return error(opt.in_dir + ": is already NVFP4 (" + checkpoint_kind_name(m.checkpoint_kind) + ")");
  const ModelConfig& c = m.cfg;
  if (c.n_embd % 16 != 0 || c.n_ff % 16 != 0 || c.q_dim() % 16 != 0)
    return error(opt.in_dir + ": NVFP4 needs hidden_size, intermediate_size and the attention width divisible by 16");
  Quantizer qz(m, opt, report);
  report->amax_source = qz.weight_amax("model.layers.0.", "gate_up_proj") ? "ModelOpt _amax buffers" : "data (max |w|)";
  // input amax per layer: calibrated here, or a fake-quant input's stored buffers
  std::vector<LayerInputAmax> input_amax;
  if (!opt.calibration.empty()) {
    // calibration runs the model as it is stored (f32 activations, the stored lm_head), on the default device
    OSS4_ASSIGN_OR_RETURN(std::unique_ptr<Forward> fwd, make_forward(m, BackendOptions{}));
    OSS4_ASSIGN_OR_RETURN(input_amax, calibrate_input_amax(*fwd, opt.calibration));
    report->input_scales = "calibrated on " + std::to_string(opt.calibration.size()) + " prompts";
  } else {
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      auto q = stored_amax(m.store, p + "self_attn.q_proj.input_quantizer._amax");
      auto k = stored_amax(m.store, p + "self_attn.k_proj.input_quantizer._amax");
      auto v = stored_amax(m.store, p + "self_attn.v_proj.input_quantizer._amax");
      auto o = stored_amax(m.store, p + "self_attn.o_proj.input_quantizer._amax");
      auto gu = stored_amax(m.store, p + "mlp.experts.gate_up_proj_input_quantizer._amax");
      auto dn = stored_amax(m.store, p + "mlp.experts.down_proj_input_quantizer._amax");
      if (!(q && k && v && o && gu && dn)) {
        input_amax.clear();
        break;
      }
      input_amax.push_back({std::max({*q, *k, *v}), *o, *gu, *dn});
    }
    report->input_scales = input_amax.empty() ? "none (weight-only W4A16_NVFP4)" : "ModelOpt _amax buffers";
  }
  auto input_scale_plan = [&](const std::string& name, int64_t l, const std::string& proj) {
    const LayerInputAmax& a = input_amax[static_cast<size_t>(l)];
    const float amax = proj == "gate_up_proj" ? a.gate_up : proj == "down_proj" ? a.down : proj == "o_proj" ? a.o : a.qkv;
    const float scale = nvfp4_input_scale(amax);
    return TensorPlan{name, DType::kF32, {}, [scale](SafetensorsWriter& w) { return write_bytes(w, &scale, 4); }};
  };
  if (opt.lm_head_nvfp4) {
    if (!m.store.has("lm_head.weight"))
      return error(opt.in_dir + ": --lm-head nvfp4: the lm_head is tied to the embedding (no lm_head.weight), which stays as it is");
    if (!input_amax.empty())
      return error(opt.in_dir + ": --lm-head nvfp4 writes a weight-only lm_head, and this export has input scales (" + report->input_scales +
                   "); quantize without calibration, or leave the lm_head in BF16");
  }
  std::vector<TensorPlan> plan;
  const bool attn = opt.scope == QuantScope::kAll;
  for (const std::string& name : m.store.names()) {
    const TensorView* src = m.store.find(name);
    int64_t l = -1;
    std::string rest;
    const bool in_layer = layer_of(name, &l, &rest);
    const std::string lpre = in_layer ? "model.layers." + std::to_string(l) + "." : "";
    if (name.find("_quantizer.") != std::string::npos) continue;  // ModelOpt's buffers: consumed, as its export does
    // attention projections
    if (attn && in_layer && rest.size() > 16 && rest.rfind("self_attn.", 0) == 0 && rest.compare(rest.size() - 7, 7, ".weight") == 0) {
      const std::string proj = rest.substr(10, rest.size() - 17);  // q_proj ...
      const std::string base = lpre + "self_attn." + proj;
      const int64_t n_out = proj == "o_proj" ? c.n_embd : proj == "q_proj" ? c.q_dim() : c.kv_dim();
      const int64_t n_in = proj == "o_proj" ? c.q_dim() : c.n_embd;
      plan.push_back({base + ".weight", DType::kU8, {n_out, n_in / 2}, [&qz, l, proj, base](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.linear(l, proj, base));
                        return write_bytes(w, q->packed.data(), q->packed.size());
                      }});
      plan.push_back({base + ".weight_scale", DType::kF8E4M3, {n_out, n_in / 16}, [&qz, l, proj, base](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.linear(l, proj, base));
                        return write_bytes(w, q->scales.data(), q->scales.size());
                      }});
      plan.push_back({base + ".weight_scale_2", DType::kF32, {}, [&qz, &m, l, proj, base, src](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.linear(l, proj, base));
                        OSS4_TRY(write_bytes(w, &q->scale2, 4));
                        qz.drop(base);
                        m.store.release(*src);
                        return ok_status();
                      }});
      if (!input_amax.empty()) plan.push_back(input_scale_plan(base + ".input_scale", l, proj));
      continue;
    }
    // experts: MXFP4 (_blocks + _scales) or BF16 [E, in, out] in, ModelOpt's export layout out
    for (const char* proj : {"gate_up_proj", "down_proj"}) {
      const std::string base_rest = std::string("mlp.experts.") + proj;
      if (!in_layer || !(rest == base_rest || rest == base_rest + "_blocks" || rest == base_rest + "_scales")) continue;
      if (rest == base_rest + "_scales") {
        rest.clear();  // written with the blocks
        break;
      }
      const std::string base = lpre + base_rest;
      const int64_t E = c.n_experts, n_out = std::string(proj) == "gate_up_proj" ? 2 * c.n_ff : c.n_embd;
      const int64_t n_in = std::string(proj) == "gate_up_proj" ? c.n_embd : c.n_ff;
      const std::string p = proj;
      plan.push_back({base, DType::kU8, {E, n_in / 2, n_out}, [&qz, l, p, base](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.experts(l, p, base));
                        return write_bytes(w, q->packed.data(), q->packed.size());
                      }});
      plan.push_back({base + "_weight_scale", DType::kF8E4M3, {E, n_in / 16, n_out}, [&qz, l, p, base](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.experts(l, p, base));
                        return write_bytes(w, q->scales.data(), q->scales.size());
                      }});
      plan.push_back({base + "_weight_scale_2", DType::kF32, {}, [&qz, &m, l, p, base](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.experts(l, p, base));
                        OSS4_TRY(write_bytes(w, &q->scale2, 4));
                        qz.drop(base);
                        for (const std::string& n : {base, base + "_blocks", base + "_scales"})
                          if (const TensorView* t = m.store.find(n)) m.store.release(*t);
                        return ok_status();
                      }});
      if (!input_amax.empty()) plan.push_back(input_scale_plan(base + "_input_scale", l, p));
      rest.clear();
      break;
    }
    if (in_layer && rest.empty()) continue;
    if (opt.lm_head_nvfp4 && name == "lm_head.weight") {
      const int64_t V = c.n_vocab, H = c.n_embd;
      plan.push_back({name, DType::kU8, {V, H / 2}, [&qz](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.lm_head());
                        return write_bytes(w, q->packed.data(), q->packed.size());
                      }});
      plan.push_back({"lm_head.weight_scale", DType::kF8E4M3, {V, H / 16}, [&qz](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.lm_head());
                        return write_bytes(w, q->scales.data(), q->scales.size());
                      }});
      plan.push_back({"lm_head.weight_scale_2", DType::kF32, {}, [&qz, &m, src](SafetensorsWriter& w) {
                        OSS4_ASSIGN_OR_RETURN(auto q, qz.lm_head());
                        OSS4_TRY(write_bytes(w, &q->scale2, 4));
                        qz.drop("lm_head");
                        m.store.release(*src);
                        return ok_status();
                      }});
      continue;
    }
    // everything else as it is (router, embeddings, lm_head, norms, biases, sinks)
    plan.push_back({name, src->dtype, src->shape, [src, &m](SafetensorsWriter& w) {
                      OSS4_TRY(write_bytes(w, src->data, src->nbytes));
                      m.store.release(*src);  // copied: its pages need not stay in this process
                      return ok_status();
                    }});
  }
  for (const auto& t : plan) report->bytes_out += static_cast<int64_t>(t.bytes());
  report->bytes_in = static_cast<int64_t>(m.store.total_bytes());
  return write_directory_atomic(opt.out_dir, [&](const std::string& tmp) {
    OSS4_TRY(write_checkpoint_tensors(tmp, plan, 4800000000ull, progress));
    return write_configs(opt, !input_amax.empty(), tmp);
  });
}

}  // namespace oss4
