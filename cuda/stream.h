// Devices, streams and cuBLAS handles. Each device gets ONE stream (created on first use) on which
// every kernel, copy and cuBLAS call of this backend runs; work on a device is therefore ordered,
// which is also what makes the caching allocator's immediate block reuse safe (cuda/allocator.h).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace remoe::cuda {

// Number of usable CUDA devices; 0 (never an error) when there is no driver or no device.
int device_count();
// The reason device_count() is 0 ("" when a device exists), e.g. "cudaErrorNoDevice (no CUDA-capable device is detected)".
const char* no_device_reason();
// Throws remoe::Error naming the device and the device count unless 0 <= index < device_count().
void check_device(int index);

int current_device();
// Makes `index` the calling thread's current device (checked).
void set_device(int index);

// The backend's stream for `device` (created lazily; a non-blocking stream).
cudaStream_t current_stream(int device);
// Waits until all work queued on the device's stream has finished; rethrows kernel faults.
void synchronize(int device);
// The cuBLAS handle of `device`, bound to current_stream(device) (created lazily).
cublasHandle_t cublas_handle(int device);

// RAII: makes `device` current for the scope and restores the previous device on exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace remoe::cuda
