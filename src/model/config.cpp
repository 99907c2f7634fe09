#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "format/json_read.h"

namespace oss4 {

using json = nlohmann::json;

namespace {

Status get_int(const json& j, const char* key, int64_t* out, bool required, int64_t min_value) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return error(std::string("missing '") + key + "'");
    return ok_status();
  }
  if (!it->is_number_integer()) return error(std::string("'") + key + "' must be an integer, got " + it->dump());
  int64_t v = it->get<int64_t>();
  if (v < min_value) return error(std::string("'") + key + "' = " + std::to_string(v) + " must be >= " + std::to_string(min_value));
  *out = v;
  return ok_status();
}

// an optional string field: absent or null leaves *out as it is; any other non-string is an error.
Status get_string(const json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ok_status();
  if (!it->is_string()) return error(std::string("'") + key + "' must be a string, got " + it->dump());
  *out = it->get<std::string>();
  return ok_status();
}

Status get_num(const json& j, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ok_status();
  if (!it->is_number()) return error(std::string("'") + key + "' must be a number, got " + it->dump());
  double v = it->get<double>();
  if (!std::isfinite(v)) return error(std::string("'") + key + "' is not finite");
  *out = v;
  return ok_status();
}

Status get_token_ids(const json& j, const char* key, std::vector<int64_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ok_status();
  std::vector<int64_t> ids;
  if (it->is_number_integer()) {
    ids.push_back(it->get<int64_t>());
  } else if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) return error(std::string("'") + key + "' must hold integers");
      ids.push_back(v.get<int64_t>());
    }
  } else {
    return error(std::string("'") + key + "' must be an integer or a list of integers");
  }
  *out = ids;
  return ok_status();
}

Status parse_rope(const json& j, ModelConfig* cfg) {
  OSS4_TRY(get_num(j, "rope_theta", &cfg->rope.theta));
  const json* rs = nullptr;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {  // transformers v5 says rope_parameters
    auto it = j.find(key);
    if (it != j.end() && !it->is_null()) {
      if (!it->is_object()) return error(std::string("'") + key + "' must be an object");
      rs = &*it;
      break;
    }
  }
  if (rs != nullptr) {
    OSS4_TRY(get_num(*rs, "rope_theta", &cfg->rope.theta));
    std::string type = "default";
    for (const char* key : {"rope_type", "type"}) {
      auto it = rs->find(key);
      if (it != rs->end() && it->is_string()) {
        type = it->get<std::string>();
        break;
      }
    }
    if (type == "yarn") {
      OSS4_TRY(get_num(*rs, "factor", &cfg->rope.factor));
      OSS4_TRY(get_num(*rs, "beta_fast", &cfg->rope.beta_fast));
      OSS4_TRY(get_num(*rs, "beta_slow", &cfg->rope.beta_slow));
      OSS4_TRY(get_int(*rs, "original_max_position_embeddings", &cfg->rope.original_max_position_embeddings, false, 1));
      // transformers truncates the correction range when the key is absent; the released config says false.
      cfg->rope.truncate = true;
      auto t = rs->find("truncate");
      if (t != rs->end() && !t->is_null()) {
        if (!t->is_boolean()) return error("rope 'truncate' must be a boolean");
        cfg->rope.truncate = t->get<bool>();
      }
      if (!(cfg->rope.factor >= 1.0 && cfg->rope.factor <= 1e6))
        return error("rope 'factor' = " + std::to_string(cfg->rope.factor) + " must be in [1, 1e6]");
      if (!(cfg->rope.beta_fast > 0 && cfg->rope.beta_fast <= 1e6) || !(cfg->rope.beta_slow > 0 && cfg->rope.beta_slow <= 1e6))
        return error("rope 'beta_fast' and 'beta_slow' must be in (0, 1e6]");
      cfg->rope.yarn = cfg->rope.factor > 1.0;
    } else if (type != "default") {
      return error("unsupported rope_type '" + type + "' (gpt-oss uses yarn)");
    }
  }
  // the tables are float: a base past 1e30 (real checkpoints use 1e4..1e6) would not survive the conversion.
  if (!(cfg->rope.theta > 1.0 && cfg->rope.theta <= 1e30)) return error("'rope_theta' must be in (1, 1e30]");
  return ok_status();
}

