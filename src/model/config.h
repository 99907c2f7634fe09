// gpt-oss hyperparameters from config.json (any size: 20b, 120b, tiny test configs), validated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

enum class LayerKind { kSliding, kFull };

struct RopeConfig {
  double theta = 150000.0;
  bool yarn = false;  // YaRN only when rope_type is yarn and factor > 1
  double factor = 1.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int64_t original_max_position_embeddings = 4096;
  bool truncate = false;
};

// the checkpoint's expert storage, from quantization_config.
// kModeloptNvfp4: ModelOpt's exported NVFP4 (quant_method "modelopt", quant_algo NVFP4 or W4A16_NVFP4).
// kCompressedTensorsNvfp4: compressed-tensors (quant_method "compressed-tensors", format "nvfp4-pack-quantized").
// ModelOpt's fake-quant form (BF16 weights + quantizer _amax buffers) has no quantization_config: kNone.
enum class CheckpointQuant { kNone, kMxfp4, kModeloptNvfp4, kCompressedTensorsNvfp4 };

struct ModelConfig {
  int64_t n_layers = 0;
  int64_t n_embd = 0;        // hidden_size
  int64_t n_heads = 0;       // num_attention_heads
  int64_t n_kv_heads = 0;    // num_key_value_heads
  int64_t head_dim = 0;
  int64_t n_experts = 0;     // num_local_experts
  int64_t n_experts_used = 0;  // num_experts_per_tok
  int64_t n_ff = 0;          // intermediate_size (per expert)
  int64_t n_vocab = 0;
  int64_t sliding_window = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double swiglu_limit = 7.0;
  double swiglu_alpha = 1.702;
  bool attention_bias = true;
  bool tie_word_embeddings = false;
  RopeConfig rope;
  std::vector<LayerKind> layer_types;  // [n_layers]
  CheckpointQuant quant = CheckpointQuant::kNone;
  std::vector<std::string> modules_to_not_convert;

  // from generation_config.json when present, else from config.json.
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1;
  int64_t pad_token_id = -1;

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

// parses and validates config.json text; source names the file in errors.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);
// reads DIR/config.json and, if present, DIR/generation_config.json.
Result<ModelConfig> load_model_config(const std::string& dir);
// the HF config.json text for cfg (as the released files spell it); with_quant adds the MXFP4 quantization_config.
std::string model_config_to_json(const ModelConfig& cfg, bool with_quant);
std::string generation_config_to_json(const ModelConfig& cfg);

// built-in configs: "tiny" (the embedded demo model), "gpt-oss-20b", "gpt-oss-120b".
Result<ModelConfig> builtin_model_config(const std::string& name);
std::vector<std::string> builtin_model_config_names();

}  // namespace oss4
