// How fast training runs, in the units the runner and the benchmark report: model FLOPs per
// training token, and the machine's single-precision GEMM rate (the denominator of MFU).
#pragma once
#include <cstdint>
#include <vector>

#include "models/transformer.h"

namespace remoe::experiments {

// The median of `values` (the mean of the middle two for an even count); throws when empty.
double median(std::vector<double> values);

// Experts a token runs through, for the MFU count: the router's RouterSpec::active_experts (none
// for dense, whose FFN is counted whole; E·(1 − sparsity) for routers that dispatch tokens).
double active_experts_per_token(const ModelConfig& c, double sparsity);

// Model FLOPs of one training token (forward + backward = 3 × forward), counting matmuls only:
// attention projections, the causal half of the scores QKᵀ and P·V, the active experts' SwiGLU
// (active_experts_per_token of them; ignored for dense), the router and the LM head. Embedding
// lookups, norms and elementwise work are not counted (PaLM's MFU convention).
double training_flops_per_token(const ModelConfig& c, int64_t seq_len, double active_experts_per_token);

struct GemmPeak {
  int64_t n = 0;              // the products are n×n @ n×n, f32
  std::vector<double> gflops;  // one rate per timed product
  double median_gflops = 0, best_gflops = 0;
};

// The rate of remoe::matmul (OpenBLAS when built with it, else Eigen) on the current thread count:
// `reps` timed products after one untimed one.
GemmPeak measure_gemm_peak(int64_t n, int reps);

// The same with Eigen's own product, whatever remoe::matmul uses (the benchmark's reference peak).
GemmPeak measure_eigen_gemm_peak(int64_t n, int reps);

}  // namespace remoe::experiments