Status parse_config_json(const json& j, ModelConfig* cfg) {
  if (!j.is_object()) return error("not a JSON object");
  auto mt = j.find("model_type");
  if (mt != j.end() && mt->is_string() && mt->get<std::string>() != "gpt_oss")
    return error("model_type is '" + mt->get<std::string>() + "', expected 'gpt_oss'");
  OSS4_TRY(get_int(j, "num_hidden_layers", &cfg->n_layers, true, 1));
  OSS4_TRY(get_int(j, "hidden_size", &cfg->n_embd, true, 1));
  OSS4_TRY(get_int(j, "num_attention_heads", &cfg->n_heads, true, 1));
  OSS4_TRY(get_int(j, "num_key_value_heads", &cfg->n_kv_heads, true, 1));
  OSS4_TRY(get_int(j, "intermediate_size", &cfg->n_ff, true, 1));
  OSS4_TRY(get_int(j, "vocab_size", &cfg->n_vocab, true, 1));
  cfg->n_experts = 0;
  OSS4_TRY(get_int(j, "num_local_experts", &cfg->n_experts, false, 1));
  if (cfg->n_experts == 0) OSS4_TRY(get_int(j, "num_experts", &cfg->n_experts, true, 1));
  cfg->n_experts_used = 0;
  OSS4_TRY(get_int(j, "num_experts_per_tok", &cfg->n_experts_used, false, 1));
  if (cfg->n_experts_used == 0) OSS4_TRY(get_int(j, "experts_per_token", &cfg->n_experts_used, true, 1));
  cfg->head_dim = cfg->n_embd / cfg->n_heads;
  OSS4_TRY(get_int(j, "head_dim", &cfg->head_dim, false, 2));
  OSS4_TRY(get_int(j, "sliding_window", &cfg->sliding_window, false, 0));
  OSS4_TRY(get_int(j, "max_position_embeddings", &cfg->max_position_embeddings, false, 1));
  OSS4_TRY(get_num(j, "rms_norm_eps", &cfg->rms_norm_eps));
  OSS4_TRY(get_num(j, "swiglu_limit", &cfg->swiglu_limit));
  OSS4_TRY(get_num(j, "swiglu_alpha", &cfg->swiglu_alpha));
  for (const char* key : {"attention_bias", "tie_word_embeddings"}) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null() && !it->is_boolean()) return error(std::string("'") + key + "' must be a boolean");
  }
  cfg->attention_bias = j.value("attention_bias", true);
  cfg->tie_word_embeddings = j.value("tie_word_embeddings", false);
  OSS4_TRY(parse_rope(j, cfg));

  // layer_types; transformers' default alternates starting with sliding.
  auto lt = j.find("layer_types");
  cfg->layer_types.clear();
  if (lt != j.end() && !lt->is_null()) {
    if (!lt->is_array()) return error("'layer_types' must be a list");
    for (const auto& v : *lt) {
      std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      if (s == "sliding_attention") {
        cfg->layer_types.push_back(LayerKind::kSliding);
      } else if (s == "full_attention") {
        cfg->layer_types.push_back(LayerKind::kFull);
      } else {
        return error("'layer_types' has unknown entry " + s + " (expected sliding_attention or full_attention)");
      }
    }
  } else {
    for (int64_t i = 0; i < cfg->n_layers; ++i) cfg->layer_types.push_back(i % 2 == 0 ? LayerKind::kSliding : LayerKind::kFull);
  }

  auto q = j.find("quantization_config");
  cfg->quant = CheckpointQuant::kNone;
  if (q != j.end() && !q->is_null()) {
    if (!q->is_object()) return error("'quantization_config' must be an object");
    std::string method, algo, format;
    for (auto [key, out] : {std::pair{"quant_method", &method}, {"quant_algo", &algo}, {"format", &format}}) {
      Status s = get_string(*q, key, out);
      if (!s.ok()) return s.with_context("quantization_config");
    }
    if (method == "mxfp4") {
      cfg->quant = CheckpointQuant::kMxfp4;
    } else if (method == "modelopt" && (algo == "NVFP4" || algo == "W4A16_NVFP4")) {
      cfg->quant = CheckpointQuant::kModeloptNvfp4;
    } else if (method == "compressed-tensors" && format == "nvfp4-pack-quantized") {
      cfg->quant = CheckpointQuant::kCompressedTensorsNvfp4;
    } else {
      const std::string fmt = method == "compressed-tensors" ? format : "";
      return error("quantization_config quant_method '" + method + "'" + (algo.empty() ? "" : " quant_algo '" + algo + "'") +
                   (fmt.empty() ? "" : " format '" + fmt + "'") +
                   " is not supported yet (supported: mxfp4; modelopt NVFP4, W4A16_NVFP4; compressed-tensors nvfp4-pack-quantized)");
    }
    auto m = q->find("modules_to_not_convert");
    if (m != q->end() && m->is_array())
      for (const auto& v : *m)
        if (v.is_string()) cfg->modules_to_not_convert.push_back(v.get<std::string>());
  }
  OSS4_TRY(get_token_ids(j, "eos_token_id", &cfg->eos_token_ids));
  std::vector<int64_t> one;
  OSS4_TRY(get_token_ids(j, "bos_token_id", &one));
  if (!one.empty()) cfg->bos_token_id = one[0];
  one.clear();
  OSS4_TRY(get_token_ids(j, "pad_token_id", &one));
  if (!one.empty()) cfg->pad_token_id = one[0];
  return ok_status();
}

