// The PTX ISA's fragment tables for mma.sync.aligned.m16n8k16 with .bf16 A/B and .f32 C/D (section "Matrix Fragments
// for mma.m16n8k16 with floating point type"), written from the ISA, not from the kernels; and a warp of 32 host
// threads that runs a warp program (a kernel's body written over a Warp policy) with shuffles and mma emulated from
// these tables. groupID = lane >> 2, threadID_in_group = lane % 4.
#pragma once

#include <ucontext.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "numeric/float_formats.h"

namespace oss4::test {

struct Coord {
  int row, col;
};
// A (16 x 16, row-major "row"): a0..a7 in 4 registers of two elements (a_{2r} low half, a_{2r+1} high half).
//   row = groupID for a_i with i < 2 or 4 <= i < 6, groupID + 8 otherwise
//   col = threadID_in_group * 2 + (i & 1) for i < 4, + 8 for i >= 4
inline Coord ptx_a(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
  const int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
  return {row, col};
}
// B (16 x 8, "col"): b0..b3 in 2 registers. row (k) = threadID_in_group * 2 + (i & 1) for i < 2, + 8 for i >= 2;
// col (n) = groupID.
inline Coord ptx_b(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  return {t * 2 + (i & 1) + (i >= 2 ? 8 : 0), g};
}
// C/D (16 x 8 f32): c0..c3. row = groupID for i < 2, groupID + 8 otherwise; col = threadID_in_group * 2 + (i & 1).
inline Coord ptx_c(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  return {i < 2 ? g : g + 8, t * 2 + (i & 1)};
}

// A warp of 32 lanes as fibers (ucontext) on the calling thread, in lockstep at every collective: each lane runs until
// it reaches a shuffle or an mma, and when all 32 have, the collective is carried out for all of them — shfl_xor
// exchanges values, mma computes D = A B + C of m16n8k16 (A and B BF16 from the lanes' registers placed by the tables
// above, products summed in double, rounded to f32 once). A lane that reaches a different collective than the others
// (divergence) or ends early is reported. Fibers instead of threads: a switch costs ~100 ns, not a context switch.
class EmulatedWarp {
 public:
  struct Lane {
    EmulatedWarp* w;
    int id;
    int lane() const { return id; }
    float shfl_xor(float v, int mask) {
      w->f_[id] = v;
      w->mask_[id] = mask;
      w->arrive(id, kShfl);
      return w->f_out_[id];
    }
    void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
      std::memcpy(w->a_[id], a, 16);
      w->b_[id][0] = b0, w->b_[id][1] = b1;
      std::memcpy(w->c_[id], c, 16);
      w->arrive(id, kMma);
      std::memcpy(c, w->d_[id], 16);
    }
  };

  // runs body(lane) for the 32 lanes; false (with why()) when they diverged at a collective
  bool run(const std::function<void(Lane&)>& body) {
    body_ = &body;
    for (int i = 0; i < 32; ++i) init_lane(i);
    for (;;) {
      for (int i = 0; i < 32; ++i) {
        if (state_[i] == kDone) continue;
        cur_ = i;
        swapcontext(&main_, &ctx_[i]);
      }
      int done = 0, shfl = 0, mma = 0;
      for (int i = 0; i < 32; ++i) done += state_[i] == kDone, shfl += state_[i] == kShfl, mma += state_[i] == kMma;
      if (done == 32) return why_.empty();
      if (shfl != 32 && mma != 32) {
        why_ = "lanes diverged: " + std::to_string(shfl) + " at a shuffle, " + std::to_string(mma) + " at an mma, " + std::to_string(done) + " done";
        return false;
      }
      if (shfl == 32) {
        for (int i = 0; i < 32; ++i) {
          if (mask_[i] != mask_[0]) why_ = "shuffle masks differ across lanes";
          f_out_[i] = f_[i ^ (mask_[i] & 31)];
        }
      } else {
        do_mma();
      }
      for (int i = 0; i < 32; ++i) state_[i] = kRunning;
    }
  }
  int64_t n_mma() const { return n_mma_; }
  const std::string& why() const { return why_; }

 private:
  enum State { kRunning, kShfl, kMma, kDone };
  // a lane's fiber, ready to start body_. getcontext returns twice in general: nothing here changes after it, so no
  // variable can be clobbered (-Wclobbered)
  __attribute__((noinline)) void init_lane(int i) {
    stacks_[i].assign(size_t{1} << 18, 0);
    ucontext_t* c = &ctx_[i];
    char* stack = stacks_[i].data();
    const size_t size = stacks_[i].size();
    getcontext(c);
    c->uc_stack.ss_sp = stack;
    c->uc_stack.ss_size = size;
    c->uc_link = &main_;
    makecontext(c, reinterpret_cast<void (*)()>(&EmulatedWarp::entry), 2, static_cast<int>(reinterpret_cast<uintptr_t>(this) >> 32),
                static_cast<int>(reinterpret_cast<uintptr_t>(this) & 0xffffffffu));
    state_[i] = kRunning;
  }
  static void entry(int hi, int lo) {
    auto* w = reinterpret_cast<EmulatedWarp*>((static_cast<uintptr_t>(static_cast<uint32_t>(hi)) << 32) | static_cast<uint32_t>(lo));
    Lane l{w, w->cur_};
    (*w->body_)(l);
    w->state_[l.id] = kDone;
  }  // (returns to main_ through uc_link)
  void arrive(int lane, State s) {
    state_[lane] = s;
    swapcontext(&ctx_[lane], &main_);
  }
  void do_mma() {
    double A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
      for (int i = 0; i < 8; ++i) {
        const Coord x = ptx_a(l, i);
        A[x.row][x.col] = bf16_to_f32(static_cast<uint16_t>(a_[l][i / 2] >> (16 * (i % 2))));
      }
      for (int i = 0; i < 4; ++i) {
        const Coord x = ptx_b(l, i);
        B[x.row][x.col] = bf16_to_f32(static_cast<uint16_t>(b_[l][i / 2] >> (16 * (i % 2))));
        const Coord y = ptx_c(l, i);
        C[y.row][y.col] = c_[l][i];
      }
    }
    for (int l = 0; l < 32; ++l) {
      for (int i = 0; i < 4; ++i) {
        const Coord y = ptx_c(l, i);
        double d = C[y.row][y.col];
        for (int k = 0; k < 16; ++k) d += A[y.row][k] * B[k][y.col];
        d_[l][i] = static_cast<float>(d);
      }
    }
    ++n_mma_;
  }

  const std::function<void(Lane&)>* body_ = nullptr;
  ucontext_t main_, ctx_[32];
  std::vector<char> stacks_[32];
  State state_[32] = {};
  int cur_ = 0;
  std::string why_;
  float f_[32] = {}, f_out_[32] = {};
  int mask_[32] = {};
  uint32_t a_[32][4] = {}, b_[32][2] = {};
  float c_[32][4] = {}, d_[32][4] = {};
  int64_t n_mma_ = 0;
};

}  // namespace oss4::test
