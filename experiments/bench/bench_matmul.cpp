// matmul throughput: remoe::matmul against a raw Eigen GEMM on the same sizes.
// Acceptance criterion (issue): the CPU matmul path reaches >= 80% of raw Eigen GEMM throughput on
// 2048×512×512 f32, read as M = 2048, K = 512, N = 512 ([2048, 512] @ [512, 512]).
// Run e.g.  OMP_NUM_THREADS=2 ./remoe_bench_ops --benchmark_filter='Gemm|Matmul|SmallBatched'
//             --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Every benchmark reports GFLOP/s (counter "GFLOP", printed as a rate; 2·M·N·K per product) over
// wall time: the GEMMs are OpenMP-parallel, so the main thread's CPU time would undercount.
#include <benchmark/benchmark.h>

// GCC 12 reports a false "may be used uninitialized" inside Eigen's AVX-512 GEMM kernel.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

#include "core/random.h"
#include "ops/ops.h"

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void set_flops(benchmark::State& state, int64_t m, int64_t k, int64_t n) {
  state.counters["GFLOP"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

remoe::Tensor randn_f32(const remoe::Shape& s, uint64_t seed) {
  remoe::Generator gen(seed);
  return remoe::randn(s, gen, {remoe::DType::f32});
}

// The baseline: Eigen maps over preallocated row-major buffers, C.noalias() = A·B. Same data and
// layout as the tensors below; the output buffer is reused, so no allocation is timed.
void BM_EigenRawGemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  remoe::Tensor a = randn_f32({m, k}, 1), b = randn_f32({k, n}, 2), c = remoe::empty({m, n});
  Eigen::Map<const RowMat> A(a.data<float>(), m, k), B(b.data<float>(), k, n);
  Eigen::Map<RowMat> C(c.data<float>(), m, n);
  for (auto _ : state) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(c.data<float>());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, k, n);
}

// remoe::matmul on [M, K] @ [K, N] tensors, including the output's allocation.
void BM_RemoeMatmul(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  remoe::Tensor a = randn_f32({m, k}, 1), b = randn_f32({k, n}, 2);
  for (auto _ : state) {
    remoe::Tensor y = remoe::matmul(a, b);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, k, n);
}

// The linear-layer shape: [8, M/8, K] @ [K, N], which must fold into the same single GEMM.
void BM_RemoeMatmulBatchedLinear(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  remoe::Tensor a = randn_f32({8, m / 8, k}, 1), b = randn_f32({k, n}, 2);
  for (auto _ : state) {
    remoe::Tensor y = remoe::matmul(a, b);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, k, n);
}

// Transposed operands, as in backward (aᵀ @ g and g @ bᵀ): a stored [K, M], b stored [N, K].
void BM_EigenRawGemmTransposed(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  remoe::Tensor at = randn_f32({k, m}, 1), bt = randn_f32({n, k}, 2), c = remoe::empty({m, n});
  Eigen::Map<const RowMat> At(at.data<float>(), k, m), Bt(bt.data<float>(), n, k);
  Eigen::Map<RowMat> C(c.data<float>(), m, n);
  for (auto _ : state) {
    C.noalias() = At.transpose() * Bt.transpose();
    benchmark::DoNotOptimize(c.data<float>());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, k, n);
}

void BM_RemoeMatmulTransposed(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  remoe::Tensor at = randn_f32({k, m}, 1), bt = randn_f32({n, k}, 2);
  remoe::Tensor a = remoe::transpose(at, 0, 1), b = remoe::transpose(bt, 0, 1);  // views, no copies
  for (auto _ : state) {
    remoe::Tensor y = remoe::matmul(a, b);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, k, n);
}

// Many small GEMMs ([64, 64, 64] @ [64, 64, 64], attention-head sized): one GEMM per thread.
void BM_RemoeMatmulSmallBatched(benchmark::State& state) {
  const int64_t bsz = state.range(0), s = state.range(1);
  remoe::Tensor a = randn_f32({bsz, s, s}, 1), b = randn_f32({bsz, s, s}, 2);
  for (auto _ : state) {
    remoe::Tensor y = remoe::matmul(a, b);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_flops(state, bsz * s, s, s);
}

void BM_EigenRawSmallBatched(benchmark::State& state) {  // the same GEMMs looped on one Eigen call each
  const int64_t bsz = state.range(0), s = state.range(1);
  remoe::Tensor a = randn_f32({bsz, s, s}, 1), b = randn_f32({bsz, s, s}, 2), c = remoe::empty({bsz, s, s});
  for (auto _ : state) {
    for (int64_t i = 0; i < bsz; ++i) {
      Eigen::Map<const RowMat> A(a.data<float>() + i * s * s, s, s), B(b.data<float>() + i * s * s, s, s);
      Eigen::Map<RowMat> C(c.data<float>() + i * s * s, s, s);
      C.noalias() = A * B;
    }
    benchmark::DoNotOptimize(c.data<float>());
    benchmark::ClobberMemory();
  }
  set_flops(state, bsz * s, s, s);
}

}  // namespace

BENCHMARK(BM_EigenRawGemm)->Args({2048, 512, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RemoeMatmul)->Args({2048, 512, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RemoeMatmulBatchedLinear)->Args({2048, 512, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EigenRawGemmTransposed)->Args({2048, 512, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RemoeMatmulTransposed)->Args({2048, 512, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EigenRawSmallBatched)->Args({64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RemoeMatmulSmallBatched)->Args({64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);