Status validate(const ModelConfig& c) {
  auto bad = [](const std::string& s) { return error(s); };
  // sizes first, so every product below (q_dim, ...) stays far from overflow.
  if (c.n_embd > (1 << 20) || c.n_vocab > (1 << 24) || c.n_layers > 4096 || c.n_experts > 4096 || c.n_ff > (1 << 20) ||
      c.n_heads > 4096 || c.n_kv_heads > 4096 || c.head_dim > 4096 || c.sliding_window > (int64_t{1} << 40) ||
      c.max_position_embeddings > (int64_t{1} << 40) || c.rope.original_max_position_embeddings > (int64_t{1} << 40))
    return bad("dimensions are implausibly large");
  if (static_cast<int64_t>(c.layer_types.size()) != c.n_layers)
    return bad("'layer_types' has " + std::to_string(c.layer_types.size()) + " entries but num_hidden_layers = " + std::to_string(c.n_layers));
  if (c.n_heads % c.n_kv_heads != 0)
    return bad("num_attention_heads = " + std::to_string(c.n_heads) + " is not a multiple of num_key_value_heads = " + std::to_string(c.n_kv_heads));
  if (c.head_dim % 2 != 0) return bad("head_dim = " + std::to_string(c.head_dim) + " must be even (half-split RoPE)");
  if (c.n_experts_used > c.n_experts)
    return bad("num_experts_per_tok = " + std::to_string(c.n_experts_used) + " exceeds num_local_experts = " + std::to_string(c.n_experts));
  for (auto k : c.layer_types)
    if (k == LayerKind::kSliding && c.sliding_window < 1) return bad("sliding layers need 'sliding_window' >= 1");
  if (!(c.rms_norm_eps > 0) || c.rms_norm_eps > 1) return bad("'rms_norm_eps' = " + std::to_string(c.rms_norm_eps) + " is out of range");
  if (!(c.swiglu_limit > 0)) return bad("'swiglu_limit' must be positive");
  if (c.quant == CheckpointQuant::kMxfp4 && (c.n_embd % 32 != 0 || c.n_ff % 32 != 0))
    return bad("MXFP4 experts need hidden_size and intermediate_size divisible by 32");
  if (c.quant == CheckpointQuant::kModeloptNvfp4 && (c.n_embd % 16 != 0 || c.n_ff % 16 != 0 || c.q_dim() % 16 != 0))
    return bad("NVFP4 weights need hidden_size, intermediate_size and the attention width divisible by 16");
  for (int64_t id : c.eos_token_ids)
    if (id < 0 || id >= c.n_vocab) return bad("eos_token_id " + std::to_string(id) + " is outside the vocabulary");
  return ok_status();
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source) {
  auto parsed = parse_json(json_text);
  if (!parsed.ok()) return parsed.status().with_context(source);
  const json& j = parsed.value();
  ModelConfig cfg;
  Status s = parse_config_json(j, &cfg);
  if (s.ok()) s = validate(cfg);
  if (!s.ok()) return s.with_context(source);
  if (cfg.max_position_embeddings == 0) cfg.max_position_embeddings = 131072;
  return cfg;
}

Result<ModelConfig> load_model_config(const std::string& dir) {
  std::string path = dir + "/config.json";
  if (!file_exists(path)) return error(path + ": missing (a gpt-oss checkpoint directory has a config.json)");
  OSS4_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  OSS4_ASSIGN_OR_RETURN(ModelConfig cfg, parse_model_config(text, path));
  std::string gpath = dir + "/generation_config.json";
  if (file_exists(gpath)) {
    OSS4_ASSIGN_OR_RETURN(std::string gtext, read_text_file(gpath));
    auto parsed = parse_json(gtext);
    if (!parsed.ok()) return parsed.status().with_context(gpath);
    const json& g = parsed.value();
    if (!g.is_object()) return error(gpath + ": not a JSON object");
    std::vector<int64_t> eos;
    Status s = get_token_ids(g, "eos_token_id", &eos);
    if (!s.ok()) return s.with_context(gpath);
    for (int64_t id : eos)
      if (id < 0 || id >= cfg.n_vocab) return error(gpath + ": eos_token_id " + std::to_string(id) + " is outside the vocabulary");
    if (!eos.empty()) cfg.eos_token_ids = eos;
  }
  return cfg;
}

