#include "core/storage.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/error.h"

namespace remoe {
namespace {

// 64-byte alignment: one cache line, and what AVX-512 loads like.
class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() {
#if defined(__GLIBC__)
    // A training step frees and re-allocates the same large activations every step; a page the
    // process gives back to the kernel costs a page fault when it comes back (measured on a 2-core
    // Firecracker VM: 5 s per GB touched, i.e. ~20 us a page, since freed guest memory is reported
    // to the host). Two glibc defaults give pages back every step: blocks over ~128 KB-32 MB are
    // served by mmap and unmapped on free, and the heap is trimmed whenever more than the trim
    // threshold is free at its top. With a 1 GB threshold, config B with ReLU routing (peak > 1 GB
    // of activations) was trimmed and faulted in again every step: 2.5-3x its step time. So: no
    // mmap below 1 GB and no trimming at all -- the heap stays at the peak of a step, as PyTorch's
    // caching allocators keep theirs. Process-wide, as any malloc setting is.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, -1);  // -1: never trim (mallopt(3))
#endif
  }
  void* allocate(size_t nbytes, Device) override {
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    REMOE_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", nbytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t, Device) override { std::free(ptr); }
  void copy(void* dst, Device, const void* src, Device, size_t nbytes) override {
    if (nbytes) std::memcpy(dst, src, nbytes);
  }
};

CpuAllocator g_cpu_allocator;
Allocator* g_allocators[2] = {&g_cpu_allocator, nullptr};

}  // namespace

void register_allocator(DeviceType type, Allocator* allocator) {
  g_allocators[static_cast<int>(type)] = allocator;
}

// A device's allocator registers itself from its own library (cuda/allocator.cpp at static
// initialisation), so that core links nothing above it.
Allocator& allocator_for(Device device) {
  Allocator* a = g_allocators[static_cast<int>(device.type)];
  REMOE_CHECK(a != nullptr, "device ", device.str(), " is not available: no allocator is registered for it (this "
              "program was built without the CUDA backend: configure with REMOE_CUDA=ON and link remoe_cuda)");
  return *a;
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device).allocate(nbytes, device);
}

Storage::~Storage() { allocator_for(device_).deallocate(data_, nbytes_, device_); }

}  // namespace remoe
