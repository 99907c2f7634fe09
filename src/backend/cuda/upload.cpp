#include "backend/cuda/upload.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace oss4::cuda {

namespace {
Status cuda_status(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return ok_status();
  return error(what + ": " + cudaGetErrorString(e));
}
}  // namespace

DeviceBuffer::~DeviceBuffer() {
  if (p_ != nullptr) cudaFree(p_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (p_ != nullptr) cudaFree(p_);
    p_ = o.p_;
    n_ = o.n_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}

Result<DeviceBuffer> DeviceBuffer::alloc(size_t n, const std::string& what) {
  DeviceBuffer b;
  void* p = nullptr;
  OSS4_TRY(cuda_status(cudaMalloc(&p, std::max<size_t>(n, 1)), what + ": cudaMalloc of " + std::to_string(n) + " bytes"));
  b.p_ = static_cast<uint8_t*>(p);
  b.n_ = n;
  return b;
}

Result<Uploader> Uploader::create(size_t chunk) {
  Uploader u;
  u.chunk_ = chunk;
  for (int i = 0; i < 2; ++i) {
    void* p = nullptr;
    OSS4_TRY(cuda_status(cudaMallocHost(&p, chunk), "upload: pinned staging of " + std::to_string(chunk) + " bytes"));
    u.staging_[i] = static_cast<uint8_t*>(p);
    cudaEvent_t e;
    OSS4_TRY(cuda_status(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "upload: event"));
    u.done_[i] = e;
  }
  cudaStream_t s;
  OSS4_TRY(cuda_status(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "upload: stream"));
  u.stream_ = s;
  return u;
}

Uploader::Uploader(Uploader&& o) noexcept : stream_(o.stream_), chunk_(o.chunk_) {
  for (int i = 0; i < 2; ++i) {
    staging_[i] = o.staging_[i];
    done_[i] = o.done_[i];
    o.staging_[i] = nullptr;
    o.done_[i] = nullptr;
  }
  o.stream_ = nullptr;
}

Uploader::~Uploader() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (int i = 0; i < 2; ++i) {
    if (staging_[i] != nullptr) cudaFreeHost(staging_[i]);
    if (done_[i] != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(done_[i]));
  }
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

Status Uploader::copy(uint8_t* dst, const uint8_t* src, size_t n, const std::string& what,
                      const std::function<void(int64_t, int64_t)>& progress) {
  size_t done = 0;
  int buf = 0;
  while (done < n) {
    const size_t len = std::min(chunk_, n - done);
    auto* ev = static_cast<cudaEvent_t>(done_[buf]);
    // the staging buffer's previous copy must have left it before the host overwrites it
    OSS4_TRY(cuda_status(cudaEventSynchronize(ev), what + ": upload"));
    std::memcpy(staging_[buf], src + done, len);
    OSS4_TRY(cuda_status(cudaMemcpyAsync(dst + done, staging_[buf], len, cudaMemcpyHostToDevice, stream_), what + ": upload"));
    OSS4_TRY(cuda_status(cudaEventRecord(ev, stream_), what + ": upload"));
    done += len;
    buf ^= 1;
    if (progress) progress(static_cast<int64_t>(done), static_cast<int64_t>(n));
  }
  return cuda_status(cudaStreamSynchronize(stream_), what + ": upload");
}

Result<DeviceBuffer> Uploader::upload(const Fp4TileMatrix& m, const std::string& what, Fp4MatrixView* view) {
  OSS4_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::alloc(m.tiles.size(), what));
  OSS4_TRY(copy(b.data(), m.tiles.data(), m.tiles.size(), what));
  *view = view_of(m, b.data());
  return b;
}

}  // namespace oss4::cuda
