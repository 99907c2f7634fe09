// The plain view of one weight matrix that every kernel rung takes as it is: the scalar reference, the AVX2 kernels
// (through their LinearArgs) and the CUDA repack and launchers (backend/cuda/repack.h). Type, layout, shape, data and
// scale pointers, the per-tensor scale; no names, no ownership.
#pragma once

#include <cstddef>
#include <cstdint>

namespace oss4 {

enum class WeightType {
  kF32,    // data: [n_out, n_in] f32
  kBF16,   // data: [n_out, n_in] bf16, or [n_in, n_out] in-major
  kMxfp4,  // data: [n_out, n_in/32, 16] u8 (low nibble = even column), scales: [n_out, n_in/32] e8m0
  kNvfp4,  // data: [n_out, n_in/2] u8 (low nibble = even column), scales: [n_out, n_in/16] e4m3, times scale2;
           // in-major (ModelOpt's exported experts): data [n_in/2, n_out], scales [n_in/16, n_out]
};
const char* weight_type_name(WeightType t);

// kRowMajor: output rows one after another (W [n_out, n_in], as torch's Linear stores it); kInMajor: input rows
// (h @ W, W [n_in, n_out]: HF's BF16 experts, ModelOpt's exported NVFP4 experts, the CPU's repacked NVFP4);
// kTiles32: NVFP4 only, the AVX-512 rung's layout of 32-output tiles (numeric/nvfp4_tiles.h).
enum class WeightLayout : uint8_t { kRowMajor, kInMajor, kTiles32 };

// a linear map y = W x: n_out rows of n_in inputs.
struct WeightView {
  WeightType type = WeightType::kF32;
  WeightLayout layout = WeightLayout::kRowMajor;
  int64_t n_out = 0, n_in = 0;
  const uint8_t* data = nullptr;
  const uint8_t* scales = nullptr;  // MXFP4 / NVFP4 block scales
  float scale2 = 1.0f;              // NVFP4 per-tensor scale (weight_scale_2)

  bool in_major() const { return layout == WeightLayout::kInMajor; }
  bool tiles32() const { return layout == WeightLayout::kTiles32; }
  void set_in_major(bool in) { layout = in ? WeightLayout::kInMajor : WeightLayout::kRowMajor; }
  size_t nbytes() const;  // bytes a full pass over the weight reads
};

}  // namespace oss4
