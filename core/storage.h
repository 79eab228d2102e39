// A storage is one allocation on one device; tensors view into it. Allocation goes through the
// allocator registered for the device type: the aligned CPU allocator is built in, the CUDA
// backend registers its caching allocator when it is compiled in.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace remoe {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes, Device device) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, Device device) = 0;
  // Copies nbytes between two contiguous buffers; either side may be this allocator's device.
  virtual void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) = 0;
};

// Registers the allocator used for `type` (the CUDA backend calls this once at start-up).
void register_allocator(DeviceType type, Allocator* allocator);
// The allocator for `device`; throws a clear error when that device type is not built in.
Allocator& allocator_for(Device device);

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

}  // namespace remoe
