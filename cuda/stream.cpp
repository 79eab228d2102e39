#include "cuda/stream.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/check.h"

namespace remoe::cuda {
namespace {

struct DeviceState {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
};

// Process-wide state, deliberately never destroyed: streams and handles must not be released
// during static destruction, when the CUDA runtime may already be shutting down.
struct Registry {
  std::once_flag count_once;
  int count = 0;
  std::string no_device_reason;
  std::mutex mu;
  std::vector<DeviceState> devices;
};

Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

DeviceState& state(int device) {
  check_device(device);
  Registry& r = registry();
  // Sized once to device_count(), so references stay valid after the lock is released.
  if (r.devices.empty()) r.devices.resize(static_cast<size_t>(device_count()));
  return r.devices[static_cast<size_t>(device)];
}

}  // namespace

int device_count() {
  Registry& r = registry();
  std::call_once(r.count_once, [&r] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clear the error so later launch checks do not report it
      r.count = 0;
      r.no_device_reason = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
    } else {
      r.count = n;
      if (n == 0) r.no_device_reason = "cudaGetDeviceCount returned 0 devices";
    }
  });
  return r.count;
}

const char* no_device_reason() {
  device_count();
  return registry().no_device_reason.c_str();
}

void check_device(int index) {
  int n = device_count();
  REMOE_CHECK(index >= 0 && index < n, "cuda: device cuda:", index, " does not exist (", n,
              " CUDA device(s) visible", n == 0 ? std::string(": ") + no_device_reason() : std::string(), ")");
}

int current_device() {
  int d = 0;
  REMOE_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int index) {
  check_device(index);
  REMOE_CUDA_CHECK(cudaSetDevice(index));
}

cudaStream_t current_stream(int device) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  DeviceState& s = state(device);
  if (!s.stream) {
    DeviceGuard guard(device);
    REMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  }
  return s.stream;
}

void synchronize(int device) {
  cudaStream_t s = current_stream(device);
  DeviceGuard guard(device);
  REMOE_CUDA_CHECK(cudaStreamSynchronize(s));
}

cublasHandle_t cublas_handle(int device) {
  cudaStream_t stream = current_stream(device);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  DeviceState& s = state(device);
  if (!s.cublas) {
    DeviceGuard guard(device);
    cublasHandle_t h = nullptr;
    REMOE_CUBLAS_CHECK(cublasCreate(&h));
    REMOE_CUBLAS_CHECK(cublasSetStream(h, stream));
    s.cublas = h;
  }
  return s.cublas;
}

DeviceGuard::DeviceGuard(int device) {
  check_device(device);
  REMOE_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) REMOE_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  // Destructors must not throw: a failure here leaves the device as it is.
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
}

}  // namespace remoe::cuda
