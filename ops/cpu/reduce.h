// CPU reduction kernels. Inputs are contiguous; outputs are contiguous (only their element count
// and order matter: the caller gives them the keepdim or the dropped shape).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace remoe::cpu {

// Sums x over the axes flagged in `reduce` (one flag per axis of x) into out (row-major over the
// kept axes). Floating inputs accumulate in double; the result does not depend on the thread count.
void sum(const Tensor& x, const std::vector<bool>& reduce, const Tensor& out);

// The maximum over the middle axis of x viewed as [outer, n, inner] (n >= 1) and the index of its
// first occurrence (NaN counts as maximal, so NaN propagates). values: x's dtype, indices: i64,
// both [outer, inner] in row-major order. All numeric dtypes.
void max(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& values, const Tensor& indices);

}  // namespace remoe::cpu