std::string model_config_to_json(const ModelConfig& c, bool with_quant) {
  json j;
  j["architectures"] = {"GptOssForCausalLM"};
  j["model_type"] = "gpt_oss";
  j["attention_bias"] = c.attention_bias;
  j["attention_dropout"] = 0.0;
  j["eos_token_id"] = c.eos_token_ids.empty() ? json(nullptr) : json(c.eos_token_ids[0]);
  j["pad_token_id"] = c.pad_token_id;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.n_embd;
  j["initial_context_length"] = c.rope.original_max_position_embeddings;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.n_ff;
  json lt = json::array();
  for (auto k : c.layer_types) lt.push_back(k == LayerKind::kSliding ? "sliding_attention" : "full_attention");
  j["layer_types"] = lt;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["num_attention_heads"] = c.n_heads;
  j["num_experts_per_tok"] = c.n_experts_used;
  j["experts_per_token"] = c.n_experts_used;
  j["num_hidden_layers"] = c.n_layers;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["num_local_experts"] = c.n_experts;
  j["output_router_logits"] = false;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope.theta;
  if (c.rope.yarn) {
    j["rope_scaling"] = {{"rope_type", "yarn"},
                         {"factor", c.rope.factor},
                         {"beta_fast", c.rope.beta_fast},
                         {"beta_slow", c.rope.beta_slow},
                         {"original_max_position_embeddings", c.rope.original_max_position_embeddings},
                         {"truncate", c.rope.truncate}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["router_aux_loss_coef"] = 0.9;
  j["sliding_window"] = c.sliding_window;
  j["swiglu_limit"] = c.swiglu_limit;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["vocab_size"] = c.n_vocab;
  if (with_quant) {
    j["quantization_config"] = {
        {"quant_method", "mxfp4"},
        {"modules_to_not_convert", {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"}}};
  }
  return j.dump(2) + "\n";
}

std::string generation_config_to_json(const ModelConfig& c) {
  json j;
  j["bos_token_id"] = c.bos_token_id;
  j["do_sample"] = true;
  j["eos_token_id"] = c.eos_token_ids;
  j["pad_token_id"] = c.pad_token_id;
  return j.dump(2) + "\n";
}

namespace {
ModelConfig config_20b() {
  ModelConfig c;
  c.n_layers = 24;
  c.n_embd = 2880;
  c.n_heads = 64;
  c.n_kv_heads = 8;
  c.head_dim = 64;
  c.n_experts = 32;
  c.n_experts_used = 4;
  c.n_ff = 2880;
  c.n_vocab = 201088;
  c.sliding_window = 128;
  c.max_position_embeddings = 131072;
  c.rope = RopeConfig{150000.0, true, 32.0, 32.0, 1.0, 4096, false};
  for (int64_t i = 0; i < c.n_layers; ++i) c.layer_types.push_back(i % 2 == 0 ? LayerKind::kSliding : LayerKind::kFull);
  c.quant = CheckpointQuant::kMxfp4;
  c.eos_token_ids = {200002, 199999, 200012};
  c.bos_token_id = 199998;
  c.pad_token_id = 199999;
  return c;
}
}  // namespace

std::vector<std::string> builtin_model_config_names() { return {"tiny", "gpt-oss-20b", "gpt-oss-120b"}; }

Result<ModelConfig> builtin_model_config(const std::string& name) {
  ModelConfig c = config_20b();
  if (name == "gpt-oss-20b") return c;
  if (name == "gpt-oss-120b") {
    c.n_layers = 36;
    c.n_experts = 128;
    c.layer_types.clear();
    for (int64_t i = 0; i < c.n_layers; ++i) c.layer_types.push_back(i % 2 == 0 ? LayerKind::kSliding : LayerKind::kFull);
    return c;
  }
  if (name == "tiny") {
    // the embedded demo model: real vocabulary size (so the real tokenizer fits), everything else small.
    c.n_layers = 4;
    c.n_embd = 128;
    c.n_heads = 8;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.n_experts = 8;
    c.n_experts_used = 2;
    c.n_ff = 128;
    c.sliding_window = 32;
    c.max_position_embeddings = 8192;
    // beta_fast 8 keeps YaRN's correction range inside (0, head_dim/2 - 1), where HF and OpenAI agree.
    c.rope = RopeConfig{150000.0, true, 32.0, 8.0, 1.0, 256, false};
    c.layer_types.clear();
    for (int64_t i = 0; i < c.n_layers; ++i) c.layer_types.push_back(i % 2 == 0 ? LayerKind::kSliding : LayerKind::kFull);
    return c;
  }
  std::string names;
  for (const auto& n : builtin_model_config_names()) names += (names.empty() ? "" : ", ") + n;
  return error("unknown built-in config '" + name + "' (known: " + names + ")");
}

}  // namespace oss4
