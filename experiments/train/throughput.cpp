#include "experiments/train/throughput.h"

#include <algorithm>
#include <chrono>

#include <Eigen/Core>

#include "autograd/node.h"
#include "core/error.h"
#include "core/random.h"
#include "models/router_registry.h"
#include "ops/ops.h"

namespace remoe::experiments {

double median(std::vector<double> values) {
  REMOE_CHECK(!values.empty(), "median of no values");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double active_experts_per_token(const ModelConfig& c, double sparsity) {
  return router_spec(c.ffn).active_experts(c, sparsity);
}

double training_flops_per_token(const ModelConfig& c, int64_t seq_len, double active_experts) {
  const double d = static_cast<double>(c.d_model), hd = static_cast<double>(c.head_dim());
  const double q_out = static_cast<double>(c.n_heads) * hd, kv_out = static_cast<double>(c.n_kv_heads) * hd;
  const double attn_proj = 2 * d * (q_out + 2 * kv_out) + 2 * q_out * d;
  const double attn_scores = 2 * 2 * q_out * static_cast<double>(seq_len) / 2;  // QKᵀ and PV, causal half
  double ffn = 0;
  if (!router_spec(c.ffn).routes_tokens) {
    ffn = 2 * 3 * d * static_cast<double>(c.expert_width() * c.granularity * c.dense_multiplier);
  } else {
    ffn = 2 * 3 * d * static_cast<double>(c.expert_width()) * active_experts + 2 * d * static_cast<double>(c.experts());
  }
  const double forward =
      static_cast<double>(c.n_layers) * (attn_proj + attn_scores + ffn) + 2 * d * static_cast<double>(c.vocab_size);
  return 3 * forward;
}

namespace {

// Times `reps` calls of `product` (one n×n×n f32 GEMM each) after one untimed call that warms
// caches and packing buffers.
template <class Product>
GemmPeak time_gemms(int64_t n, int reps, Product product) {
  REMOE_CHECK(n > 0 && reps > 0, "GEMM peak: n = ", n, " and reps = ", reps, " must be positive");
  GemmPeak peak;
  peak.n = n;
  for (int i = 0; i <= reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    product();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) peak.gflops.push_back(2.0 * static_cast<double>(n * n * n) / s * 1e-9);
  }
  peak.median_gflops = median(peak.gflops);
  peak.best_gflops = *std::max_element(peak.gflops.begin(), peak.gflops.end());
  return peak;
}

}  // namespace

GemmPeak measure_gemm_peak(int64_t n, int reps) {
  NoGradGuard no_grad;
  Generator gen(7);
  Tensor a = randn({n, n}, gen), b = randn({n, n}, gen);
  return time_gemms(n, reps, [&] { Tensor c = matmul(a, b); });
}

GemmPeak measure_eigen_gemm_peak(int64_t n, int reps) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMat a = RowMat::Random(n, n), b = RowMat::Random(n, n), c(n, n);
  GemmPeak peak = time_gemms(n, reps, [&] { c.noalias() = a * b; });
  volatile float sink = c(0, 0);  // keep the products
  (void)sink;
  return peak;
}

}  // namespace remoe::experiments
