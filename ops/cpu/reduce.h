// CPU reduction kernels. Inputs are contiguous; `out` is contiguous with the reduced axes kept
// as size 1 (the caller reshapes for keepdim=false).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace remoe::cpu {

// Sums x over the axes flagged in `reduce` (one flag per axis of x) into out.
void sum(const Tensor& x, const std::vector<bool>& reduce, const Tensor& out);

}  // namespace remoe::cpu
