// A warp emulator for mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, written from the PTX ISA's fragment
// tables (section "Matrix Fragments for mma.m16n8k16 with floating point type"), not from the kernels: lanes 0..31
// load their bytes of a repacked tile as the kernels do (one 16-byte load, one scale load), build their A registers
// with lane_a_fragment, and the emulator places every register element where the ISA says that lane's element
// lives, multiplies in float64 and scatters D back through the ISA's C table. The result must equal a float64
// reference built from the checkpoint bytes through src/quant's codec, for every output and token, and the gate/up
// pairing must give each lane gate_j and up_j of one j.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/cpu/kernels_ref.h"
#include "backend/cuda/repack.h"
#include "fp4_test_data.h"
#include "ptx_fragments.h"

namespace oss4 {
namespace {

using test::Coord;
using test::ptx_a;
using test::ptx_b;
using test::ptx_c;

double bf16_bits_to_double(uint32_t h) { return static_cast<double>(bf16_to_f32(static_cast<uint16_t>(h))); }

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// y [n_tok, n_out] (or, paired, the gate/up pre-activations [n_tok, n_out] in checkpoint order) through the emulated
// warp: every row tile, every 8-token n-tile, every k-step. x [n_tok, n_in] bf16 bits. Also counts how often each A
// element of each (tile, k-step) was written, which must be exactly once.
std::vector<double> emulate_matmul(const cuda::Fp4TileMatrix& m, const std::vector<uint16_t>& x, int64_t n_tok) {
  std::vector<double> y(static_cast<size_t>(n_tok * m.n_out), 0.0);  // [n_tok, n_out]
  const int tb = cuda::tile_bytes(m.format);
  const int per_group = m.format == cuda::Fp4Format::kNvfp4 ? 8 : 4;
  for (int64_t rt = 0; rt < m.n_row_tiles; ++rt) {
    for (int64_t n0 = 0; n0 < n_tok; n0 += 8) {
      double acc[32][4] = {};  // each lane's c0..c3
      for (int64_t kt = 0; kt < m.n_k_tiles; ++kt) {
        const uint8_t* tile = m.tiles.data() + (rt * m.n_k_tiles + kt) * tb;
        for (int j = 0; j < 4; ++j) {
          double A[16][16], B[16][8];
          int written[16][16] = {};
          for (int lane = 0; lane < 32; ++lane) {
            uint32_t words[4], scale[2] = {0, 0};
            for (int w = 0; w < 4; ++w) words[w] = load_u32(tile + lane * 16 + 4 * w);
            std::memcpy(scale, tile + cuda::kTileNibbleBytes + (lane >> 2) * per_group, static_cast<size_t>(per_group));
            uint32_t a[4];
            if (m.format == cuda::Fp4Format::kNvfp4)
              cuda::lane_a_fragment<cuda::Fp4Format::kNvfp4>(words, scale, j, m.mx_shift, a);
            else
              cuda::lane_a_fragment<cuda::Fp4Format::kMxfp4>(words, scale, j, m.mx_shift, a);
            for (int i = 0; i < 8; ++i) {
              const Coord c = ptx_a(lane, i);
              A[c.row][c.col] = bf16_bits_to_double((a[i / 2] >> (16 * (i % 2))) & 0xffff);
              ++written[c.row][c.col];
            }
            for (int i = 0; i < 4; ++i) {
              const Coord c = ptx_b(lane, i);
              const int64_t tok = n0 + c.col, k = kt * 64 + j * 16 + c.row;
              B[c.row][c.col] = (tok < n_tok && k < m.n_in) ? bf16_bits_to_double(x[tok * m.n_in + k]) : 0.0;
            }
          }
          for (int r = 0; r < 16; ++r)
            for (int k = 0; k < 16; ++k) EXPECT_EQ(written[r][k], 1) << "A element " << r << "," << k << " written";
          for (int lane = 0; lane < 32; ++lane) {
            for (int i = 0; i < 4; ++i) {
              const Coord c = ptx_c(lane, i);
              double d = 0.0;
              for (int k = 0; k < 16; ++k) d += A[c.row][k] * B[k][c.col];
              acc[lane][i] += d;
            }
          }
        }
      }
      for (int lane = 0; lane < 32; ++lane) {
        for (int i = 0; i < 4; ++i) {
          const Coord c = ptx_c(lane, i);
          const int64_t o = cuda::tile_source_row(rt, c.row, m.paired), tok = n0 + c.col;
          if (o < m.n_out && tok < n_tok) y[tok * m.n_out + o] = acc[lane][i] * static_cast<double>(m.epilogue_scale);
        }
      }
    }
  }
  return y;
}

// float64 reference from the checkpoint bytes: y[t, o] = sum_i w(o, i) x(t, i); also sum |w x| for the bound.
void reference_matmul(const test::Fp4Source& src, const std::vector<uint16_t>& x, int64_t n_tok, std::vector<double>* y,
                      std::vector<double>* mag) {
  y->assign(static_cast<size_t>(n_tok * src.n_out), 0.0);
  mag->assign(y->size(), 0.0);
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t o = 0; o < src.n_out; ++o) {
      double s = 0.0, a = 0.0;
      for (int64_t i = 0; i < src.n_in; ++i) {
        const double p = src.at(o, i) * static_cast<double>(bf16_to_f32(x[t * src.n_in + i]));
        s += p;
        a += std::fabs(p);
      }
      (*y)[t * src.n_out + o] = s;
      (*mag)[t * src.n_out + o] = a;
    }
  }
}

