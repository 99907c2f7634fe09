// A large buffer of fresh anonymous pages (mmap), advised as transparent huge pages: for the gigabytes the CPU
// backend's prepare step writes once (repacked weights). Not zero-filled by us (the kernel hands out zeroed pages);
// faulting 2 MB pages instead of 4 kB ones halved the first-touch time on the VMs this was measured on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace oss4 {

class PageBuffer {
 public:
  PageBuffer() = default;
  // n bytes; data() is null when the mapping failed (ok() false)
  explicit PageBuffer(size_t n);
  ~PageBuffer();
  PageBuffer(PageBuffer&& o) noexcept;
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  bool ok() const { return size_ == 0 || data_ != nullptr; }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace oss4
