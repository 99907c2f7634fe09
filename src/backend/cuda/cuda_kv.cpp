#include "backend/cuda/cuda_kv.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

namespace oss4::cuda {

namespace {

Status cuda_ok(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return ok_status();
  return error("KV cache: " + what + ": " + cudaGetErrorString(e));
}

}  // namespace

KvLayout KvLayout::of(const ModelConfig& cfg) {
  KvLayout k;
  k.window = cfg.sliding_window;
  int64_t n[2] = {0, 0};
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const int g = cfg.layer_types[static_cast<size_t>(l)] == LayerKind::kSliding ? 1 : 0;
    k.group.push_back(g);
    k.gl.push_back(n[g]++);
  }
  for (int g = 0; g < 2; ++g) k.geom[g] = PageGeom{n[g], cfg.kv_dim()};
  return k;
}

int64_t KvLayout::bytes_per_position() const { return (geom[0].n_layers + geom[1].n_layers) * 2 * geom[0].kv_dim * 2; }

Result<uint16_t*> PagePool::take(int group) {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_[group].empty()) {
    const size_t pb = page_bytes(group);
    OSS4_ASSIGN_OR_RETURN(DeviceBuffer slab, DeviceBuffer::alloc(pb * kSlabPages, "KV cache pages"));
    for (int i = kSlabPages - 1; i >= 0; --i) free_[group].push_back(reinterpret_cast<uint16_t*>(slab.data() + pb * static_cast<size_t>(i)));
    slabs_[group].push_back(std::move(slab));
  }
  uint16_t* p = free_[group].back();
  free_[group].pop_back();
  return p;
}

void PagePool::give(int group, uint16_t* page) {
  std::lock_guard<std::mutex> lock(mu_);
  free_[group].push_back(page);
}

size_t PagePool::bytes_allocated() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (int g = 0; g < 2; ++g) n += slabs_[g].size() * kSlabPages * page_bytes(g);
  return n;
}

Result<std::unique_ptr<CudaKvCache>> CudaKvCache::create(std::shared_ptr<PagePool> pool, int64_t max_ctx, int64_t max_chunk,
                                                         bool sliding_ring) {
  if (max_ctx <= 0 || max_chunk <= 0) return error("KV cache: max_ctx and max_chunk must be positive");
  const KvLayout& k = pool->layout();
  // a ring only where it saves memory (its pages hold fewer positions than the context)
  const int64_t slots = sliding_ring && k.geom[1].n_layers > 0 ? sliding_ring_slots(k.window, max_chunk, max_ctx) : 0;
  std::unique_ptr<CudaKvCache> c(new CudaKvCache(std::move(pool), max_ctx, max_chunk, slots > 0));
  c->g_[1].ring_slots = slots;
  return c;
}

CudaKvCache::~CudaKvCache() {
  for (int g = 0; g < 2; ++g)
    for (uint16_t* p : g_[g].pages) pool_->give(g, p);
}

int64_t CudaKvCache::n_slots(int g) const {
  return g_[g].ring_slots > 0 ? g_[g].ring_slots : static_cast<int64_t>(g_[g].pages.size());
}

PageTable CudaKvCache::table(int g) const {
  return PageTable{reinterpret_cast<uint16_t* const*>(g_[g].table.data()), n_slots(g)};
}

Status CudaKvCache::grow(int64_t need) {
  const KvLayout& k = pool_->layout();
  for (int g = 0; g < 2; ++g) {
    if (k.geom[g].n_layers == 0) continue;
    Group& G = g_[g];
    int64_t want = pages_for(need);
    if (G.ring_slots > 0) want = std::min(want, G.ring_slots);
    if (static_cast<int64_t>(G.pages.size()) >= want && G.uploaded == G.pages.size()) continue;
    Status taken = ok_status();
    while (taken.ok() && static_cast<int64_t>(G.pages.size()) < want) {
      auto p = pool_->take(g);
      if (p.ok()) {
        G.pages.push_back(*p);
      } else {
        taken = p.status();
      }
    }
    // the device table: n_slots pointers (a ring's slots past the pages allocated so far are never read). Uploaded
    // even when a page could not be had, so the table always holds every page n_slots counts.
    OSS4_TRY(upload_table(g));
    OSS4_TRY(taken);
  }
  return ok_status();
}

Status CudaKvCache::upload_table(int g) {
  Group& G = g_[g];
  {
    const int64_t slots = n_slots(g);
    std::vector<uint16_t*> host(static_cast<size_t>(slots), nullptr);  // [slots] device pointers
    std::copy(G.pages.begin(), G.pages.end(), host.begin());
    const size_t need_bytes = host.size() * sizeof(uint16_t*);
    if (G.table.size() < need_bytes) {
      // capacity for the whole context at once when it is small, else doubling
      const size_t cap = std::max(need_bytes, std::min(static_cast<size_t>(pages_for(max_ctx_)) * sizeof(uint16_t*), 2 * need_bytes));
      OSS4_ASSIGN_OR_RETURN(G.table, DeviceBuffer::alloc(std::max(cap, need_bytes), "KV cache page table"));
    }
    OSS4_TRY(cuda_ok(cudaMemcpy(G.table.data(), host.data(), need_bytes, cudaMemcpyHostToDevice), "page table upload"));
    // (the copy ran on the legacy stream, which the backend's non-blocking stream does not wait for)
    OSS4_TRY(cuda_ok(cudaDeviceSynchronize(), "page table upload"));
    G.uploaded = G.pages.size();
  }
  return ok_status();
}

size_t CudaKvCache::bytes() const {
  return g_[0].pages.size() * pool_->page_bytes(0) + g_[1].pages.size() * pool_->page_bytes(1);
}

namespace {
// (copies already queued must land before the new cache's pages go back to the pool)
std::unique_ptr<KvCache> failed_clone() {
  cudaDeviceSynchronize();
  return nullptr;
}
}  // namespace

std::unique_ptr<KvCache> CudaKvCache::clone() const {
  std::unique_ptr<CudaKvCache> c(new CudaKvCache(pool_, max_ctx_, max_chunk_, ring_));
  // as many pages in each group as this cache has, their bytes copied device to device
  for (int g = 0; g < 2; ++g) {
    Group& G = c->g_[g];
    G.ring_slots = g_[g].ring_slots;
    while (G.pages.size() < g_[g].pages.size()) {
      auto p = pool_->take(g);
      if (!p.ok()) return failed_clone();  // (the caller reports it: bench, tests)
      G.pages.push_back(*p);
    }
    for (size_t i = 0; i < g_[g].pages.size(); ++i)
      if (cudaMemcpy(G.pages[i], g_[g].pages[i], pool_->page_bytes(g), cudaMemcpyDeviceToDevice) != cudaSuccess) return failed_clone();
    if (!G.pages.empty() && !c->upload_table(g).ok()) return failed_clone();
  }
  // (device-to-device copies return before they finish, on the legacy stream the backend's stream does not wait for)
  if (cudaDeviceSynchronize() != cudaSuccess) return nullptr;
  c->n_pos_ = n_pos_;
  return c;
}

}  // namespace oss4::cuda
