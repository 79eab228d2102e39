#include "cuda/allocator.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/check.h"
#include "cuda/stream.h"

namespace remoe::cuda {

struct CachingAllocator::Impl {
  struct DeviceCache {
    std::unordered_map<size_t, std::vector<void*>> free_blocks;  // rounded size -> cached blocks
    AllocatorStats stats;
  };
  struct Block {
    size_t size;  // rounded
    int device;
  };

  mutable std::mutex mu;
  std::vector<DeviceCache> devices;         // indexed by device, grown on first use
  std::unordered_map<void*, Block> live;    // every block handed out and not yet returned

  DeviceCache& cache(int device) {
    if (devices.size() <= static_cast<size_t>(device)) devices.resize(static_cast<size_t>(device) + 1);
    return devices[static_cast<size_t>(device)];
  }

  // cudaFree of every cached block of one device (caller holds mu).
  void release_cached(int device) {
    if (devices.size() <= static_cast<size_t>(device)) return;
    DeviceCache& c = devices[static_cast<size_t>(device)];
    if (c.stats.bytes_cached == 0) return;
    DeviceGuard guard(device);
    for (auto& [size, blocks] : c.free_blocks) {
      for (void* p : blocks) REMOE_CUDA_CHECK(cudaFree(p));
      c.stats.bytes_cached -= size * blocks.size();
      blocks.clear();
    }
    c.free_blocks.clear();
  }
};

CachingAllocator::CachingAllocator() : impl_(std::make_unique<Impl>()) {}
CachingAllocator::~CachingAllocator() = default;

void* CachingAllocator::allocate(size_t nbytes, Device device) {
  REMOE_CHECK(device.is_cuda(), "cuda allocator: asked to allocate on ", device.str());
  check_device(device.index);
  if (nbytes == 0) return nullptr;  // an empty tensor owns no memory
  const size_t size = round_allocation_size(nbytes);
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  Impl::DeviceCache& c = m.cache(device.index);
  void* p = nullptr;
  auto it = c.free_blocks.find(size);
  if (it != c.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    c.stats.bytes_cached -= size;
    ++c.stats.cache_hits;
  } else {
    DeviceGuard guard(device.index);
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      // Out of memory: the cache may hold blocks of other sizes. Give them back and retry once.
      (void)cudaGetLastError();
      m.release_cached(device.index);
      ++c.stats.cuda_malloc_calls;
      e = cudaMalloc(&p, size);
    }
    ++c.stats.cuda_malloc_calls;
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      bool have_info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
      (void)cudaGetLastError();
      fail("cuda allocator: ", e == cudaErrorMemoryAllocation ? "out of memory" : "cudaMalloc failed",
           " allocating ", nbytes, " bytes (block of ", size, " bytes) on ", device.str(), ": ",
           cudaGetErrorName(e), " (", cudaGetErrorString(e), "); this allocator holds ",
           c.stats.bytes_in_use, " bytes in use (peak ", c.stats.peak_bytes_in_use, "), ",
           c.stats.bytes_cached, " bytes cached, after ", c.stats.cuda_malloc_calls, " cudaMalloc calls",
           have_info ? "; the device has " + std::to_string(free_b) + " of " + std::to_string(total_b) +
                           " bytes free"
                     : std::string());
    }
  }
  m.live.emplace(p, Impl::Block{size, device.index});
  ++c.stats.allocations;
  c.stats.bytes_in_use += size;
  if (c.stats.bytes_in_use > c.stats.peak_bytes_in_use) c.stats.peak_bytes_in_use = c.stats.bytes_in_use;
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t, Device) {
  if (ptr == nullptr) return;
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.live.find(ptr);
  if (it == m.live.end()) {
    // A pointer this allocator never handed out: a bug elsewhere. Throwing is not an option here.
    std::fprintf(stderr, "remoe cuda allocator: deallocate of unknown pointer %p ignored\n", ptr);
    return;
  }
  Impl::Block b = it->second;
  m.live.erase(it);
  Impl::DeviceCache& c = m.cache(b.device);
  c.free_blocks[b.size].push_back(ptr);
  c.stats.bytes_in_use -= b.size;
  c.stats.bytes_cached += b.size;
}

void CachingAllocator::copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
  } else if (src_dev.is_cpu()) {  // host -> device
    cudaStream_t s = current_stream(dst_dev.index);
    DeviceGuard guard(dst_dev.index);
    REMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
    REMOE_CUDA_CHECK(cudaStreamSynchronize(s));
  } else if (dst_dev.is_cpu()) {  // device -> host: the stream's pending kernels finish first
    cudaStream_t s = current_stream(src_dev.index);
    DeviceGuard guard(src_dev.index);
    REMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
    REMOE_CUDA_CHECK(cudaStreamSynchronize(s));
  } else if (dst_dev.index == src_dev.index) {  // same device: ordered on its stream, no wait
    cudaStream_t s = current_stream(dst_dev.index);
    DeviceGuard guard(dst_dev.index);
    REMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, s));
  } else {  // across devices: the source's writes must be done, then a peer copy on dst's stream
    synchronize(src_dev.index);
    cudaStream_t s = current_stream(dst_dev.index);
    DeviceGuard guard(dst_dev.index);
    REMOE_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev.index, src, src_dev.index, nbytes, s));
    REMOE_CUDA_CHECK(cudaStreamSynchronize(s));
  }
}

AllocatorStats CachingAllocator::stats(int device) const {
  REMOE_CHECK(device >= 0, "cuda allocator: stats of invalid device index ", device);
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->devices.size() <= static_cast<size_t>(device)) return {};
  return impl_->devices[static_cast<size_t>(device)].stats;
}

void CachingAllocator::reset_stats(int device) {
  REMOE_CHECK(device >= 0, "cuda allocator: reset_stats of invalid device index ", device);
  std::lock_guard<std::mutex> lock(impl_->mu);
  AllocatorStats& s = impl_->cache(device).stats;
  s.cuda_malloc_calls = 0;
  s.cache_hits = 0;
  s.allocations = 0;
  s.peak_bytes_in_use = s.bytes_in_use;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (size_t d = 0; d < impl_->devices.size(); ++d) impl_->release_cached(static_cast<int>(d));
}

CachingAllocator& caching_allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

void init() {
  static std::once_flag once;
  std::call_once(once, [] { register_allocator(DeviceType::CUDA, &caching_allocator()); });
}

namespace {
// Registered at static initialisation, so that a CUDA tensor works in any program that links this
// library (whole-archive: see cuda/CMakeLists.txt) without core calling up into cuda/.
[[maybe_unused]] const bool g_registered = (init(), true);
}  // namespace

}  // namespace remoe::cuda
