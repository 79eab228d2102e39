// CPU kernels of RMSNorm. Rows are the leading axes flattened: x is [rows, D], contiguous.
#pragma once
#include "core/tensor.h"

namespace remoe::cpu {

// out = x · rstd · w per row, with rstd = 1/sqrt(mean(x²) + eps) saved in `rstd` [rows].
// x, w [D], out, rstd: contiguous, one floating dtype.
void rms_norm_forward(const Tensor& x, const Tensor& w, double eps, const Tensor& out, const Tensor& rstd);

// Given g = dL/dout: gx = rstd·(w·g − x̂·mean(w·g·x̂)) with x̂ = x·rstd, and gw = Σ_rows g·x̂.
// gx or gw may be undefined Tensors to skip them. All contiguous, one dtype.
void rms_norm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& g, const Tensor& gx,
                       const Tensor& gw);

}  // namespace remoe::cpu
