// Host side of the CUDA backend's weights: ModelOpt NVFP4 and HF MXFP4 bytes -> the kernels' tile layout
// (tile_layout.h) and back, the plain weight view the launchers take, and the load-side check that every checkpoint
// tensor was consumed. Plain C++: built and tested in every build, with or without nvcc.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "backend/cuda/tile_layout.h"
#include "format/safetensors.h"
#include "numeric/weight_view.h"
#include "oss4/status.h"

namespace oss4::cuda {

// where the source bytes come from: row-major [n_out, n_in/2] (ModelOpt Linear, HF MXFP4 blocks) or ModelOpt's
// exported expert layout, in-major [n_in/2, n_out] with scales [n_in/16, n_out].
enum class SourceOrder { kRowMajor, kInMajor };

// an FP4 matrix in tile layout, in host memory.
struct Fp4TileMatrix {
  Fp4Format format = Fp4Format::kNvfp4;
  int64_t n_out = 0, n_in = 0;          // logical shape of W [n_out, n_in]
  int64_t n_row_tiles = 0, n_k_tiles = 0;  // rows padded to 16 (8 gate/up pairs when paired), inputs to 64
  bool paired = false;                  // gate/up rows interleaved in the checkpoint, paired per tile
  float scale2 = 1.0f;                  // NVFP4 weight_scale_2 (kept for unpack)
  int mx_shift = 0;                     // MXFP4 tensor shift c (fp4_dequant.h)
  float epilogue_scale = 1.0f;          // f32 factor on the kernels' sums
  std::vector<uint8_t> tiles;           // [n_row_tiles, n_k_tiles, tile_bytes(format)] u8; padding is zero
};

// the view the launchers take: device (or, in tests, host) pointers and the shape. Plain data, so the backend seam
// (issue 13) can hold one per LinearWeight.
struct Fp4MatrixView {
  const uint8_t* tiles = nullptr;  // [n_row_tiles, n_k_tiles, tile_bytes(format)] u8
  Fp4Format format = Fp4Format::kNvfp4;
  int64_t n_out = 0, n_in = 0, n_row_tiles = 0, n_k_tiles = 0;
  bool paired = false;
  int mx_shift = 0;
  float epilogue_scale = 1.0f;
};
inline Fp4MatrixView view_of(const Fp4TileMatrix& m, const uint8_t* tiles) {
  return Fp4MatrixView{tiles, m.format, m.n_out, m.n_in, m.n_row_tiles, m.n_k_tiles, m.paired, m.mx_shift,
                       m.epilogue_scale};
}

// NVFP4: packed [n_out, n_in/2] u8 (low nibble = even input) and scales [n_out, n_in/16] e4m3 (kRowMajor), or
// [n_in/2, n_out] and [n_in/16, n_out] (kInMajor); scale2 = weight_scale_2. paired: n_out even, gate/up interleaved.
// Errors name the tensor: n_in % 16 != 0, odd n_out when paired, a NaN scale byte (0x7f/0xff, with its position),
// a scale2 that is not finite and positive.
Result<Fp4TileMatrix> repack_nvfp4(const uint8_t* packed, const uint8_t* scales, float scale2, int64_t n_out, int64_t n_in,
                                   SourceOrder order, bool paired, const std::string& name);
// MXFP4: blocks [n_out, n_in/32, 16] u8 and scales [n_out, n_in/32] e8m0 (the HF layout). Errors name the tensor:
// n_in % 32 != 0, a scale byte 0xff (NaN), codes spanning more than 132 values (fp4_dequant.h).
Result<Fp4TileMatrix> repack_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t n_out, int64_t n_in, bool paired,
                                   const std::string& name);

// the weight view every rung takes (numeric/weight_view.h), as it is: an NVFP4 view in either layout or a row-major
// MXFP4 one, repacked by the functions above. Other types and layouts are an error naming the tensor.
Result<Fp4TileMatrix> repack_weight(const WeightView& w, bool paired, const std::string& name);

// the inverse, into the row-major checkpoint form: packed [n_out, n_in/2] u8, scales [n_out, n_in/16] e4m3 (NVFP4)
// or [n_out, n_in/32] e8m0 (MXFP4). Used by the round-trip tests.
void unpack_fp4(const Fp4TileMatrix& m, uint8_t* packed, uint8_t* scales);

// every checkpoint tensor consumed, or an error naming the ones left (scales, `_2`, biases, input scales: the class of
// bug in vllm #46641 that turned a whole model into NaN). Loaders mark each tensor they upload or deliberately skip.
class ConsumedTensors {
 public:
  void mark(const std::string& name) { names_.insert(name); }
  bool marked(const std::string& name) const { return names_.count(name) != 0; }
  // the checkpoint's full list of tensor names; the error lists the first few left over and how many.
  Status check_all(const std::vector<std::string>& checkpoint_names) const;
  // a name marked that the checkpoint does not hold is a loader bug (a typo in a key): also an error.
  Status check_known(const std::vector<std::string>& checkpoint_names) const;

 private:
  std::set<std::string> names_;
};

// the load-side check over a whole checkpoint: every tensor of `store` was require()d by the load, except those whose
// names end with one of `unused_suffixes` (tensors a load leaves on purpose, e.g. "input_scale" for W4A16, where
// activations stay 16-bit). The error names the tensors left over.
Status check_checkpoint_consumed(const TensorStore& store, const std::vector<std::string>& unused_suffixes);

// the tensors of one ModelOpt NVFP4 Linear (or fused expert projection) with base name `base` (e.g.
// "model.layers.0.self_attn.q_proj" or "model.layers.0.mlp.experts.gate_up_proj"): weight, weight_scale,
// weight_scale_2, input_scale and bias, in ModelOpt's dotted (Linear) or underscored (experts) spelling.
std::vector<std::string> nvfp4_linear_tensor_names(const std::string& base, bool experts);

}  // namespace oss4::cuda
