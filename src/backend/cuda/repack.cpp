#include "backend/cuda/repack.h"

#include <algorithm>
#include <cmath>

namespace oss4::cuda {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// shape shared by both formats: rows padded to 16 (paired: to 8 gate/up pairs), inputs to 64.
Fp4TileMatrix make_shell(Fp4Format f, int64_t n_out, int64_t n_in, bool paired) {
  Fp4TileMatrix m;
  m.format = f;
  m.n_out = n_out;
  m.n_in = n_in;
  m.paired = paired;
  m.n_row_tiles = paired ? ceil_div(n_out / 2, 8) : ceil_div(n_out, kTileRows);
  m.n_k_tiles = ceil_div(n_in, kTileK);
  m.tiles.assign(static_cast<size_t>(m.n_row_tiles * m.n_k_tiles * tile_bytes(f)), 0);
  return m;
}

// calls fn(tile, r, src_row) for every tile row that holds a checkpoint row.
template <class Fn>
void for_each_tile_row(const Fp4TileMatrix& m, Fn&& fn) {
  for (int64_t rt = 0; rt < m.n_row_tiles; ++rt) {
    for (int r = 0; r < kTileRows; ++r) {
      const int64_t src = tile_source_row(rt, r, m.paired);
      if (src < m.n_out) fn(rt, r, src);
    }
  }
}

uint8_t* tile_ptr(Fp4TileMatrix& m, int64_t rt, int64_t kt) {
  return m.tiles.data() + (rt * m.n_k_tiles + kt) * tile_bytes(m.format);
}
const uint8_t* tile_ptr(const Fp4TileMatrix& m, int64_t rt, int64_t kt) {
  return m.tiles.data() + (rt * m.n_k_tiles + kt) * tile_bytes(m.format);
}

void put_nibble(uint8_t* tile, int r, int k, uint8_t code) {
  const NibbleSlot s = tile_nibble_slot(r, k);
  uint8_t& b = tile[s.lane * 16 + s.word * 4 + s.nibble / 2];
  b = static_cast<uint8_t>(b | ((code & 0xf) << (4 * (s.nibble % 2))));
}
uint8_t get_nibble(const uint8_t* tile, int r, int k) {
  const NibbleSlot s = tile_nibble_slot(r, k);
  return static_cast<uint8_t>((tile[s.lane * 16 + s.word * 4 + s.nibble / 2] >> (4 * (s.nibble % 2))) & 0xf);
}

// element (o, i) of a source matrix: byte index of its nibble pair and of its block scale.
struct SourceIndex {
  int64_t n_out, n_in, block;
  SourceOrder order;
  int64_t byte(int64_t o, int64_t i) const {
    return order == SourceOrder::kRowMajor ? o * (n_in / 2) + i / 2 : (i / 2) * n_out + o;
  }
  int64_t scale(int64_t o, int64_t i) const {
    return order == SourceOrder::kRowMajor ? o * (n_in / block) + i / block : (i / block) * n_out + o;
  }
};

void fill_tiles(Fp4TileMatrix& m, const uint8_t* packed, const uint8_t* scales, const SourceIndex& ix) {
  const int blk = scale_block(m.format);
  for_each_tile_row(m, [&](int64_t rt, int r, int64_t o) {
    for (int64_t i = 0; i < m.n_in; ++i) {
      uint8_t* tile = tile_ptr(m, rt, i / kTileK);
      const int k = static_cast<int>(i % kTileK);
      put_nibble(tile, r, k, static_cast<uint8_t>(packed[ix.byte(o, i)] >> (4 * (i % 2))));
      if (k % blk == 0) tile[kTileNibbleBytes + tile_scale_slot(m.format, r, k / blk)] = scales[ix.scale(o, i)];
    }
  });
}

}  // namespace

Result<Fp4TileMatrix> repack_nvfp4(const uint8_t* packed, const uint8_t* scales, float scale2, int64_t n_out, int64_t n_in,
                                   SourceOrder order, bool paired, const std::string& name) {
  if (n_out <= 0 || n_in <= 0 || n_in % 16 != 0)
    return error(name + ": NVFP4 shape [" + std::to_string(n_out) + ", " + std::to_string(n_in) +
                 "]: inputs must be a positive multiple of 16");
  if (paired && n_out % 2 != 0) return error(name + ": gate/up pairing needs an even number of rows, got " + std::to_string(n_out));
  if (!std::isfinite(scale2) || !(scale2 > 0.0f))
    return error(name + ": weight_scale_2 must be finite and positive, got " + std::to_string(scale2));
  const SourceIndex ix{n_out, n_in, 16, order};
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t b = 0; b < n_in / 16; ++b) {
      const uint8_t s = scales[ix.scale(o, b * 16)];
      if ((s & 0x7f) == 0x7f)
        return error(name + ": NaN block scale (E4M3 0x" + (s == 0xff ? std::string("ff") : std::string("7f")) + ") at row " +
                     std::to_string(o) + ", block " + std::to_string(b));
    }
  }
  Fp4TileMatrix m = make_shell(Fp4Format::kNvfp4, n_out, n_in, paired);
  m.scale2 = scale2;
  m.epilogue_scale = nvfp4_epilogue_scale(scale2);
  if (!std::isfinite(m.epilogue_scale)) return error(name + ": weight_scale_2 * 256 overflows f32");
  fill_tiles(m, packed, scales, ix);
  return m;
}

