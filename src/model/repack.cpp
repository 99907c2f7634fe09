#include "model/repack.h"

#include "core/thread_pool.h"
#include "core/transpose.h"

namespace oss4 {

namespace {

bool repackable(const LinearWeight& w) {
  return w.type == WeightType::kNvfp4 && !w.in_major && repack_wants_in_major(w.n_out, w.n_in) && w.data && w.scales;
}

// drops what the row-major copy occupied: checkpoint pages, or a buffer built at load (a requantized lm_head)
void release_source(ModelWeights& m, const LinearWeight& w) {
  for (const std::string& name : {w.name, w.name + "_scale"})
    if (const TensorView* t = m.store.find(name)) m.store.release(*t);
  for (std::vector<uint8_t>& buf : m.owned)
    if (!buf.empty() && (buf.data() == w.data || buf.data() == w.scales)) std::vector<uint8_t>().swap(buf);
}

}  // namespace

bool repack_wants_in_major(int64_t n_out, int64_t n_in) { return n_out % 32 == 0 && n_in % 16 == 0; }

Result<size_t> repack_nvfp4_in_major(ModelWeights& m) {
  std::vector<LinearWeight*> todo;
  for (LayerWeights& L : m.layers)
    for (LinearWeight* w : {&L.wq, &L.wk, &L.wv, &L.wo})
      if (repackable(*w)) todo.push_back(w);
  if (repackable(m.lm_head)) todo.push_back(&m.lm_head);
  // buffers first (m.owned may reallocate its outer vector, never the inner buffers), then the transposes in parallel
  const size_t first = m.owned.size();
  for (LinearWeight* w : todo) {
    m.owned.emplace_back(static_cast<size_t>(w->n_out * w->n_in / 2));   // [n_in/2, n_out] codes
    m.owned.emplace_back(static_cast<size_t>(w->n_out * w->n_in / 16));  // [n_in/16, n_out] e4m3
  }
  size_t bytes = 0;
  kernel_pool().run(static_cast<int64_t>(todo.size()), [&](int64_t i) {
    const LinearWeight& w = *todo[static_cast<size_t>(i)];
    transpose_u8(w.data, w.n_out, w.n_in / 2, m.owned[first + 2 * static_cast<size_t>(i)].data());
    transpose_u8(w.scales, w.n_out, w.n_in / 16, m.owned[first + 2 * static_cast<size_t>(i) + 1].data());
  });
  for (size_t i = 0; i < todo.size(); ++i) {
    LinearWeight& w = *todo[i];
    release_source(m, w);
    w.data = m.owned[first + 2 * i].data();
    w.scales = m.owned[first + 2 * i + 1].data();
    w.in_major = true;
    bytes += m.owned[first + 2 * i].size() + m.owned[first + 2 * i + 1].size();
  }
  return bytes;
}

}  // namespace oss4
