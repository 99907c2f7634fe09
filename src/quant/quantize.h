// `oss4 quantize`: a gpt-oss checkpoint (MXFP4, BF16 or NVFP4) to ModelOpt's exported NVFP4 layout, tensor by
// tensor, with bounded memory. Methods: amax (ModelOpt bit for bit), transcode (MXFP4 experts exactly where E4M3
// allows), mse (per-block scale search, never worse than amax).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.h"

namespace oss4 {

enum class QuantMethod { kAmax, kTranscode, kMse };
enum class QuantScope {
  kAll,      // ModelOpt's NVFP4 default: experts and attention projections; router, embeddings, lm_head stay BF16
  kExperts,  // experts only (NVFP4_MLP_ONLY_CFG)
};

struct QuantizeOptions {
  std::string in_dir, out_dir;
  QuantMethod method = QuantMethod::kAmax;
  QuantScope scope = QuantScope::kAll;
  // calibration prompts (token ids): when given, input amax is recorded and written as input_scale (quant_algo
  // NVFP4, as ModelOpt exports a calibrated model); without, a ModelOpt fake-quant input's stored input amax is
  // used, and a model with neither is exported weight-only (W4A16_NVFP4).
  std::vector<std::vector<int32_t>> calibration;
  // lm_head to NVFP4 too (ModelOpt's rules, whatever the method; weight-only, so not with input scales); a tied
  // lm_head (the embedding) stays as it is.
  bool lm_head_nvfp4 = false;
};

struct TensorReport {
  std::string name;
  double rel_mse = 0;   // sum (w - q)^2 / sum w^2
  double snr_db = 0;    // -10 log10(rel_mse)
  int64_t n_blocks = 0;
  int64_t n_inexact = 0;  // transcode: 32-blocks whose scale E4M3 could not hold, quantized from their data instead
  double worst_block_rel_err = 0;  // transcode: worst inexact block's max |w - q| / max |w|
};

struct QuantizeReport {
  std::vector<TensorReport> tensors;
  int64_t bytes_in = 0, bytes_out = 0;
  std::string amax_source;   // "data" (max |w|) or "ModelOpt _amax buffers"
  std::string input_scales;  // "none", "calibrated on N prompts" or "ModelOpt _amax buffers"
};

Status quantize_checkpoint(const QuantizeOptions& opt, const ProgressFn& progress, QuantizeReport* report);

// the pieces, exposed for tests -------------------------------------------------------------------------------

// one NVFP4 matrix in the row-major form [n_out, n_in/2] + [n_out, n_in/16] and its tensor scale.
struct Nvfp4Matrix {
  std::vector<uint8_t> packed;  // [n_out, n_in/2]
  std::vector<uint8_t> scales;  // [n_out, n_in/16] e4m3
  float scale2 = 0;
};

// like nvfp4_quantize_ref, then each block's scale re-chosen among nearby E4M3 codes (the amax code included) to
// minimise the block's squared error.
Status nvfp4_quantize_mse(const float* w, int64_t n_out, int64_t n_in, float amax, Nvfp4Matrix* out, const std::string& name);
// MXFP4 -> NVFP4 without re-rounding: scale2 = 2^(k_max - 8) over the given exponent max, block scale 2^(k - m),
// nibbles copied. Blocks whose scale falls below E4M3's range are quantized from their values; counted in *n_inexact.
void mxfp4_transcode(const LinearWeight& mx, int k_max, Nvfp4Matrix* out, int64_t* n_inexact, double* worst_rel_err);

}  // namespace oss4