Result<Fp4TileMatrix> repack_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t n_out, int64_t n_in, bool paired,
                                   const std::string& name) {
  if (n_out <= 0 || n_in <= 0 || n_in % 32 != 0)
    return error(name + ": MXFP4 shape [" + std::to_string(n_out) + ", " + std::to_string(n_in) +
                 "]: inputs must be a positive multiple of 32");
  if (paired && n_out % 2 != 0) return error(name + ": gate/up pairing needs an even number of rows, got " + std::to_string(n_out));
  const int64_t n_scales = n_out * (n_in / 32);
  int lo = 255, hi = 0;
  for (int64_t i = 0; i < n_scales; ++i) {
    if (scales[i] == 0xff) return error(name + ": NaN E8M0 scale (0xff) at row " + std::to_string(i / (n_in / 32)) +
                                        ", block " + std::to_string(i % (n_in / 32)));
    lo = std::min<int>(lo, scales[i]);
    hi = std::max<int>(hi, scales[i]);
  }
  int c = 0;
  if (!mxfp4_tensor_shift(lo, hi, &c))
    return error(name + ": E8M0 scales span " + std::to_string(lo) + ".." + std::to_string(hi) +
                 ", more than the 133 codes one BF16 shift holds exactly");
  Fp4TileMatrix m = make_shell(Fp4Format::kMxfp4, n_out, n_in, paired);
  m.mx_shift = c;
  m.epilogue_scale = mxfp4_epilogue_scale(c);
  fill_tiles(m, blocks, scales, SourceIndex{n_out, n_in, 32, SourceOrder::kRowMajor});
  return m;
}

void unpack_fp4(const Fp4TileMatrix& m, uint8_t* packed, uint8_t* scales) {
  const int blk = scale_block(m.format);
  std::fill(packed, packed + m.n_out * (m.n_in / 2), uint8_t{0});
  for_each_tile_row(m, [&](int64_t rt, int r, int64_t o) {
    for (int64_t i = 0; i < m.n_in; ++i) {
      const uint8_t* tile = tile_ptr(m, rt, i / kTileK);
      const int k = static_cast<int>(i % kTileK);
      packed[o * (m.n_in / 2) + i / 2] |= static_cast<uint8_t>(get_nibble(tile, r, k) << (4 * (i % 2)));
      if (k % blk == 0) scales[o * (m.n_in / blk) + i / blk] = tile[kTileNibbleBytes + tile_scale_slot(m.format, r, k / blk)];
    }
  });
}

Status ConsumedTensors::check_all(const std::vector<std::string>& checkpoint_names) const {
  std::vector<std::string> left;
  for (const auto& n : checkpoint_names)
    if (!marked(n)) left.push_back(n);
  if (left.empty()) return ok_status();
  std::string msg = std::to_string(left.size()) + " checkpoint tensor(s) not consumed by the load: ";
  for (size_t i = 0; i < left.size() && i < 8; ++i) msg += (i ? ", " : "") + left[i];
  if (left.size() > 8) msg += ", ...";
  return error(msg);
}

Status ConsumedTensors::check_known(const std::vector<std::string>& checkpoint_names) const {
  const std::set<std::string> all(checkpoint_names.begin(), checkpoint_names.end());
  for (const auto& n : names_)
    if (!all.count(n)) return error("the load consumed tensor " + n + ", which the checkpoint does not hold");
  return ok_status();
}

Status check_checkpoint_consumed(const TensorStore& store, const std::vector<std::string>& unused_suffixes) {
  ConsumedTensors c;
  const std::vector<std::string> all = store.names();
  const std::vector<std::string> left = store.names_not_required();
  const std::set<std::string> left_set(left.begin(), left.end());
  for (const auto& n : all) {
    bool skip = !left_set.count(n);
    for (const auto& suf : unused_suffixes)
      skip = skip || (n.size() >= suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0);
    if (skip) c.mark(n);
  }
  return c.check_all(all).with_context(store.dir());
}

std::vector<std::string> nvfp4_linear_tensor_names(const std::string& base, bool experts) {
  if (experts)
    return {base, base + "_weight_scale", base + "_weight_scale_2", base + "_input_scale", base + "_bias"};
  return {base + ".weight", base + ".weight_scale", base + ".weight_scale_2", base + ".input_scale", base + ".bias"};
}

Result<Fp4TileMatrix> repack_weight(const WeightView& w, bool paired, const std::string& name) {
  if (w.type == WeightType::kNvfp4) {
    return repack_nvfp4(w.data, w.scales, w.scale2, w.n_out, w.n_in, w.in_major() ? SourceOrder::kInMajor : SourceOrder::kRowMajor, paired,
                        name);
  }
  if (w.type == WeightType::kMxfp4 && !w.in_major()) return repack_mxfp4(w.data, w.scales, w.n_out, w.n_in, paired, name);
  return error(name + ": a " + weight_type_name(w.type) + (w.in_major() ? " in-major" : " row-major") +
               " weight has no FP4 tile layout (NVFP4 in either layout, MXFP4 row-major)");
}

}  // namespace oss4::cuda