struct Case {
  bool mx;
  int64_t n_out, n_in, n_tok;
  bool paired;
};

// the weights are exact in BF16 and every product is summed in float64 on both sides, so the only difference is the
// order of float64 additions: a bound of 1e-12 of sum |w x| is far under any layout error (one misplaced element
// moves a sum by about one term, ~1e-3 of it).
void check_case(const Case& c) {
  const test::Fp4Source src = test::random_fp4(c.mx, c.n_out, c.n_in, static_cast<uint32_t>(c.n_out * 31 + c.n_in));
  auto m = c.mx ? cuda::repack_mxfp4(src.packed.data(), src.scales.data(), c.n_out, c.n_in, c.paired, "w")
                : cuda::repack_nvfp4(src.packed.data(), src.scales.data(), src.scale2, c.n_out, c.n_in,
                                     cuda::SourceOrder::kRowMajor, c.paired, "w");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const std::vector<uint16_t> x = test::random_bf16(c.n_tok * c.n_in, 99);
  const std::vector<double> got = emulate_matmul(*m, x, c.n_tok);
  std::vector<double> want, mag;
  reference_matmul(src, x, c.n_tok, &want, &mag);
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-12 * mag[i] + 1e-300) << "output " << i % c.n_out << " token " << i / c.n_out;
}

TEST(CudaWarpEmulator, Nvfp4MatchesFloat64Reference) {
  check_case({false, 16, 64, 1, false});
  check_case({false, 48, 192, 8, false});
  check_case({false, 37, 80, 5, false});  // row and k tails, a partial n-tile
  check_case({false, 64, 128, 16, false});
}

TEST(CudaWarpEmulator, Mxfp4MatchesFloat64Reference) {
  check_case({true, 32, 128, 3, false});
  check_case({true, 45, 96, 9, false});
}

TEST(CudaWarpEmulator, GateUpPairingMatchesReference) {
  check_case({false, 48, 128, 4, true});
  check_case({true, 34, 64, 2, true});
}

// in the paired layout each lane's c0/c1 are gate_j and c2/c3 up_j of one j: the clamped SwiGLU of the lane's own
// registers equals f32_swiglu_ref on the reference's interleaved gate/up row.
TEST(CudaWarpEmulator, SwigluInRegistersMatchesReference) {
  const int64_t n_ff = 24, n_out = 2 * n_ff, n_in = 64;
  const test::Fp4Source src = test::random_fp4(false, n_out, n_in, 4);
  auto m = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), src.scale2, n_out, n_in, cuda::SourceOrder::kRowMajor,
                              true, "gate_up");
  ASSERT_TRUE(m.ok());
  const std::vector<uint16_t> x = test::random_bf16(8 * n_in, 5);
  std::vector<double> want, mag;
  reference_matmul(src, x, 8, &want, &mag);
  const std::vector<double> full = emulate_matmul(*m, x, 8);
  for (int64_t rt = 0; rt < m->n_row_tiles; ++rt) {
    for (int lane = 0; lane < 32; ++lane) {
      const Coord gate = ptx_c(lane, 0), up = ptx_c(lane, 2);
      ASSERT_EQ(gate.col, up.col);
      const int64_t og = cuda::tile_source_row(rt, gate.row, true), ou = cuda::tile_source_row(rt, up.row, true);
      ASSERT_EQ(og % 2, 0);
      ASSERT_EQ(ou, og + 1);
      const int64_t j = og / 2, tok = gate.col;
      const float gu_lane[2] = {static_cast<float>(full[tok * n_out + og]), static_cast<float>(full[tok * n_out + ou])};
      const float gu_ref[2] = {static_cast<float>(want[tok * n_out + 2 * j]), static_cast<float>(want[tok * n_out + 2 * j + 1])};
      float h_lane, h_ref;
      f32_swiglu_ref(gu_lane, 1, 1.702f, 7.0f, &h_lane);
      f32_swiglu_ref(gu_ref, 1, 1.702f, 7.0f, &h_ref);
      ASSERT_EQ(h_lane, h_ref) << "j " << j << " token " << tok;
    }
  }
}

// the emulator can fail: a layout with two lanes' words swapped is caught.
TEST(CudaWarpEmulator, DetectsASwappedLane) {
  const test::Fp4Source src = test::random_fp4(false, 16, 64, 8);
  auto m = cuda::repack_nvfp4(src.packed.data(), src.scales.data(), src.scale2, 16, 64, cuda::SourceOrder::kRowMajor, false, "w");
  ASSERT_TRUE(m.ok());
  for (int b = 0; b < 4; ++b) std::swap(m->tiles[3 * 16 + b], m->tiles[17 * 16 + b]);
  const std::vector<uint16_t> x = test::random_bf16(64, 1);
  const std::vector<double> got = emulate_matmul(*m, x, 1);
  std::vector<double> want, mag;
  reference_matmul(src, x, 1, &want, &mag);
  int wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) wrong += std::fabs(got[i] - want[i]) > 1e-6 * mag[i];
  EXPECT_GT(wrong, 0);
}

}  // namespace
}  // namespace oss4
