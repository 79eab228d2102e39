// The caching CUDA allocator behind every Storage on a CUDA device (registered by init()).
//
// cudaMalloc/cudaFree are slow (cudaFree synchronises the whole device), and training allocates
// the same tensor sizes every step. So freed blocks go to a per-device cache keyed by their
// rounded size, and an allocation of that rounded size reuses a cached block; cudaMalloc runs only
// on a miss. Reuse without waiting is safe because all of this backend's work on a device runs on
// the device's single stream (cuda/stream.h): anything queued that still reads a freed block runs
// before anything queued later by the block's next owner.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/storage.h"

namespace remoe::cuda {

// Rounding: requests up to 1 MiB round up to a multiple of 512 B; larger ones to a multiple of
// 2 MiB (the driver's large-page size), so the many small activations share few buckets and a
// large block never wastes more than 2 MiB.
constexpr size_t kSmallAllocLimit = size_t{1} << 20;
constexpr size_t kSmallAllocGranularity = 512;
constexpr size_t kLargeAllocGranularity = size_t{2} << 20;

// The bucket (block size in bytes) that serves a request of `nbytes`; 0 for 0. A request too large
// to round without overflow maps to SIZE_MAX, which no device can satisfy (an out-of-memory error).
constexpr size_t round_allocation_size(size_t nbytes) {
  if (nbytes == 0) return 0;
  if (nbytes <= kSmallAllocLimit)
    return (nbytes + kSmallAllocGranularity - 1) / kSmallAllocGranularity * kSmallAllocGranularity;
  if (nbytes > SIZE_MAX - kLargeAllocGranularity) return SIZE_MAX;
  return (nbytes + kLargeAllocGranularity - 1) / kLargeAllocGranularity * kLargeAllocGranularity;
}

// Per-device counters (bytes are rounded block sizes).
struct AllocatorStats {
  size_t bytes_in_use = 0;       // held by live allocations
  size_t peak_bytes_in_use = 0;  // max of bytes_in_use since start or the last reset_stats()
  size_t bytes_cached = 0;       // freed blocks kept for reuse (not returned to the driver)
  uint64_t cuda_malloc_calls = 0;
  uint64_t cache_hits = 0;       // allocations served from the cache
  uint64_t allocations = 0;      // non-empty allocate() calls
};

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator();
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t nbytes, Device device) override;
  // Returns the block to the cache (no CUDA call). Never throws (it runs in ~Storage).
  void deallocate(void* ptr, size_t nbytes, Device device) override;
  // Host<->device copies wait until the data has arrived (the host buffer may be freed right
  // after); device->device copies are queued on the destination device's stream.
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) override;

  AllocatorStats stats(int device) const;
  // Zeroes the call/hit counters and sets the peak to the current bytes in use.
  void reset_stats(int device);
  // Returns every cached (free) block of every device to the driver (cudaFree).
  void empty_cache();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Registers the caching allocator for DeviceType::CUDA. Idempotent and thread-safe; needs no
// device (allocating on a missing device throws a clear error instead).
void init();
// The process-wide allocator (never destroyed: tensors may outlive static destruction order).
CachingAllocator& caching_allocator();

inline AllocatorStats allocator_stats(int device = 0) { return caching_allocator().stats(device); }
inline void reset_allocator_stats(int device = 0) { caching_allocator().reset_stats(device); }
inline void empty_cache() { caching_allocator().empty_cache(); }

}  // namespace remoe::cuda
