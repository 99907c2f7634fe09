// Byte-level BPE as tiktoken does it: a table of mergeable tokens (bytes -> rank) and the merge of one regex piece.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

class BpeRanks {
 public:
  // collects a token (errors: negative or reused rank, empty or over-long bytes); call finish() once all are added.
  Status add(std::string_view bytes, int32_t rank);
  // builds the lookup tables. Errors: two ranks with the same bytes, a single byte without a token.
  Status finish();

  // rank of the token with exactly these bytes, or -1.
  int32_t find(std::string_view bytes) const;
  // rank of the token whose bytes are those of rank a followed by those of rank b, or -1. (Every part of a piece
  // during the merge is a token, so this pair table answers all of the merge's lookups without hashing bytes.)
  int32_t find_pair(int32_t a, int32_t b) const;
  size_t n_pairs() const { return n_pairs_; }
  // bytes of the token with this rank; empty if there is none.
  std::string_view bytes(int32_t rank) const;
  // one more than the largest rank (ranks need not be contiguous).
  int32_t rank_end() const { return static_cast<int32_t>(spans_.size()); }
  size_t size() const { return n_tokens_; }

  // appends the ranks of one pre-tokenized piece (non-empty): the whole piece if it is a token, else repeated merges
  // of the adjacent pair whose concatenation has the lowest rank (leftmost on ties).
  void encode_piece(std::string_view piece, std::vector<int32_t>* out) const;

  // the two merge loops, exposed for tests: a linear scan (tiktoken's, for short pieces) and a heap (long pieces).
  void merge_linear(std::string_view piece, std::vector<int32_t>* out) const;
  void merge_heap(std::string_view piece, std::vector<int32_t>* out) const;

 private:
  struct Span {
    uint32_t offset = 0;
    uint32_t len = 0;  // 0: no token with this rank
  };
  struct Slot {
    uint8_t head[8];  // the first bytes of the token, zero-padded: tokens up to 8 bytes never touch arena_
    uint32_t offset;
    uint16_t len;
    uint16_t tag;  // high hash bits, to skip most byte comparisons
    int32_t rank;  // -1: empty
  };
  struct PairSlot {
    uint32_t a, b;
    int32_t rank;  // -1: empty
  };

  std::string arena_;        // all token bytes, back to back
  std::vector<Span> spans_;  // [rank_end()] where each rank's bytes are in arena_
  std::vector<Slot> slots_;  // open addressing, linear probing; size is a power of two
  uint64_t mask_ = 0;
  uint32_t max_len_ = 0;  // longest token: longer byte strings are never looked up

  // (a, b) -> rank of bytes(a) + bytes(b), for every token and every split of it into two tokens.
  std::vector<PairSlot> pairs_;  // open addressing, linear probing
  uint64_t pair_mask_ = 0;
  size_t n_pairs_ = 0;
  std::vector<int32_t> byte_pair_;  // [256 * 256] the pair table for two single bytes
  size_t n_tokens_ = 0;
  int32_t byte_rank_[256] = {};
};

}  // namespace oss4
