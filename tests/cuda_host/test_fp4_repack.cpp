// Host repack of FP4 weights into the CUDA tile layout: the index maps are bijections, repack then unpack is the
// identity (row-major and ModelOpt's in-major experts, NVFP4 and MXFP4, gate/up paired, odd tails), bad inputs are
// refused with the tensor named, and the load-side check names a tensor left over.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "backend/cuda/repack.h"
#include "fp4_test_data.h"
#include "format/safetensors.h"
#include "model/weights.h"
#include "../unit/test_helpers.h"

namespace oss4 {
namespace {

using cuda::Fp4Format;

TEST(CudaRepack, NibbleSlotsAreABijection) {
  std::set<int> seen;
  for (int r = 0; r < 16; ++r) {
    for (int k = 0; k < 64; ++k) {
      const cuda::NibbleSlot s = cuda::tile_nibble_slot(r, k);
      ASSERT_TRUE(s.lane >= 0 && s.lane < 32 && s.word >= 0 && s.word < 4 && s.nibble >= 0 && s.nibble < 8);
      seen.insert((s.lane * 4 + s.word) * 8 + s.nibble);
    }
  }
  EXPECT_EQ(seen.size(), 16u * 64u);
}

TEST(CudaRepack, ScaleSlotsAreABijection) {
  for (Fp4Format f : {Fp4Format::kNvfp4, Fp4Format::kMxfp4}) {
    std::set<int> seen;
    const int n_blocks = 64 / cuda::scale_block(f);
    for (int r = 0; r < 16; ++r)
      for (int b = 0; b < n_blocks; ++b) seen.insert(cuda::tile_scale_slot(f, r, b));
    EXPECT_EQ(seen.size(), static_cast<size_t>(16 * n_blocks));
    EXPECT_EQ(*seen.rbegin(), cuda::tile_scale_bytes(f) - 1);
  }
}

TEST(CudaRepack, PairedRowsPutGateAndUpInOneLane) {
  for (int64_t rt = 0; rt < 4; ++rt) {
    for (int r = 0; r < 8; ++r) {
      const int64_t gate = cuda::tile_source_row(rt, r, true), up = cuda::tile_source_row(rt, r + 8, true);
      EXPECT_EQ(gate % 2, 0);
      EXPECT_EQ(up, gate + 1);
    }
  }
}

struct Shape {
  int64_t n_out, n_in;
  bool paired;
};

void expect_round_trip(const test::Fp4Source& src, const cuda::Fp4TileMatrix& m) {
  std::vector<uint8_t> packed(src.packed.size(), 0xaa), scales(src.scales.size(), 0xaa);
  cuda::unpack_fp4(m, packed.data(), scales.data());
  EXPECT_EQ(packed, src.packed);
  EXPECT_EQ(scales, src.scales);
}

TEST(CudaRepack, Nvfp4RoundTrip) {
  for (Shape s : {Shape{16, 64, false}, Shape{37, 80, false}, Shape{512, 2880, false}, Shape{26, 48, true},
                  Shape{64, 2880, true}}) {
    const test::Fp4Source src = test::random_fp4(false, s.n_out, s.n_in, 7);
    auto m = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), src.scale2, s.n_out, s.n_in,
                                cuda::SourceOrder::kRowMajor, s.paired, "w");
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m->tiles.size(), static_cast<size_t>(m->n_row_tiles * m->n_k_tiles * 576));
    expect_round_trip(src, *m);
  }
}

TEST(CudaRepack, Nvfp4InMajorExpertsRoundTrip) {
  const int64_t n_out = 40, n_in = 96;
  const test::Fp4Source src = test::random_fp4(false, n_out, n_in, 11);
  // ModelOpt's exported experts: byte [j, o] = inputs 2j, 2j+1 of output o; scales [n_in/16, n_out]
  std::vector<uint8_t> packed_t(src.packed.size()), scales_t(src.scales.size());
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t j = 0; j < n_in / 2; ++j) packed_t[j * n_out + o] = src.packed[o * (n_in / 2) + j];
    for (int64_t b = 0; b < n_in / 16; ++b) scales_t[b * n_out + o] = src.scales[o * (n_in / 16) + b];
  }
  auto m = cuda::repack_nvfp4(packed_t.data(), scales_t.data(), src.scale2, n_out, n_in, cuda::SourceOrder::kInMajor,
                              /*paired=*/true, "experts.gate_up_proj");
  ASSERT_TRUE(m.ok()) << m.status().message();
  expect_round_trip(src, *m);
}

