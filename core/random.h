// Random tensors drawn from a Generator (core/rng.h): reproducible across devices and threads.
#pragma once
#include "core/rng.h"
#include "core/tensor.h"

namespace remoe {

// Standard normal scaled: mean + std * N(0,1).
Tensor randn(const Shape& shape, Generator& gen, TensorOptions opt = {}, double mean = 0, double std = 1);
// Uniform in (lo, hi].
Tensor uniform(const Shape& shape, Generator& gen, TensorOptions opt = {}, double lo = 0, double hi = 1);
// Integers uniform in [lo, hi), dtype i64 unless opt says otherwise.
Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, TensorOptions opt = {DType::i64});

}  // namespace remoe
