// Weights from host memory (the mapped checkpoint, or a repacked matrix) to device memory through pinned staging:
// the host copies chunk i into one of two pinned buffers while the copy engine moves chunk i-1, so the mapped pages
// are read once and the upload runs at the link's speed. Progress is reported per chunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "backend/cuda/kernels.h"
#include "oss4/status.h"

namespace oss4::cuda {

// device memory owned by one object (cudaFree on destruction).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  static Result<DeviceBuffer> alloc(size_t n, const std::string& what);
  uint8_t* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

class Uploader {
 public:
  // two pinned staging buffers of chunk bytes each, one stream.
  static Result<Uploader> create(size_t chunk = size_t{64} << 20);
  ~Uploader();
  Uploader(Uploader&& o) noexcept;
  Uploader& operator=(Uploader&&) = delete;
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // copies n bytes from host src to device dst; progress(done, total) after each chunk. Returns when the bytes are
  // on the device. Errors name `what`.
  Status copy(uint8_t* dst, const uint8_t* src, size_t n, const std::string& what,
              const std::function<void(int64_t, int64_t)>& progress = nullptr);
  // a repacked FP4 matrix: allocates, uploads, and gives the view the launchers take.
  Result<DeviceBuffer> upload(const Fp4TileMatrix& m, const std::string& what, Fp4MatrixView* view);

 private:
  Uploader() = default;
  uint8_t* staging_[2] = {nullptr, nullptr};
  void* done_[2] = {nullptr, nullptr};  // cudaEvent_t of each staging buffer's last copy
  Stream stream_ = nullptr;
  size_t chunk_ = 0;
};

}  // namespace oss4::cuda
