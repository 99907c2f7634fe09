#include "synth/synth.h"


#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <tuple>
#include <vector>

#include "core/mapped_file.h"
#include "format/checkpoint_writer.h"
#include "numeric/float_formats.h"
#include "numeric/mxfp4.h"
#include "text/tokenizer.h"

namespace oss4 {

namespace {

// splitmix64 seeding + xoshiro256** stream: one independent stream per tensor name.
class Rng {
 public:
  Rng(uint64_t seed, const std::string& name) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
    for (auto& s : s_) s = splitmix(h);
  }
  uint64_t next() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // cheap near-normal variate: sum of four 16-bit uniforms, standardized (Irwin-Hall, variance matched).
  float normal() {
    const uint64_t r = next();
    float s = 0.0f;
    for (int i = 0; i < 4; ++i) s += static_cast<float>((r >> (16 * i)) & 0xffff) * (1.0f / 65536.0f);
    return (s - 2.0f) * 1.7320508f;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

enum class Gen { kNormal, kMxfp4Blocks, kMxfp4Scales, kExpertsBf16 };

struct Plan {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  Gen gen;
  float mean = 0.0f, std = 0.0f;
  std::string base;  // experts: "model.layers.L.mlp.experts.gate_up_proj"
};

// E2M1 magnitude codes 0..7 drawn as trained weights fall inside a block scaled to its max (most small).
constexpr double kMagCdf[8] = {0.16, 0.36, 0.54, 0.68, 0.82, 0.92, 0.97, 1.0};

// a byte of randomness -> one E2M1 nibble: 7 bits pick the magnitude through the CDF above, 1 bit the sign.
struct NibbleTable {
  uint8_t mag[128];
  NibbleTable() {
    for (int k = 0; k < 128; ++k) {
      uint8_t m = 0;
      while (m < 7 && (k + 0.5) / 128.0 >= kMagCdf[m]) ++m;
      mag[k] = m;
    }
  }
};
const NibbleTable kNibbles;

inline uint8_t nibble_from_byte(uint64_t b) { return static_cast<uint8_t>(kNibbles.mag[b & 127] | ((b >> 4) & 8)); }

// E8M0 scales of [n_rows, n_groups]: a per-row exponent around 2^-8 and per-block spread, as trained experts show.
void gen_scales(Rng& r, int64_t n_rows, int64_t n_groups, uint8_t* out) {
  for (int64_t row = 0; row < n_rows; ++row) {
    const int base = 127 - 8 + static_cast<int>(std::lround(r.normal() * 0.7f));
    for (int64_t g = 0; g < n_groups; ++g) {
      const double u = r.uniform();
      const int jitter = u < 0.1 ? -2 : u < 0.35 ? -1 : u < 0.85 ? 0 : 1;
      out[row * n_groups + g] = static_cast<uint8_t>(std::clamp(base + jitter, 100, 140));
    }
  }
}

void gen_blocks(Rng& r, size_t n_bytes, uint8_t* out) {
  for (size_t i = 0; i < n_bytes; i += 4) {
    uint64_t bits = r.next();  // 8 random bytes -> 4 packed bytes (8 nibbles)
    for (size_t j = 0; j < 4 && i + j < n_bytes; ++j, bits >>= 16)
      out[i + j] = static_cast<uint8_t>(nibble_from_byte(bits & 0xff) | (nibble_from_byte((bits >> 8) & 0xff) << 4));
  }
}

std::vector<Plan> plan_tensors(const ModelConfig& c, bool mxfp4) {
  std::vector<Plan> p;
  const int64_t H = c.n_embd, E = c.n_experts, F = c.n_ff;
  auto normal = [&](const std::string& name, std::vector<int64_t> shape, float mean, float std) {
    p.push_back({name, DType::kBF16, std::move(shape), Gen::kNormal, mean, std, ""});
  };
  normal("model.embed_tokens.weight", {c.n_vocab, H}, 0.0f, 0.02f);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    normal(pre + "input_layernorm.weight", {H}, 1.0f, 0.05f);
    normal(pre + "self_attn.q_proj.weight", {c.q_dim(), H}, 0.0f, 0.02f);
    normal(pre + "self_attn.q_proj.bias", {c.q_dim()}, 0.0f, 0.02f);
    normal(pre + "self_attn.k_proj.weight", {c.kv_dim(), H}, 0.0f, 0.02f);
    normal(pre + "self_attn.k_proj.bias", {c.kv_dim()}, 0.0f, 0.02f);
    normal(pre + "self_attn.v_proj.weight", {c.kv_dim(), H}, 0.0f, 0.02f);
    normal(pre + "self_attn.v_proj.bias", {c.kv_dim()}, 0.0f, 0.02f);
    normal(pre + "self_attn.o_proj.weight", {H, c.q_dim()}, 0.0f, 0.02f);
    normal(pre + "self_attn.o_proj.bias", {H}, 0.0f, 0.02f);
    normal(pre + "self_attn.sinks", {c.n_heads}, 0.0f, 1.0f);
    normal(pre + "post_attention_layernorm.weight", {H}, 1.0f, 0.05f);
    normal(pre + "mlp.router.weight", {E, H}, 0.0f, 0.05f);
    normal(pre + "mlp.router.bias", {E}, 0.0f, 0.05f);
    for (const auto& [proj, n_out, n_in] : {std::tuple<std::string, int64_t, int64_t>{"gate_up_proj", 2 * F, H}, {"down_proj", H, F}}) {
      const std::string base = pre + "mlp.experts." + proj;
      if (mxfp4) {
        p.push_back({base + "_blocks", DType::kU8, {E, n_out, n_in / 32, 16}, Gen::kMxfp4Blocks, 0, 0, base});
        p.push_back({base + "_scales", DType::kU8, {E, n_out, n_in / 32}, Gen::kMxfp4Scales, 0, 0, base});
      } else {
        p.push_back({base, DType::kBF16, {E, n_in, n_out}, Gen::kExpertsBf16, 0, 0, base});
      }
      normal(base + "_bias", {E, n_out}, 0.0f, 0.01f);
    }
  }
  normal("model.norm.weight", {H}, 1.0f, 0.05f);
  if (!c.tie_word_embeddings) normal("lm_head.weight", {c.n_vocab, H}, 0.0f, 0.02f);
  return p;
}

Status write_tensor(const Plan& t, uint64_t seed, SafetensorsWriter& w) {
  switch (t.gen) {
    case Gen::kNormal: {
      Rng r(seed, t.name);
      const uint64_t n = static_cast<uint64_t>(std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<>()));
      std::vector<uint16_t> buf(1 << 20);  // [<=1M] bf16 chunk
      for (uint64_t i = 0; i < n;) {
        const size_t m = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - i));
        for (size_t j = 0; j < m; ++j) buf[j] = f32_to_bf16(t.mean + t.std * r.normal());
        OSS4_TRY(w.write(buf.data(), m * 2));
        i += m;
      }
      return ok_status();
    }
    case Gen::kMxfp4Blocks:
    case Gen::kMxfp4Scales: {
      const int64_t E = t.shape[0], rows = t.shape[1], groups = t.shape[2];
      Rng r(seed, t.gen == Gen::kMxfp4Blocks ? t.base + "_blocks" : t.base + "_scales");
      const size_t per = static_cast<size_t>(rows * groups * (t.gen == Gen::kMxfp4Blocks ? 16 : 1));
      std::vector<uint8_t> buf(per);  // one expert's blocks or scales
      for (int64_t e = 0; e < E; ++e) {
        if (t.gen == Gen::kMxfp4Blocks) {
          gen_blocks(r, per, buf.data());
        } else {
          gen_scales(r, rows, groups, buf.data());
        }
        OSS4_TRY(w.write(buf.data(), per));
      }
      return ok_status();
    }
    case Gen::kExpertsBf16: {
      // the same draws as the MXFP4 layout, decoded and stored input-major [E, n_in, n_out].
      const int64_t E = t.shape[0], n_in = t.shape[1], n_out = t.shape[2], groups = n_in / 32;
      Rng rb(seed, t.base + "_blocks"), rs(seed, t.base + "_scales");
      std::vector<uint8_t> blocks(static_cast<size_t>(n_out * groups * 16)), scales(static_cast<size_t>(n_out * groups));
      std::vector<float> row(static_cast<size_t>(n_in));               // [n_in] one decoded output row
      std::vector<uint16_t> out(static_cast<size_t>(n_in * n_out));    // [n_in, n_out] bf16
      for (int64_t e = 0; e < E; ++e) {
        gen_blocks(rb, blocks.size(), blocks.data());
        gen_scales(rs, n_out, groups, scales.data());
        for (int64_t o = 0; o < n_out; ++o) {
          mxfp4_decode_row_ref(blocks.data() + o * groups * 16, scales.data() + o * groups, n_in, row.data());
          for (int64_t i = 0; i < n_in; ++i) out[static_cast<size_t>(i * n_out + o)] = f32_to_bf16(row[static_cast<size_t>(i)]);
        }
        OSS4_TRY(w.write(out.data(), out.size() * 2));
      }
      return ok_status();
    }
  }
  return ok_status();
}

