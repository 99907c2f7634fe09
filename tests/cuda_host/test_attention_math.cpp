// The CUDA backend's attention and router arithmetic on the CPU (attn_math.h, kv_pages.h, topk.h: the code the kernels
// run), against the scalar reference rung: paged BF16 K/V written chunk by chunk into rings and growing tables,
// attention split along the keys and combined with the sink, with and without sinks, against f32_sdpa_sink_ref; the
// router's top-k against f32_topk_softmax_ref, ties and NaNs included.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/kernels_ref.h"
#include "backend/cuda/attn_math.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/kv_pages.h"
#include "backend/cuda/topk.h"
#include "numeric/float_formats.h"
#include "ptx_fragments.h"

namespace oss4 {
namespace {

using cuda::KeyRange;
using cuda::PageGeom;
using cuda::PageTable;
using cuda::SoftmaxPart;

// a group's pages in host memory and its table, as the device cache keeps them
struct HostPages {
  PageGeom g;
  std::vector<std::vector<uint16_t>> pages;  // [n_slots][page_elems] bf16
  std::vector<uint16_t*> ptrs;               // [n_slots]
  PageTable table() const { return PageTable{ptrs.data(), static_cast<int64_t>(ptrs.size())}; }
  HostPages(PageGeom geom, int64_t n_slots) : g(geom) {
    pages.assign(static_cast<size_t>(n_slots), std::vector<uint16_t>(static_cast<size_t>(cuda::page_elems(g)), 0xffff));
    for (auto& p : pages) ptrs.push_back(p.data());
  }
};

// the decode kernel's walk of one (row, head), written as the warp runs it: splits of kKeysPerSplit keys, blocks of
// 32 keys (one per lane), the block's max and sum folded by online_update, then the combine with the sink.
void paged_attention_row(const float* q, int64_t pos, int64_t window, const HostPages& hp, int64_t gl, int64_t kvh,
                         int64_t head_dim, float scale, float sink, bool has_sink, float* out) {
  const KeyRange r = cuda::query_keys(pos, window);
  const int64_t n_splits = cuda::n_key_splits(r.hi - r.lo);
  std::vector<SoftmaxPart> parts(static_cast<size_t>(n_splits));
  std::vector<std::vector<float>> acc(static_cast<size_t>(n_splits), std::vector<float>(static_cast<size_t>(head_dim), 0.0f));
  const PageTable t = hp.table();
  for (int64_t j = 0; j < n_splits; ++j) {
    const KeyRange s = cuda::split_keys(r, j);
    for (int64_t b = s.lo; b < s.hi; b += 32) {
      float sc[32];
      float m_blk = -INFINITY;
      for (int lane = 0; lane < 32; ++lane) {
        sc[lane] = -INFINITY;
        if (b + lane >= s.hi) continue;
        const uint16_t* k = cuda::kv_row(t, hp.g, gl, 0, b + lane) + kvh * head_dim;
        float d = 0.0f;
        for (int64_t i = 0; i < head_dim; ++i) d += q[i] * bf16_to_f32(k[i]);
        sc[lane] = d * scale;
        m_blk = std::max(m_blk, sc[lane]);
      }
      const float m_new = std::max(parts[j].m, m_blk);
      float p[32], sum = 0.0f;
      for (int lane = 0; lane < 32; ++lane) sum += (p[lane] = b + lane < s.hi ? std::exp(sc[lane] - m_new) : 0.0f);
      const float c = cuda::online_update(parts[j], m_new, sum);
      for (int64_t i = 0; i < head_dim; ++i) {
        float a = acc[j][i] * c;
        for (int lane = 0; lane < 32 && b + lane < s.hi; ++lane)
          a += p[lane] * bf16_to_f32(cuda::kv_row(t, hp.g, gl, 1, b + lane)[kvh * head_dim + i]);
        acc[j][i] = a;
      }
    }
  }
  const cuda::SinkCombine c = cuda::sink_combine(parts.data(), n_splits, sink, has_sink);
  for (int64_t i = 0; i < head_dim; ++i) {
    float o = 0.0f;
    for (int64_t j = 0; j < n_splits; ++j) o += acc[j][i] * cuda::chunk_weight(c, parts[j]);
    out[i] = o;
  }
}

struct Case {
  int64_t n_pos, window, chunk;
  bool ring, sinks;
};

// K/V of every position stored chunk by chunk into pages (a ring or a growing table), each chunk's rows attended right
// after its store, against the reference over a full f32 copy of the same BF16 values
void run_case(const Case& cs) {
  const int64_t n_heads = 8, n_kv = 2, hd = 64, n_layers = 2, gl = 1;
  const PageGeom g{n_layers, n_kv * hd};
  const int64_t slots = cs.ring ? cuda::ring_slots(cs.window, cs.chunk) : cuda::pages_for(cs.n_pos);
  HostPages hp(g, slots);
  std::mt19937 rng(static_cast<uint32_t>(cs.n_pos * 131 + cs.window * 7 + cs.chunk));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> kf(static_cast<size_t>(cs.n_pos * g.kv_dim)), vf(kf.size());  // [n_pos, kv_dim] f32 of bf16
  for (auto& x : kf) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  for (auto& x : vf) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  std::vector<float> sinks(static_cast<size_t>(n_heads));
  for (auto& s : sinks) s = cs.sinks ? nd(rng) * 2.0f : -INFINITY;
  const float scale = 0.125f;
  const KvLayerView view{kf.data(), vf.data(), cs.n_pos, false};
  double worst = 0.0, worst_sinkless_gap = 0.0;
  for (int64_t p0 = 0; p0 < cs.n_pos; p0 += cs.chunk) {
    const int64_t n = std::min(cs.chunk, cs.n_pos - p0);
    for (int64_t p = p0; p < p0 + n; ++p) {
      for (int kv = 0; kv < 2; ++kv) {
        uint16_t* row = cuda::kv_row(hp.table(), g, gl, kv, p);
        const float* src = (kv == 0 ? kf : vf).data() + p * g.kv_dim;
        for (int64_t i = 0; i < g.kv_dim; ++i) row[i] = f32_to_bf16(src[i]);
      }
    }
    for (int64_t p = p0; p < p0 + n; ++p) {
      std::vector<float> q(static_cast<size_t>(n_heads * hd)), want(q.size()), got(q.size());
      for (auto& x : q) x = nd(rng);
      f32_sdpa_sink_ref(q.data(), &p, 1, n_heads, n_kv, hd, view, cs.window, sinks.data(), scale, want.data());
      for (int64_t h = 0; h < n_heads; ++h) {
        paged_attention_row(q.data() + h * hd, p, cs.window, hp, gl, h / (n_heads / n_kv), hd, scale, sinks[h], cs.sinks,
                            got.data() + h * hd);
        if (cs.sinks) {  // the same walk with the sink left out must differ: the test sees the sink
          std::vector<float> nos(static_cast<size_t>(hd));
          paged_attention_row(q.data() + h * hd, p, cs.window, hp, gl, h / (n_heads / n_kv), hd, scale, sinks[h], false, nos.data());
          for (int64_t i = 0; i < hd; ++i) worst_sinkless_gap = std::max(worst_sinkless_gap, double(std::fabs(nos[i] - want[h * hd + i])));
        }
      }
      for (size_t i = 0; i < q.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    }
  }
  // two f32 sums in different orders over the same BF16 values, probabilities <= 1, |v| ~ N(0, 1)
  EXPECT_LT(worst, 2e-5) << "n_pos " << cs.n_pos << " window " << cs.window << " chunk " << cs.chunk << " ring " << cs.ring;
  if (cs.sinks) {
    EXPECT_GT(worst_sinkless_gap, 1e-3) << "leaving the sink out changed nothing: the case does not test it";
  }
}

TEST(CudaAttentionMath, FullLayersOverGrowingTables) {
  run_case({700, 0, 1, false, true});    // decode, three splits at the end
  run_case({600, 0, 97, false, true});   // prefill chunks across page and split edges
  run_case({300, 0, 300, false, false}); // one chunk, no sinks
}

TEST(CudaAttentionMath, SlidingLayersOverRings) {
  run_case({400, 128, 1, true, true});
  run_case({400, 128, 37, true, true});
  run_case({513, 128, 128, true, true});
  run_case({300, 16, 5, true, false});
  run_case({300, 128, 64, false, true});  // a rewindable cache: sliding layers over a growing table
}

// the prefill kernel's warp program (flash_attention.h) run by 32 emulated lanes over every 16-row tile and head of
// each chunk right after the chunk's store, against the reference on the same BF16 K/V with q rounded to BF16 (an
// mma operand). P is rounded to BF16 too; each weight is off by at most 2^-9 relative and the normalisation sums the
// rounded weights, so the output is off by at most 2^-9 max|v - out| <= 2^-8 max|v| (+ f32 sums).
template <int HD>
void run_flash_case(int64_t n_pos, int64_t window, int64_t chunk, bool ring, bool sinks_on) {
  const int64_t n_heads = 8, n_kv = 2, n_layers = 2, gl = 0;
  const PageGeom g{n_layers, n_kv * HD};
  const int64_t slots = ring ? cuda::ring_slots(window, chunk) : cuda::pages_for(n_pos);
  HostPages hp(g, slots);
  std::mt19937 rng(static_cast<uint32_t>(n_pos * 7 + window + HD));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> kf(static_cast<size_t>(n_pos * g.kv_dim)), vf(kf.size());  // [n_pos, kv_dim] f32 of bf16
  for (auto& x : kf) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  for (auto& x : vf) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  float vmax = 0.0f;
  for (float x : vf) vmax = std::max(vmax, std::fabs(x));
  std::vector<float> sinks(static_cast<size_t>(n_heads)), minf(static_cast<size_t>(n_heads), -INFINITY);
  for (auto& x : sinks) x = nd(rng) * 2.0f;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  const KvLayerView view{kf.data(), vf.data(), n_pos, false};
  double worst = 0.0, sink_gap = 0.0;
  int64_t mmas = 0;
  for (int64_t p0 = 0; p0 < n_pos; p0 += chunk) {
    const int64_t n = std::min(chunk, n_pos - p0);
    for (int64_t p = p0; p < p0 + n; ++p)
      for (int kv = 0; kv < 2; ++kv) {
        uint16_t* r = cuda::kv_row(hp.table(), g, gl, kv, p);
        for (int64_t i = 0; i < g.kv_dim; ++i) r[i] = f32_to_bf16((kv == 0 ? kf : vf)[static_cast<size_t>(p * g.kv_dim + i)]);
      }
    std::vector<float> q(static_cast<size_t>(n * n_heads * HD)), q16(q.size()), got(q.size(), NAN), want(q.size()), nos(q.size());
    for (size_t i = 0; i < q.size(); ++i) q16[i] = bf16_to_f32(f32_to_bf16(q[i] = nd(rng)));
    std::vector<int64_t> pos(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = p0 + i;
    cuda::FlashArgs a;
    a.q = q.data();
    a.n_rows = n;
    a.p0 = p0;
    a.table = hp.table();
    a.geom = g;
    a.gl = gl;
    a.n_heads = static_cast<int>(n_heads);
    a.n_kv_heads = static_cast<int>(n_kv);
    a.window = window;
    a.sinks = sinks_on ? sinks.data() : nullptr;
    a.scale = scale;
    a.out = got.data();
    test::EmulatedWarp w;
    ASSERT_TRUE(w.run([&](test::EmulatedWarp::Lane& lane) {
      for (int64_t qt = 0; qt < (n + 15) / 16; ++qt)
        for (int h = 0; h < n_heads; ++h) cuda::flash_attention_tile<HD>(lane, a, qt, h);
    })) << w.why();
    mmas += w.n_mma();
    f32_sdpa_sink_ref(q16.data(), pos.data(), n, n_heads, n_kv, HD, view, window, sinks_on ? sinks.data() : minf.data(), scale, want.data());
    f32_sdpa_sink_ref(q16.data(), pos.data(), n, n_heads, n_kv, HD, view, window, sinks_on ? minf.data() : sinks.data(), scale, nos.data());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "output " << i << " never written or not finite, chunk at " << p0;
      worst = std::max(worst, double(std::fabs(got[i] - want[i])));
      sink_gap = std::max(sink_gap, double(std::fabs(nos[i] - want[i])));
    }
  }
  const double bound = std::ldexp(1.0, -8) * vmax + 1e-5;
  EXPECT_LT(worst, bound) << "HD " << HD << " n_pos " << n_pos << " window " << window << " chunk " << chunk;
  EXPECT_GT(sink_gap, 10 * bound) << "the sinks (or their absence) make no difference here";
  EXPECT_GT(mmas, 0);
}

TEST(CudaFlashAttention, EmulatedWarpMatchesReference) {
  run_flash_case<64>(150, 0, 48, false, true);   // full layers, partial tiles, sinks
  run_flash_case<64>(200, 16, 40, true, true);   // a sliding ring (window 16), sinks
  run_flash_case<16>(100, 0, 37, false, false);  // head_dim 16 (the golden models), no sinks
  run_flash_case<16>(120, 16, 64, true, true);
}

TEST(CudaAttentionMath, SplitsCoverEveryKeyOnce) {
  for (int64_t pos : {0, 1, 255, 256, 257, 1000, 8191}) {
    for (int64_t window : {0, 1, 128, 4096}) {
      const KeyRange r = cuda::query_keys(pos, window);
      ASSERT_EQ(r.hi, pos + 1);
      ASSERT_EQ(r.lo, window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0);
      int64_t next = r.lo;
      const int64_t n = cuda::n_key_splits(r.hi - r.lo);
      for (int64_t j = 0; j < n + 2; ++j) {
        const KeyRange s = cuda::split_keys(r, j);
        if (j >= n) {
          EXPECT_EQ(s.lo, s.hi);
          continue;
        }
        EXPECT_EQ(s.lo, next);
        EXPECT_GT(s.hi, s.lo);
        next = s.hi;
      }
      EXPECT_EQ(next, r.hi);
    }
  }
}

TEST(CudaAttentionMath, PageOffsetsAreABijection) {
  const PageGeom g{3, 40};
  std::vector<int> hit(static_cast<size_t>(cuda::page_elems(g)), 0);
  for (int64_t gl = 0; gl < g.n_layers; ++gl)
    for (int kv = 0; kv < 2; ++kv)
      for (int64_t p = 0; p < cuda::kPagePositions; ++p)
        for (int64_t i = 0; i < g.kv_dim; ++i) ++hit[static_cast<size_t>(cuda::page_row_offset(g, gl, kv, p + 5 * cuda::kPagePositions) + i)];
  for (int h : hit) ASSERT_EQ(h, 1);
}

TEST(CudaTopk, MatchesReferenceWithTies) {
  std::mt19937 rng(7);
  for (int n : {4, 32, 128}) {
    for (int k : {1, 4}) {
      for (int rep = 0; rep < 2000; ++rep) {
        std::vector<float> l(static_cast<size_t>(n));
        // coarse values: many ties
        for (auto& x : l) x = static_cast<float>(static_cast<int>(rng() % 9) - 4) * (rep % 2 ? 0.5f : 0.37f);
        int32_t gi[cuda::kMaxTopK], wi[cuda::kMaxTopK];
        float gw[cuda::kMaxTopK], ww[cuda::kMaxTopK];
        cuda::topk_softmax_row(l.data(), n, k, gi, gw);
        f32_topk_softmax_ref(l.data(), n, k, wi, ww);
        for (int j = 0; j < k; ++j) {
          ASSERT_EQ(gi[j], wi[j]) << "n " << n << " k " << k << " rep " << rep << " slot " << j;
          ASSERT_EQ(gw[j], ww[j]);
        }
      }
    }
  }
}

TEST(CudaTopk, NanIsNeverChosen) {
  std::vector<float> l = {NAN, 1.0f, NAN, 3.0f, 2.0f};
  int32_t idx[2];
  float w[2];
  cuda::topk_softmax_row(l.data(), 5, 2, idx, w);
  EXPECT_EQ(idx[0], 3);
  EXPECT_EQ(idx[1], 4);
  EXPECT_FLOAT_EQ(w[0] + w[1], 1.0f);
}

}  // namespace
}  // namespace oss4
