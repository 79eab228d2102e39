// CPU kernel of matmul: batched GEMM through OpenBLAS (when built with it) or Eigen.
#pragma once
#include <string>

#include "core/tensor.h"

namespace remoe::cpu {

// out [..., M, N] (contiguous, allocated by the caller, not initialised) = a [..., M, K] @ b [..., K, N],
// or out += a @ b with `accumulate` (out initialised), with a's and b's batch axes broadcast to out's. a and b may be strided views: a matrix whose
// last two axes are row-major or column-major (a transposed view) with any row/column stride is
// read in place; any other layout is copied once. f32 and f64.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate = false);

// Which GEMM library the build uses and, for OpenBLAS, the kernel it chose at load time (its
// core name, e.g. "Haswell" under OPENBLAS_CORETYPE=Haswell, else the CPU's own): losses of a run
// depend on it through rounding, so run records and benchmarks carry it.
struct GemmLibrary {
  std::string name;    // "openblas" | "eigen"
  std::string config;  // OpenBLAS's build string ("" for Eigen)
  std::string core;    // OpenBLAS's kernel choice ("" for Eigen)
};
GemmLibrary gemm_library();

}  // namespace remoe::cpu