Status write_all(const SynthOptions& opt, const std::string& tmp, const ProgressFn& progress) {
  const std::vector<Plan> plan = plan_tensors(opt.cfg, opt.mxfp4);
  std::vector<TensorPlan> tensors;
  for (const Plan& t : plan) {
    tensors.push_back({t.name, t.dtype, t.shape, [&t, &opt](SafetensorsWriter& w) { return write_tensor(t, opt.seed, w); }});
  }
  OSS4_TRY(write_checkpoint_tensors(tmp, tensors, opt.shard_bytes, progress));
  std::string cfg = model_config_to_json(opt.cfg, opt.mxfp4);
  OSS4_TRY(write_file_atomic(tmp + "/config.json", cfg.data(), cfg.size()));
  std::string gen = generation_config_to_json(opt.cfg);
  OSS4_TRY(write_file_atomic(tmp + "/generation_config.json", gen.data(), gen.size()));
  if (!opt.tokenizer_path.empty()) {
    OSS4_ASSIGN_OR_RETURN(Tokenizer tok, load_tokenizer(opt.tokenizer_path));
    // the HF tokenizer.json names ids up to <|endofprompt|> (200018); a smaller test vocabulary gets none.
    if (opt.cfg.n_vocab > 200018) OSS4_TRY(write_hf_tokenizer_files(tok, tmp));
  }
  return ok_status();
}

}  // namespace

Status synth_checkpoint(const SynthOptions& opt, const ProgressFn& progress) {
  if (opt.mxfp4 && (opt.cfg.n_embd % 32 != 0 || opt.cfg.n_ff % 32 != 0))
    return error("MXFP4 experts need hidden_size and intermediate_size divisible by 32");
  return write_directory_atomic(opt.out_dir, [&](const std::string& tmp) { return write_all(opt, tmp, progress); });
}

}  // namespace oss4
