// Internal to the .cu files: the launch machinery behind every elementwise-style kernel.
//
// A kernel is an "element functor" F with two call operators: f(i) for the contiguous case (every
// operand indexed by the same linear i) and f(off) with off[k] the element offset of operand k
// (operand 0 is the output) for the strided/broadcast case. launch_elementwise() coalesces the
// geometry on the host (drops size-1 axes, merges axes that are contiguous in every operand), then
// launches the contiguous kernel when nothing is left to index, else the strided one, which
// decomposes the linear index with 32-bit arithmetic whenever the element count allows (64-bit
// division is many times slower on the GPU).
#pragma once
#ifndef __CUDACC__
#error "cuda/kernel_utils.h holds device code: include it from .cu files only"
#endif
#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/tensor.h"
#include "cuda/check.h"
#include "cuda/stream.h"

namespace remoe::cuda {

namespace detail {
bool force_64bit_indexing();  // cuda/elementwise.cu; tests use it to exercise the 64-bit path
}

constexpr int kMaxDims = 8;
constexpr int kBlockThreads = 256;
constexpr int64_t kMaxBlocks = 65536;  // beyond this the kernels' grid-stride loops take over

inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kBlockThreads - 1) / kBlockThreads, 1, kMaxBlocks));
}

// The compute type of a storage type: bf16 is loaded into f32, everything else computes as itself.
template <class T> struct compute_type { using type = T; };
template <> struct compute_type<bf16> { using type = float; };
template <class T> using compute_t = typename compute_type<T>::type;

// Axis d of a coalesced geometry is stored innermost-first: sizes[0] is the fastest-varying axis.
template <int K, class U>
struct OffsetCalc {
  int ndim = 0;
  U sizes[kMaxDims] = {};
  int64_t strides[kMaxDims][K] = {};

  __device__ __forceinline__ void offsets(U linear, int64_t (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim) break;
      U i = linear;
      if (d + 1 < ndim) {  // the outermost axis needs no modulo: linear < its size already
        i = linear % sizes[d];
        linear /= sizes[d];
      }
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += static_cast<int64_t>(i) * strides[d][k];
    }
  }
};

template <class F>
__global__ void contiguous_kernel(F f, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    f(i);
}

template <class F, int K, class U>
__global__ void strided_kernel(F f, OffsetCalc<K, U> calc, U n) {
  for (U i = static_cast<U>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<U>(gridDim.x) * blockDim.x) {
    int64_t off[K];
    calc.offsets(i, off);
    f(off);
  }
}

// Geometry after coalescing, outermost axis first.
template <int K>
struct Coalesced {
  Shape sizes;
  std::array<Shape, K> strides;
};

template <int K>
Coalesced<K> coalesce(const Shape& shape, const std::array<Shape, K>& strides) {
  Coalesced<K> c;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // a size-1 axis contributes nothing to any offset
    if (!c.sizes.empty()) {
      bool mergeable = true;  // previous axis steps exactly over this whole axis in every operand
      for (int k = 0; k < K; ++k) mergeable &= c.strides[k].back() == shape[d] * strides[k][d];
      if (mergeable) {
        c.sizes.back() *= shape[d];
        for (int k = 0; k < K; ++k) c.strides[k].back() = strides[k][d];
        continue;
      }
    }
    c.sizes.push_back(shape[d]);
    for (int k = 0; k < K; ++k) c.strides[k].push_back(strides[k][d]);
  }
  return c;
}

template <int K, class U>
OffsetCalc<K, U> make_offset_calc(const Coalesced<K>& c) {
  OffsetCalc<K, U> calc;
  calc.ndim = static_cast<int>(c.sizes.size());
  for (int d = 0; d < calc.ndim; ++d) {
    int src = calc.ndim - 1 - d;  // innermost first
    calc.sizes[d] = static_cast<U>(c.sizes[src]);
    for (int k = 0; k < K; ++k) calc.strides[d][k] = c.strides[k][src];
  }
  return calc;
}

// Runs f over every element of `shape` on `device`'s stream; strides[k] are operand k's strides
// (in elements, 0 on broadcast axes), operand 0 being the output.
template <int K, class F>
void launch_elementwise(const char* op, int device, const Shape& shape, const std::array<Shape, K>& strides, const F& f) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  Coalesced<K> c = coalesce<K>(shape, strides);
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  bool contiguous = true;
  for (int k = 0; k < K && !c.sizes.empty(); ++k) contiguous &= c.sizes.size() == 1 && c.strides[k][0] == 1;
  if (contiguous) {
    contiguous_kernel<<<blocks_for(n), kBlockThreads, 0, stream>>>(f, n);
    REMOE_CUDA_CHECK_LAUNCH();
    return;
  }
  REMOE_CHECK(c.sizes.size() <= static_cast<size_t>(kMaxDims), op, ": shape ", shape_str(shape),
              " needs ", c.sizes.size(), " strided axes on CUDA, at most ", kMaxDims,
              " are supported; make an input contiguous first");
  if (n <= INT32_MAX && !detail::force_64bit_indexing()) {
    strided_kernel<<<blocks_for(n), kBlockThreads, 0, stream>>>(f, make_offset_calc<K, uint32_t>(c),
                                                                  static_cast<uint32_t>(n));
  } else {
    strided_kernel<<<blocks_for(n), kBlockThreads, 0, stream>>>(f, make_offset_calc<K, uint64_t>(c),
                                                                  static_cast<uint64_t>(n));
  }
  REMOE_CUDA_CHECK_LAUNCH();
}

// Only the contiguous kernel (callers guarantee contiguous operands).
template <class F>
void launch_contiguous(int device, int64_t n, const F& f) {
  if (n == 0) return;
  DeviceGuard guard(device);
  contiguous_kernel<<<blocks_for(n), kBlockThreads, 0, current_stream(device)>>>(f, n);
  REMOE_CUDA_CHECK_LAUNCH();
}

// The CUDA device shared by all `ts`; throws naming `op` unless all live on one CUDA device.
inline int cuda_device_of(const char* op, std::initializer_list<const Tensor*> ts) {
  int device = -1;
  for (const Tensor* t : ts) {
    REMOE_CHECK(t->defined(), op, ": an operand is undefined");
    REMOE_CHECK(t->device().is_cuda(), op, ": CUDA kernel given a tensor on ", t->device().str());
    if (device < 0) device = t->device().index;
    REMOE_CHECK(t->device().index == device, op, ": operands on different devices (cuda:", device, " and ",
                t->device().str(), ")");
  }
  return device;
}

// t's strides right-aligned to out_shape, 0 on broadcast axes; throws naming `op` and both shapes
// when t does not broadcast to out_shape.
inline Shape broadcast_strides_to(const char* op, const Tensor& t, const Shape& out_shape) {
  REMOE_CHECK(t.shape().size() <= out_shape.size(), op, ": operand shape ", shape_str(t.shape()),
              " has more axes than the output shape ", shape_str(out_shape));
  Shape st(out_shape.size(), 0);
  size_t lead = out_shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) {
    REMOE_CHECK(t.shape()[i] == 1 || t.shape()[i] == out_shape[lead + i], op, ": operand shape ",
                shape_str(t.shape()), " does not broadcast to the output shape ", shape_str(out_shape));
    st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  return st;
}

template <class T>
const T* typed_ptr(const Tensor& t) {
  return static_cast<const T*>(t.storage()->data()) + t.offset();
}
template <class T>
T* typed_mut_ptr(const Tensor& t) {
  return static_cast<T*>(t.storage()->data()) + t.offset();
}

}  // namespace remoe::cuda