// the weight view the CPU kernels take, handed over as it is: NVFP4 in both layouts and MXFP4 round-trip; a dense or an
// in-major MXFP4 view is refused, naming the tensor
TEST(CudaRepack, WeightViewAsItIs) {
  const int64_t n_out = 40, n_in = 96;
  const test::Fp4Source nv = test::random_fp4(false, n_out, n_in, 13);
  WeightView v{WeightType::kNvfp4, WeightLayout::kRowMajor, n_out, n_in, nv.packed.data(), nv.scales.data(), nv.scale2};
  auto rows = cuda::repack_weight(v, /*paired=*/true, "w");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  expect_round_trip(nv, *rows);
  std::vector<uint8_t> packed_t(nv.packed.size()), scales_t(nv.scales.size());  // [n_in/2, n_out], [n_in/16, n_out]
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t j = 0; j < n_in / 2; ++j) packed_t[j * n_out + o] = nv.packed[o * (n_in / 2) + j];
    for (int64_t b = 0; b < n_in / 16; ++b) scales_t[b * n_out + o] = nv.scales[o * (n_in / 16) + b];
  }
  WeightView t{WeightType::kNvfp4, WeightLayout::kInMajor, n_out, n_in, packed_t.data(), scales_t.data(), nv.scale2};
  auto cols = cuda::repack_weight(t, /*paired=*/true, "w");
  ASSERT_TRUE(cols.ok()) << cols.status().message();
  EXPECT_EQ(cols->tiles, rows->tiles) << "both layouts give the same tiles";
  const test::Fp4Source mx = test::random_fp4(true, n_out, n_in, 14);
  WeightView m{WeightType::kMxfp4, WeightLayout::kRowMajor, n_out, n_in, mx.packed.data(), mx.scales.data(), 1.0f};
  auto mt = cuda::repack_weight(m, /*paired=*/false, "w");
  ASSERT_TRUE(mt.ok()) << mt.status().message();
  expect_round_trip(mx, *mt);
  std::vector<uint16_t> dense(static_cast<size_t>(n_out * n_in));  // [n_out, n_in] bf16
  WeightView d{WeightType::kBF16, WeightLayout::kRowMajor, n_out, n_in, reinterpret_cast<const uint8_t*>(dense.data()), nullptr, 1.0f};
  auto bad = cuda::repack_weight(d, false, "model.layers.0.mlp.router.weight");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.layers.0.mlp.router.weight"), std::string::npos) << bad.status().message();
}

TEST(CudaRepack, Mxfp4RoundTrip) {
  for (Shape s : {Shape{16, 64, false}, Shape{45, 96, false}, Shape{2880, 2880, false}, Shape{34, 160, true}}) {
    const test::Fp4Source src = test::random_fp4(true, s.n_out, s.n_in, 5);
    auto m = cuda::repack_mxfp4(src.packed.data(), src.scales.data(), s.n_out, s.n_in, s.paired, "w");
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m->tiles.size(), static_cast<size_t>(m->n_row_tiles * m->n_k_tiles * 544));
    expect_round_trip(src, *m);
  }
}

