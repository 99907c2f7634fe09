#include "text/bpe.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <queue>

namespace oss4 {

namespace {

constexpr int32_t kNoRank = INT32_MAX;
// pieces up to this many bytes use the linear scan (stack buffers, O(n^2) worst case); longer ones the heap.
constexpr size_t kLinearMaxBytes = 128;

inline uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

inline uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull * (n + 1);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    h ^= (static_cast<uint64_t>(a) << 32) | b;
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const uint8_t*>(p);
    h ^= (static_cast<uint64_t>(u[0]) << 16) | (static_cast<uint64_t>(u[n >> 1]) << 8) | u[n - 1];
  }
  return mix(h * 0x94D049BB133111EBull);
}

}  // namespace

Status BpeRanks::add(std::string_view bytes, int32_t rank) {
  if (rank < 0) return error("negative rank " + std::to_string(rank));
  if (bytes.empty()) return error("empty token (rank " + std::to_string(rank) + ")");
  if (bytes.size() > 0xFFFF) return error("token of rank " + std::to_string(rank) + " is longer than 65535 bytes");
  if (arena_.size() + bytes.size() > UINT32_MAX) return error("token bytes exceed 4 GiB");
  if (static_cast<size_t>(rank) >= spans_.size()) spans_.resize(static_cast<size_t>(rank) + 1);
  Span& s = spans_[static_cast<size_t>(rank)];
  if (s.len != 0) return error("rank " + std::to_string(rank) + " appears twice");
  s.offset = static_cast<uint32_t>(arena_.size());
  s.len = static_cast<uint32_t>(bytes.size());
  arena_.append(bytes);
  max_len_ = std::max(max_len_, s.len);
  ++n_tokens_;
  return ok_status();
}

Status BpeRanks::finish() {
  size_t cap = 16;
  while (cap < 2 * n_tokens_) cap *= 2;
  slots_.assign(cap, Slot{{}, 0, 0, 0, -1});
  mask_ = cap - 1;
  for (size_t r = 0; r < spans_.size(); ++r) {
    const Span s = spans_[r];
    if (s.len == 0) continue;
    const std::string_view b(arena_.data() + s.offset, s.len);
    const int32_t dup = find(b);
    if (dup >= 0) return error("ranks " + std::to_string(dup) + " and " + std::to_string(r) + " have the same bytes");
    const uint64_t h = hash_bytes(b.data(), b.size());
    uint64_t i = h & mask_;
    while (slots_[i].rank >= 0) i = (i + 1) & mask_;
    Slot& slot = slots_[i];
    std::memcpy(slot.head, b.data(), std::min<size_t>(8, b.size()));
    slot.offset = s.offset;
    slot.len = static_cast<uint16_t>(s.len);
    slot.tag = static_cast<uint16_t>(h >> 48);
    slot.rank = static_cast<int32_t>(r);
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_rank_[b] = find(std::string_view(&c, 1));
    if (byte_rank_[b] < 0) return error("byte-level BPE needs every single byte as a token; byte " + std::to_string(b) + " is missing");
  }

  // the pair table: collect the splits first to size it.
  std::vector<PairSlot> pairs;
  pairs.reserve(n_tokens_ * 3);
  for (size_t r = 0; r < spans_.size(); ++r) {
    const std::string_view b = bytes(static_cast<int32_t>(r));
    for (size_t k = 1; k < b.size(); ++k) {
      const int32_t left = find(b.substr(0, k));
      if (left < 0) continue;
      const int32_t right = find(b.substr(k));
      if (right >= 0) pairs.push_back({static_cast<uint32_t>(left), static_cast<uint32_t>(right), static_cast<int32_t>(r)});
    }
  }
  size_t pair_cap = 16;
  while (pair_cap < 2 * pairs.size()) pair_cap *= 2;
  pairs_.assign(pair_cap, PairSlot{0, 0, -1});
  pair_mask_ = pair_cap - 1;
  for (const PairSlot& p : pairs) {
    // (a, b) is unique: bytes(a) + bytes(b) is exactly one token.
    uint64_t i = mix(pair_key(static_cast<int32_t>(p.a), static_cast<int32_t>(p.b))) & pair_mask_;
    while (pairs_[i].rank >= 0) i = (i + 1) & pair_mask_;
    pairs_[i] = p;
  }
  n_pairs_ = pairs.size();
  byte_pair_.assign(256 * 256, -1);
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) byte_pair_[static_cast<size_t>(a * 256 + b)] = find_pair(byte_rank_[a], byte_rank_[b]);
  return ok_status();
}

int32_t BpeRanks::find_pair(int32_t a, int32_t b) const {
  if (pairs_.empty()) return -1;
  const auto ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
  for (uint64_t i = mix(pair_key(a, b)) & pair_mask_;; i = (i + 1) & pair_mask_) {
    const PairSlot& p = pairs_[i];
    if (p.rank < 0) return -1;
    if (p.a == ua && p.b == ub) return p.rank;
  }
}

