#include "cuda/rng.h"

#include "core/rng.h"
#include "cuda/kernel_utils.h"

namespace remoe::cuda {
namespace {

// The affine step is an explicit fma: the CPU factories' `mean + std * z`, compiled by GCC with
// -march=native on any FMA-capable CPU, is contracted to one fma, and only the same single
// rounding reproduces it bit for bit. (philox_normal itself is shared code from core/rng.h.)
template <class T>
struct NormalFill {
  T* out;
  uint64_t seed, offset;
  double mean, stddev;
  __device__ void operator()(int64_t i) const {
    out[i] = convert<T>(::fma(stddev, philox_normal(seed, offset + static_cast<uint64_t>(i)), mean));
  }
};

template <class T>
struct UniformFill {
  T* out;
  uint64_t seed, offset;
  double lo, span;
  __device__ void operator()(int64_t i) const {
    double u = philox_uniform(seed, offset + static_cast<uint64_t>(i));
    out[i] = convert<T>(::fma(span, u, lo));
  }
};

template <template <class> class Fill, class... Args>
void run_fill(const char* op, const Tensor& out, Args... args) {
  int device = cuda_device_of(op, {&out});
  REMOE_CHECK(out.is_contiguous(), op, ": output of shape ", shape_str(out.shape()), " must be contiguous");
  switch (out.dtype()) {
    case DType::f32: return launch_contiguous(device, out.numel(), Fill<float>{typed_mut_ptr<float>(out), args...});
    case DType::f64: return launch_contiguous(device, out.numel(), Fill<double>{typed_mut_ptr<double>(out), args...});
    case DType::bf16: return launch_contiguous(device, out.numel(), Fill<bf16>{typed_mut_ptr<bf16>(out), args...});
    default: fail(op, ": dtype ", dtype_name(out.dtype()), " is not supported (f32, f64 and bf16 are)");
  }
}

}  // namespace

void fill_randn(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  run_fill<NormalFill>("cuda fill_randn", out, seed, offset, mean, std);
}

void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi) {
  run_fill<UniformFill>("cuda fill_uniform", out, seed, offset, lo, hi - lo);
}

}  // namespace remoe::cuda