TEST(CudaRepack, PaddingIsZero) {
  const test::Fp4Source src = test::random_fp4(false, 17, 80, 3);
  auto m = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), src.scale2, 17, 80, cuda::SourceOrder::kRowMajor,
                              false, "w");
  ASSERT_TRUE(m.ok());
  // row tile 1 holds only row 16; k tile 1 holds only inputs 64..79: count the nibbles that are not padding
  size_t nonzero_slots = 0;
  for (int64_t rt = 0; rt < m->n_row_tiles; ++rt) {
    for (int64_t kt = 0; kt < m->n_k_tiles; ++kt) {
      const uint8_t* t = m->tiles.data() + (rt * m->n_k_tiles + kt) * 576;
      for (int r = 0; r < 16; ++r) {
        for (int k = 0; k < 64; ++k) {
          const cuda::NibbleSlot s = cuda::tile_nibble_slot(r, k);
          const int nib = (t[s.lane * 16 + s.word * 4 + s.nibble / 2] >> (4 * (s.nibble % 2))) & 0xf;
          const bool inside = rt * 16 + r < 17 && kt * 64 + k < 80;
          if (!inside) {
            ASSERT_EQ(nib, 0) << "rt " << rt << " kt " << kt << " r " << r << " k " << k;
          }
          nonzero_slots += inside;
        }
        for (int b = 0; b < 4; ++b) {
          const bool inside = rt * 16 + r < 17 && kt * 64 + b * 16 < 80;
          if (!inside) {
            ASSERT_EQ(t[512 + cuda::tile_scale_slot(Fp4Format::kNvfp4, r, b)], 0);
          }
        }
      }
    }
  }
  EXPECT_EQ(nonzero_slots, 17u * 80u);
}

TEST(CudaRepack, RefusesBadInputsNamingTheTensor) {
  test::Fp4Source src = test::random_fp4(false, 16, 64, 1);
  auto bad_k = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), 1.0f, 16, 40, cuda::SourceOrder::kRowMajor, false, "blk.q");
  ASSERT_FALSE(bad_k.ok());
  EXPECT_NE(bad_k.status().message().find("blk.q"), std::string::npos);

  src.scales[3 * 4 + 2] = 0x7f;
  auto nan = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), 1.0f, 16, 64, cuda::SourceOrder::kRowMajor, false, "blk.k");
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("blk.k: NaN block scale (E4M3 0x7f) at row 3, block 2"), std::string::npos)
      << nan.status().message();

  src.scales[3 * 4 + 2] = 0x38;
  auto odd = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), 1.0f, 15, 64, cuda::SourceOrder::kRowMajor, true, "gu");
  EXPECT_FALSE(odd.ok());
  auto zero_s2 = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), 0.0f, 16, 64, cuda::SourceOrder::kRowMajor, false, "s2");
  ASSERT_FALSE(zero_s2.ok());
  EXPECT_NE(zero_s2.status().message().find("s2: weight_scale_2"), std::string::npos);

  test::Fp4Source mx = test::random_fp4(true, 16, 64, 2);
  mx.scales[0] = 1;
  mx.scales[1] = 200;  // a span of 199 codes: no single shift holds both
  auto wide = cuda::repack_mxfp4(mx.packed.data(), mx.scales.data(), 16, 64, false, "experts.down");
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("experts.down: E8M0 scales span 1..200"), std::string::npos) << wide.status().message();
  mx.scales[1] = 0xff;
  EXPECT_FALSE(cuda::repack_mxfp4(mx.packed.data(), mx.scales.data(), 16, 64, false, "x").ok());
}

TEST(CudaConsumedTensors, NamesTheTensorLeftOver) {
  const std::string base = "model.layers.0.mlp.experts.gate_up_proj";
  std::vector<std::string> ckpt = cuda::nvfp4_linear_tensor_names(base, /*experts=*/true);
  ckpt.push_back("model.layers.0.self_attn.sinks");
  cuda::ConsumedTensors c;
  for (const auto& n : ckpt)
    if (n != base + "_weight_scale_2") c.mark(n);
  const Status st = c.check_all(ckpt);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("1 checkpoint tensor(s) not consumed by the load: " + base + "_weight_scale_2"),
            std::string::npos)
      << st.message();
  c.mark(base + "_weight_scale_2");
  EXPECT_TRUE(c.check_all(ckpt).ok());
  EXPECT_TRUE(c.check_known(ckpt).ok());
  c.mark(base + ".weight_scale");  // the dotted spelling, which experts do not use
  const Status typo = c.check_known(ckpt);
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.message().find(base + ".weight_scale"), std::string::npos);
}