int32_t BpeRanks::find(std::string_view bytes) const {
  if (bytes.empty() || bytes.size() > max_len_ || slots_.empty()) return -1;
  const uint64_t h = hash_bytes(bytes.data(), bytes.size());
  const auto tag = static_cast<uint16_t>(h >> 48);
  const auto len = static_cast<uint16_t>(bytes.size());
  const size_t n_head = std::min<size_t>(8, len);
  uint64_t head = 0;
  std::memcpy(&head, bytes.data(), n_head);
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.rank < 0) return -1;
    if (slot.tag != tag || slot.len != len) continue;
    uint64_t slot_head;
    std::memcpy(&slot_head, slot.head, 8);
    if (slot_head == head && (len <= 8 || std::memcmp(arena_.data() + slot.offset + 8, bytes.data() + 8, len - 8u) == 0)) return slot.rank;
  }
}

std::string_view BpeRanks::bytes(int32_t rank) const {
  if (rank < 0 || static_cast<size_t>(rank) >= spans_.size()) return {};
  const Span s = spans_[static_cast<size_t>(rank)];
  return std::string_view(arena_.data() + s.offset, s.len);
}

void BpeRanks::encode_piece(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.size() == 1) {
    out->push_back(byte_rank_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const int32_t r = find(piece);
  if (r >= 0) {
    out->push_back(r);
    return;
  }
  if (piece.size() <= kLinearMaxBytes)
    merge_linear(piece, out);
  else
    merge_heap(piece, out);
}

void BpeRanks::merge_linear(std::string_view piece, std::vector<int32_t>* out) const {
  // tiktoken's _byte_pair_merge: tok[i] is part i, pair[i] the rank of part i joined with part i+1. Each step
  // merges the leftmost lowest pair and recomputes its two neighbours.
  struct Part {
    int32_t tok;
    int32_t pair;  // kNoRank: no token
  };
  const size_t n = piece.size();
  Part stack_parts[kLinearMaxBytes];
  std::vector<Part> heap_parts;
  Part* parts = stack_parts;
  if (n > kLinearMaxBytes) {
    heap_parts.resize(n);
    parts = heap_parts.data();
  }
  const auto* p = reinterpret_cast<const uint8_t*>(piece.data());
  for (size_t i = 0; i < n; ++i) {
    parts[i].tok = byte_rank_[p[i]];
    const int32_t r = i + 1 < n ? byte_pair_[(static_cast<size_t>(p[i]) << 8) | p[i + 1]] : -1;
    parts[i].pair = r < 0 ? kNoRank : r;
  }
  size_t n_parts = n;
  auto pair_of = [&](size_t i) {
    const int32_t r = find_pair(parts[i].tok, parts[i + 1].tok);
    return r < 0 ? kNoRank : r;
  };
  for (;;) {
    int32_t best = kNoRank;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < n_parts; ++i) {
      if (parts[i].pair < best) {
        best = parts[i].pair;
        bi = i;
      }
    }
    if (best == kNoRank) break;
    parts[bi].tok = best;
    std::memmove(&parts[bi + 1], &parts[bi + 2], (n_parts - bi - 2) * sizeof(Part));
    --n_parts;
    parts[bi].pair = bi + 1 < n_parts ? pair_of(bi) : kNoRank;
    if (bi > 0) parts[bi - 1].pair = pair_of(bi - 1);
  }
  for (size_t i = 0; i < n_parts; ++i) out->push_back(parts[i].tok);
}

void BpeRanks::merge_heap(std::string_view piece, std::vector<int32_t>* out) const {
  // the same merges in O(n log n): parts are a linked list indexed by their first byte, candidate pairs sit in a
  // min-heap keyed by (rank, position) so ties go to the leftmost pair as in the linear scan; stale entries are
  // skipped when popped.
  const size_t n = piece.size();
  std::vector<uint32_t> next(n + 1), prev(n + 1);
  std::vector<int32_t> pair(n + 1, kNoRank), tok(n + 1, -1);
  std::vector<uint64_t> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> heap(std::greater<>{}, std::move(heap_storage));
  auto pair_of = [&](uint32_t i) {  // part i joined with its successor
    if (next[i] >= n) return kNoRank;
    const int32_t r = find_pair(tok[i], tok[next[i]]);
    return r < 0 ? kNoRank : r;
  };
  auto push = [&](uint32_t i) {
    if (pair[i] != kNoRank) heap.push((static_cast<uint64_t>(pair[i]) << 32) | i);
  };
  for (size_t i = 0; i <= n; ++i) {
    next[i] = static_cast<uint32_t>(i + 1);
    prev[i] = static_cast<uint32_t>(i - 1);  // prev[0] wraps; never read
  }
  for (size_t i = 0; i < n; ++i) tok[i] = byte_rank_[static_cast<uint8_t>(piece[i])];
  for (uint32_t i = 0; i < n; ++i) {
    pair[i] = pair_of(i);
    push(i);
  }
  while (!heap.empty()) {
    const uint64_t top = heap.top();
    heap.pop();
    const auto i = static_cast<uint32_t>(top & 0xFFFFFFFFu);
    const auto r = static_cast<int32_t>(top >> 32);
    if (tok[i] < 0 || pair[i] != r) continue;  // merged away or re-ranked since it was pushed
    const uint32_t j = next[i];
    tok[i] = r;
    tok[j] = -1;
    pair[j] = kNoRank;
    next[i] = next[j];
    prev[next[j]] = i;
    pair[i] = pair_of(i);
    push(i);
    if (i > 0) {
      const uint32_t q = prev[i];
      pair[q] = pair_of(q);
      push(q);
    }
  }
  for (uint32_t i = 0; i < n; i = next[i]) out->push_back(tok[i]);
}

}  // namespace oss4
