// Random fills on the device from the counter-based Philox generator of core/rng.h: element i of
// `out` gets the value of index (offset + i) of the (seed) stream, exactly the number the CPU
// factories (core/random.h: randn, uniform) put at element i for a Generator at that offset. The
// caller advances its Generator's offset by out.numel(), as the CPU factories do.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace remoe::cuda {

// out[i] = mean + std · N(0,1)[offset + i]; out contiguous f32, f64 or bf16 on a CUDA device.
void fill_randn(const Tensor& out, uint64_t seed, uint64_t offset, double mean = 0, double std = 1);
// out[i] = lo + (hi − lo) · U(0,1][offset + i]; out contiguous f32, f64 or bf16 on a CUDA device.
void fill_uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo = 0, double hi = 1);

}  // namespace remoe::cuda