TEST(CudaConsumedTensors, LinearNamesUseModelOptSpelling) {
  const auto lin = cuda::nvfp4_linear_tensor_names("q_proj", false);
  EXPECT_EQ(lin, (std::vector<std::string>{"q_proj.weight", "q_proj.weight_scale", "q_proj.weight_scale_2",
                                           "q_proj.input_scale", "q_proj.bias"}));
  const auto ex = cuda::nvfp4_linear_tensor_names("down_proj", true);
  EXPECT_EQ(ex, (std::vector<std::string>{"down_proj", "down_proj_weight_scale", "down_proj_weight_scale_2",
                                          "down_proj_input_scale", "down_proj_bias"}));
}

// the real ModelOpt NVFP4 export of a tiny gpt-oss (tests/data/nvfp4_forms/b): the loader consumes every tensor but
// the W4A16-unused input scales; a copy of it with one more tensor loads, and the check names that tensor.
TEST(CudaConsumedTensors, ModelOptExportIsFullyConsumed) {
  const std::string dir = std::string(OSS4_TEST_DATA) + "/nvfp4_forms/b";
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const Status st = cuda::check_checkpoint_consumed(m->store, {"input_scale"});
  EXPECT_TRUE(st.ok()) << st.message();
  const Status strict = cuda::check_checkpoint_consumed(m->store, {});
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.message().find("input_scale"), std::string::npos) << strict.message();
}

// the other checkpoint forms: fake-quant (a) and compressed-tensors (c) leave only their activation scales (W4A4
// only), and the MXFP4 / BF16 goldens leave nothing.
TEST(CudaConsumedTensors, OtherFormsLeaveOnlyActivationScales) {
  const std::string d = OSS4_TEST_DATA;
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {d + "/nvfp4_forms/a", {"input_quantizer._amax"}}, {d + "/nvfp4_forms/c", {"input_global_scale"}},
      {d + "/golden/c1/mxfp4", {}}, {d + "/golden/c1/bf16", {}}, {d + "/golden/c3/mxfp4", {}}};
  for (const auto& [dir, unused] : cases) {
    auto m = load_model(dir);
    ASSERT_TRUE(m.ok()) << dir << ": " << m.status().message();
    const Status st = cuda::check_checkpoint_consumed(m->store, unused);
    EXPECT_TRUE(st.ok()) << st.message();
    if (!unused.empty()) {
      EXPECT_FALSE(cuda::check_checkpoint_consumed(m->store, {}).ok()) << dir;
    }
  }
}

TEST(CudaConsumedTensors, NamesAnExtraTensorOfARealCheckpoint) {
  const std::string src = std::string(OSS4_TEST_DATA) + "/nvfp4_forms/b";
  const std::string dir = test::make_temp_dir();
  ASSERT_FALSE(dir.empty());
  for (const char* f : {"config.json", "hf_quant_config.json"})
    std::filesystem::copy_file(src + "/" + f, dir + "/" + f);
  auto in = TensorStore::open_dir(src);
  ASSERT_TRUE(in.ok());
  const std::string extra = "model.layers.0.mlp.experts.gate_up_proj_weight_scale_3";
  SafetensorsWriter w(dir + "/model.safetensors");
  std::vector<const TensorView*> ts;
  for (const auto& n : in->names()) {
    ts.push_back(in->find(n));
    w.declare(n, ts.back()->dtype, ts.back()->shape);
  }
  const float v = 1.0f;
  w.declare(extra, DType::kF32, {});
  ASSERT_TRUE(w.begin().ok());
  for (const TensorView* t : ts) ASSERT_TRUE(w.write(t->data, t->nbytes).ok());
  ASSERT_TRUE(w.write(&v, 4).ok());
  ASSERT_TRUE(w.finish().ok());
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const Status st = cuda::check_checkpoint_consumed(m->store, {"input_scale"});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("1 checkpoint tensor(s) not consumed by the load: " + extra), std::string::npos) << st.message();
}

}  // namespace
}  // namespace oss4
