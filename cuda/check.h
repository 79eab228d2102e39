// Error checks for CUDA runtime and cuBLAS calls: a failed call throws remoe::Error naming the
// file:line, the call's text and the library's own description of the status, so a device fault
// surfaces as a catchable error with context instead of garbage results later on.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace remoe::cuda::detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  fail(file, ":", line, ": CUDA call `", call, "` failed: ", cudaGetErrorName(e), " (",
       cudaGetErrorString(e), ")");
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  fail(file, ":", line, ": cuBLAS call `", call, "` failed: ", cublasGetStatusName(s), " (",
       cublasGetStatusString(s), ")");
}

}  // namespace remoe::cuda::detail

// REMOE_CUDA_CHECK(cudaMalloc(&p, n)): throws remoe::Error unless the call returns cudaSuccess.
#define REMOE_CUDA_CHECK(call)                                                        \
  do {                                                                                \
    cudaError_t remoe_cuda_err_ = (call);                                             \
    if (remoe_cuda_err_ != cudaSuccess)                                               \
      ::remoe::cuda::detail::throw_cuda_error(remoe_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

// REMOE_CUBLAS_CHECK(cublasSgemm(...)): throws remoe::Error unless the call returns SUCCESS.
#define REMOE_CUBLAS_CHECK(call)                                                      \
  do {                                                                                \
    cublasStatus_t remoe_cublas_st_ = (call);                                         \
    if (remoe_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                    \
      ::remoe::cuda::detail::throw_cublas_error(remoe_cublas_st_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: launch-configuration errors surface here. Kernel faults are
// asynchronous, so debug builds also synchronise, pinning a fault to the launch that caused it.
#ifdef NDEBUG
#define REMOE_CUDA_CHECK_LAUNCH() REMOE_CUDA_CHECK(cudaGetLastError())
#else
#define REMOE_CUDA_CHECK_LAUNCH()                \
  do {                                           \
    REMOE_CUDA_CHECK(cudaGetLastError());        \
    REMOE_CUDA_CHECK(cudaDeviceSynchronize());   \
  } while (0)
#endif
