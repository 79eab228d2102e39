// CUDA backend tests. GPU tests compare every kernel with the CPU backend on random inputs, with
// outputs poisoned first (NaN, or 171 for integer outputs) so an element the kernel fails to write
// shows up as a mismatch. Without a usable CUDA device each GPU test reports
// "SKIPPED: no CUDA device (...)" and returns; the tests marked CPU-runnable run everywhere.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/random.h"
#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/elementwise.h"
#include "cuda/rng.h"
#include "cuda/stream.h"
#include "ops/cpu/elementwise.h"
#include "ops/elementwise_kernels.h"
#include "test_util.h"

using namespace remoe;

namespace {

// Why GPU tests cannot run here, or "" when a device is present (asks the runtime directly, not
// the code under test).
std::string no_device_reason() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + ", " + cudaGetErrorString(e);
  }
  if (n == 0) return "cudaGetDeviceCount returned 0 devices";
  return "";
}

#define SKIP_WITHOUT_CUDA_DEVICE()                                        \
  do {                                                                    \
    std::string why_ = no_device_reason();                                \
    if (!why_.empty()) {                                                  \
      MESSAGE((std::string("SKIPPED: no CUDA device (") + why_ + ")"));    \
      return;                                                             \
    }                                                                     \
    cuda::init();                                                         \
  } while (0)

const Device kGpu = Device::cuda(0);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One logical input on both devices: `cpu` and `gpu` have identical geometry and values.
struct Pair {
  Tensor cpu, gpu;
};

// A random contiguous tensor: N(0, scale²), or uniform in (lo, hi] when lo < hi.
Pair random_pair(const Shape& shape, uint64_t seed, DType dt, double lo = 0, double hi = 0, double scale = 1) {
  Generator gen(seed);
  Tensor c = lo < hi ? uniform(shape, gen, {DType::f64}, lo, hi) : randn(shape, gen, {DType::f64}, 0, scale);
  c = c.to(dt);
  return {c, c.to(kGpu)};
}

// The same view of both sides.
Pair view(const Pair& p, const Shape& shape, const Shape& strides, int64_t offset) {
  return {make_view(p.cpu, shape, strides, offset), make_view(p.gpu, shape, strides, offset)};
}

// The last two axes of a contiguous tensor swapped (a non-contiguous view).
Pair transposed(const Pair& p) {
  Shape sh = p.cpu.shape(), st = p.cpu.strides();
  std::swap(sh[sh.size() - 1], sh[sh.size() - 2]);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return view(p, sh, st, p.cpu.offset());
}

// A CUDA tensor filled with a value no kernel under test produces.
Tensor poisoned(const Shape& shape, DType dt) {
  Tensor t = empty(shape, {dt, kGpu});
  cuda::fill(t, is_floating(dt) ? kNaN : 171.0);
  return t;
}

Tensor on_cpu(const Tensor& t) { return t.to(Device::cpu()); }

struct Tol {
  double atol, rtol;
};
Tol tol_for(DType dt) {
  switch (dt) {
    case DType::f32: return {1e-6, 1e-5};
    case DType::f64: return {1e-14, 1e-12};
    case DType::bf16: return {1e-6, 8e-3};  // one bf16 ulp is 2^-8 relative
    default: return {0, 0};                 // integers: exact
  }
}

std::string case_name(const char* what, int op, DType dt, const std::string& layout) {
  return std::string(what) + " op #" + std::to_string(op) + " " + dtype_name(dt) + " " + layout;
}

}  // namespace

// ---------------------------------------------------------------- CPU-runnable

TEST_CASE("cuda allocator: bucket rounding (CPU-runnable)") {
  using cuda::round_allocation_size;
  static_assert(round_allocation_size(0) == 0);
  static_assert(round_allocation_size(1) == 512);
  CHECK(round_allocation_size(512) == 512);
  CHECK(round_allocation_size(513) == 1024);
  CHECK(round_allocation_size(4000) == 4096);
  CHECK(round_allocation_size(size_t{1} << 20) == (size_t{1} << 20));
  CHECK(round_allocation_size((size_t{1} << 20) + 1) == (size_t{2} << 20));
  CHECK(round_allocation_size(size_t{3} << 20) == (size_t{4} << 20));
  CHECK(round_allocation_size((size_t{5} << 20) - 7) == (size_t{6} << 20));
  CHECK(round_allocation_size(SIZE_MAX) == SIZE_MAX);
  // The largest representable bucket, then the overflow guard just above it.
  CHECK(round_allocation_size(SIZE_MAX - (size_t{2} << 20)) == SIZE_MAX - (size_t{2} << 20) + 1);
  CHECK(round_allocation_size(SIZE_MAX - (size_t{2} << 20) + 2) == SIZE_MAX);
  // Over a sweep: never smaller than the request, monotone, a multiple of the bucket granularity,
  // and wasting less than one granule.
  size_t prev = 0;
  for (size_t n = 1; n < (size_t{9} << 20); n += 4099) {
    size_t r = round_allocation_size(n);
    size_t g = n <= cuda::kSmallAllocLimit ? cuda::kSmallAllocGranularity : cuda::kLargeAllocGranularity;
    REQUIRE(r >= n);
    REQUIRE(r >= prev);
    REQUIRE(r % g == 0);
    REQUIRE(r - n < g);
    prev = r;
  }
}

TEST_CASE("cuda: error-check macros name file, call and error (CPU-runnable)") {
  // The macros are statements: wrap each in a lambda to use it as an expression.
  CHECK_THROWS_WITH_ALL([] { REMOE_CUDA_CHECK(cudaErrorMemoryAllocation); }(), "test_cuda.cpp:",
                        "`cudaErrorMemoryAllocation`", "out of memory");
  CHECK_THROWS_WITH_ALL([] { REMOE_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED); }(), "test_cuda.cpp:",
                        "CUBLAS_STATUS_NOT_INITIALIZED");
  CHECK_NOTHROW([] { REMOE_CUDA_CHECK(cudaSuccess); }());
  CHECK_NOTHROW([] { REMOE_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS); }());
}

TEST_CASE("cuda: init registers the caching allocator once; missing devices are clear errors (CPU-runnable)") {
  cuda::init();
  cuda::init();  // idempotent
  CHECK(&allocator_for(Device::cuda(0)) == static_cast<Allocator*>(&cuda::caching_allocator()));
  int n = cuda::device_count();
  CHECK(n >= 0);
  CHECK((n == 0) == (std::string(cuda::no_device_reason()) != ""));
  CHECK((n == 0) == !no_device_reason().empty());
  CHECK_THROWS_WITH_ALL(empty({4}, {DType::f32, Device::cuda(1000)}), "cuda:1000", "does not exist");
  CHECK_THROWS_WITH_ALL(cuda::set_device(-1), "cuda:-1", "does not exist");
}

TEST_CASE("cuda kernels reject CPU tensors (CPU-runnable)") {
  Tensor a = zeros({2, 3}), out = zeros({2, 3});
  CHECK_THROWS_WITH_ALL(cuda::binary(cuda::BinaryOp::add, a, a, out), "cuda binary", "tensor on cpu");
  CHECK_THROWS_WITH_ALL(cuda::unary(cuda::UnaryOp::exp, a, 0, out), "cuda unary", "tensor on cpu");
  CHECK_THROWS_WITH_ALL(cuda::fill_randn(out, 1, 0), "cuda fill_randn", "tensor on cpu");
}

// ---------------------------------------------------------------- allocator (GPU)

TEST_CASE("cuda: linking the backend puts its kernels in the elementwise seam (CPU-runnable)") {
  const ElementwiseKernels& k = elementwise_kernels().get("add", kGpu);
  CHECK((k.unary == &cuda::unary));
  CHECK((k.binary == &cuda::binary));
  CHECK((k.compare == &cuda::compare));
  CHECK((k.where == &cuda::where));
  CHECK((k.swiglu_backward == &cuda::swiglu_backward));
  CHECK((elementwise_kernels().get("add", Device::cpu()).binary == &cpu::binary));
}

TEST_CASE("cuda: the public elementwise ops run on CUDA tensors through the seam and match the CPU") {
  SKIP_WITHOUT_CUDA_DEVICE();
  Pair a = random_pair({7, 5}, 901, DType::f32), b = random_pair({5}, 902, DType::f32, 0.5, 2.0);
  auto f = [](const Tensor& x, const Tensor& y) {  // broadcast binary, unary, compare + where
    Tensor z = add(mul(exp(x), y), div(x, y));
    return where(gt(x, 0.0), z, neg(square(z)));
  };
  Tensor want = f(a.cpu, b.cpu), got = f(a.gpu, b.gpu);
  CHECK(got.device() == kGpu);
  CHECK_CLOSE(got.to(Device::cpu()), want, 1e-6, 1e-5);
  // Their backward needs the reductions (sum_to) on the device: not in the seam yet.
}

TEST_CASE("cuda allocator: host/device round trips") {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (int64_t n : {0, 1, 7, 1000, 300000}) {  // 300000 f64 = 2.4 MB: a large (2 MiB) bucket
    CAPTURE(n);
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 0.5 * static_cast<double>(i) - 3.0;
    Tensor g = from_vector(v, {n}, kGpu);
    CHECK(g.device() == kGpu);
    CHECK(g.to_vector<double>() == v);  // H2D then D2H
    Tensor g2 = empty({n}, {DType::f64, kGpu});
    copy_(g2, g);  // D2D through the allocator
    CHECK(g2.to_vector<double>() == v);
  }
  std::vector<uint8_t> bytes = {1, 2, 3, 250, 0, 9, 7};
  CHECK(from_vector(bytes, {7}, kGpu).to_vector<uint8_t>() == bytes);
  std::vector<int64_t> ints = {-5, 1ll << 40, 3};
  CHECK(from_vector(ints, {3}, kGpu).to_vector<int64_t>() == ints);
}

TEST_CASE("cuda allocator: freed blocks are reused; stats and empty_cache") {
  SKIP_WITHOUT_CUDA_DEVICE();
  cuda::synchronize(0);
  cuda::empty_cache();
  cuda::reset_allocator_stats(0);
  const cuda::AllocatorStats s0 = cuda::allocator_stats(0);
  CHECK(s0.bytes_cached == 0);
  CHECK(s0.cuda_malloc_calls == 0);
  { Tensor a = empty({1000}, {DType::f32, kGpu}); }  // 4000 bytes -> a 4096-byte block, now cached
  cuda::AllocatorStats s1 = cuda::allocator_stats(0);
  CHECK(s1.cuda_malloc_calls == 1);
  CHECK(s1.cache_hits == 0);
  CHECK(s1.bytes_cached == 4096);
  CHECK(s1.bytes_in_use == s0.bytes_in_use);
  CHECK(s1.peak_bytes_in_use == s0.bytes_in_use + 4096);
  {
    Tensor b = empty({975}, {DType::f32, kGpu});  // 3900 bytes: the same bucket, served from the cache
    cuda::AllocatorStats s2 = cuda::allocator_stats(0);
    CHECK(s2.cuda_malloc_calls == 1);
    CHECK(s2.cache_hits == 1);
    CHECK(s2.bytes_cached == 0);
    CHECK(s2.bytes_in_use == s0.bytes_in_use + 4096);
    Tensor c = empty({975}, {DType::f32, kGpu});  // the bucket is empty again: a new block
    CHECK(cuda::allocator_stats(0).cuda_malloc_calls == 2);
  }
  CHECK(cuda::allocator_stats(0).bytes_cached == 8192);
  cuda::empty_cache();
  cuda::AllocatorStats s3 = cuda::allocator_stats(0);
  CHECK(s3.bytes_cached == 0);
  CHECK(s3.bytes_in_use == s0.bytes_in_use);
  cuda::reset_allocator_stats(0);
  CHECK(cuda::allocator_stats(0).peak_bytes_in_use == s0.bytes_in_use);
}

TEST_CASE("cuda allocator: out of memory is an error naming the size, and the device stays usable") {
  SKIP_WITHOUT_CUDA_DEVICE();
  const int64_t huge = int64_t{1} << 50;  // 1 PiB
  CHECK_THROWS_WITH_ALL(empty({huge}, {DType::u8, kGpu}), "cuda allocator", "out of memory", "1125899906842624",
                        "cuda:0", "bytes in use");
  Tensor t = from_vector<float>({1, 2, 3}, {3}, kGpu);
  Tensor out = poisoned({3}, DType::f32);
  cuda::unary(cuda::UnaryOp::mul_scalar, t, 2.0, out);
  CHECK(out.to_vector<float>() == std::vector<float>{2, 4, 6});
}

TEST_CASE("cuda allocator: concurrent allocation from several threads") {
  SKIP_WITHOUT_CUDA_DEVICE();
  cuda::synchronize(0);
  const size_t in_use = cuda::allocator_stats(0).bytes_in_use;
  const uint64_t allocs = cuda::allocator_stats(0).allocations;
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      try {
        for (int i = 0; i < 200; ++i) {
          int64_t n = 1 + (i * 7919 + t * 104729) % 5000;
          Tensor a = empty({n}, {DType::f32, kGpu});
          Tensor b = empty({n + 3}, {DType::u8, kGpu});
        }
        ok[static_cast<size_t>(t)] = 1;
      } catch (...) {
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(std::count(ok.begin(), ok.end(), 1) == 4);
  CHECK(cuda::allocator_stats(0).bytes_in_use == in_use);
  CHECK(cuda::allocator_stats(0).allocations == allocs + 4 * 200 * 2);
}

TEST_CASE("cuda allocator: copies between two devices") {
  SKIP_WITHOUT_CUDA_DEVICE();
  if (cuda::device_count() < 2) {
    MESSAGE((std::string("SKIPPED: needs 2 CUDA devices, found ") + std::to_string(cuda::device_count())));
    return;
  }
  std::vector<float> v = {1.5f, -2.0f, 3.25f};
  Tensor a = from_vector(v, {3}, Device::cuda(0));
  Tensor b = a.to(Device::cuda(1));
  CHECK(b.device() == Device::cuda(1));
  CHECK(b.to_vector<float>() == v);
}

// ---------------------------------------------------------------- streams / cuBLAS (GPU)

TEST_CASE("cuda: the per-device cuBLAS handle runs on the backend stream") {
  SKIP_WITHOUT_CUDA_DEVICE();
  const int m = 3, k = 4, n = 5;
  Pair a = random_pair({m, k}, 1, DType::f32), b = random_pair({k, n}, 2, DType::f32);
  Tensor c = poisoned({m, n}, DType::f32);
  cublasHandle_t h = cuda::cublas_handle(0);
  CHECK(h == cuda::cublas_handle(0));
  cudaStream_t s = nullptr;
  REMOE_CUBLAS_CHECK(cublasGetStream(h, &s));
  CHECK(s == cuda::current_stream(0));
  const float one = 1, zero = 0;
  // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ.
  REMOE_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b.gpu.data<float>(), n,
                                 a.gpu.data<float>(), k, &zero, c.data<float>(), n));
  std::vector<float> got = c.to_vector<float>(), av = a.cpu.to_vector<float>(), bv = b.cpu.to_vector<float>();
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double ref = 0;
      for (int p = 0; p < k; ++p) ref += double(av[size_t(i * k + p)]) * bv[size_t(p * n + j)];
      CHECK(got[size_t(i * n + j)] == doctest::Approx(ref).epsilon(1e-5));
    }
}

// ---------------------------------------------------------------- RNG (GPU)

TEST_CASE("cuda rng: the same (seed, offset) gives the CPU's numbers") {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (const Shape& shape : std::vector<Shape>{{1}, {3, 17}, {100003}}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(shape_str(shape));
      Generator gen(1234);
      gen.offset = 77;
      Tensor ref_n = randn(shape, gen, {dt}, 0.5, 2.0);  // consumes [77, 77 + numel)
      Tensor ref_u = uniform(shape, gen, {dt}, -1.0, 3.0);
      Tensor gn = poisoned(shape, dt), gu = poisoned(shape, dt);
      cuda::fill_randn(gn, 1234, 77, 0.5, 2.0);
      cuda::fill_uniform(gu, 1234, 77 + static_cast<uint64_t>(shape_numel(shape)), -1.0, 3.0);
      if (dt == DType::f64) {
        // Device log/cos may differ from glibc's by an ulp of a double.
        CHECK_CLOSE(on_cpu(gn), ref_n, 1e-15, 1e-13);
        CHECK_CLOSE(on_cpu(gu), ref_u, 1e-15, 1e-14);
      } else {
        // f32 and bf16: identical numbers (the double results round to the same narrow value).
        CHECK_CLOSE(on_cpu(gn), ref_n, 0, 0);
        CHECK_CLOSE(on_cpu(gu), ref_u, 0, 0);
      }
    }
  }
  Tensor bad = empty({4}, {DType::i32, kGpu});
  CHECK_THROWS_WITH_ALL(cuda::fill_randn(bad, 1, 0), "cuda fill_randn", "i32");
}

// ---------------------------------------------------------------- elementwise (GPU)

namespace {

// Runs unary op on x (both sides) into out_shape and checks the CUDA result against the CPU's.
void check_unary(cuda::UnaryOp op, double scalar, const Pair& x, const Shape& out_shape, DType dt,
                 const std::string& what) {
  INFO(what);
  Tensor gout = poisoned(out_shape, dt);
  cuda::unary(op, x.gpu, scalar, gout);
  Tensor ref;
  if (dt == DType::bf16) {  // the CPU has no bf16 kernels: f32 compute, rounded to bf16
    Tensor r32 = empty(out_shape, {DType::f32});
    cpu::unary(op, x.cpu.to(DType::f32), scalar, r32);
    ref = r32.to(DType::bf16);
  } else {
    ref = empty(out_shape, {dt});
    cpu::unary(op, x.cpu, scalar, ref);
  }
  Tol t = tol_for(dt);
  CHECK_CLOSE(on_cpu(gout), ref, t.atol, t.rtol);
}

void check_binary(cuda::BinaryOp op, const Pair& a, const Pair& b, const Shape& out_shape, DType dt,
                  const std::string& what) {
  INFO(what);
  Tensor gout = poisoned(out_shape, dt);
  cuda::binary(op, a.gpu, b.gpu, gout);
  Tensor ref = empty(out_shape, {dt});
  cpu::binary(op, a.cpu, b.cpu, ref);
  Tol t = tol_for(dt);
  CHECK_CLOSE(on_cpu(gout), ref, t.atol, t.rtol);
}

const std::vector<std::pair<cuda::UnaryOp, double>> kUnaryOps = {
    {cuda::UnaryOp::neg, 0},          {cuda::UnaryOp::exp, 0},          {cuda::UnaryOp::log, 0},
    {cuda::UnaryOp::sqrt, 0},         {cuda::UnaryOp::rsqrt, 0},        {cuda::UnaryOp::tanh, 0},
    {cuda::UnaryOp::sigmoid, 0},      {cuda::UnaryOp::silu, 0},         {cuda::UnaryOp::relu, 0},
    {cuda::UnaryOp::abs, 0},          {cuda::UnaryOp::square, 0},       {cuda::UnaryOp::add_scalar, 0.75},
    {cuda::UnaryOp::mul_scalar, -1.5}, {cuda::UnaryOp::rsub_scalar, 2.5}, {cuda::UnaryOp::rdiv_scalar, 1.25},
    {cuda::UnaryOp::pow_scalar, 2.5},
};

bool needs_positive(cuda::UnaryOp op) {
  using U = cuda::UnaryOp;
  return op == U::log || op == U::sqrt || op == U::rsqrt || op == U::rdiv_scalar || op == U::pow_scalar;
}

}  // namespace

TEST_CASE("cuda unary: every op matches the CPU (contiguous, strided, offset, leading broadcast)") {
  SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 100;
  for (DType dt : {DType::f32, DType::f64}) {
    for (auto [op, scalar] : kUnaryOps) {
      const int id = static_cast<int>(op);
      double lo = needs_positive(op) ? 0.3 : 0, hi = needs_positive(op) ? 2.5 : 0;
      Pair base = random_pair({37, 5}, ++seed, dt, lo, hi, 2.0);
      check_unary(op, scalar, base, {37, 5}, dt, case_name("unary", id, dt, "contiguous [37, 5]"));
      check_unary(op, scalar, transposed(base), {5, 37}, dt, case_name("unary", id, dt, "transposed [5, 37]"));
      // Every other row starting at row 1: strides [10, 1], offset 5.
      check_unary(op, scalar, view(base, {18, 5}, {10, 1}, 5), {18, 5}, dt,
                  case_name("unary", id, dt, "row-sliced [18, 5]"));
      Pair row = random_pair({37}, ++seed, dt, lo, hi, 2.0);
      check_unary(op, scalar, row, {3, 37}, dt, case_name("unary", id, dt, "[37] -> [3, 37]"));
      Pair big = random_pair({70001}, ++seed, dt, lo, hi, 2.0);  // many blocks, odd size
      check_unary(op, scalar, big, {70001}, dt, case_name("unary", id, dt, "contiguous [70001]"));
    }
  }
}

TEST_CASE("cuda unary: bf16 (f32 compute) and integer dtypes") {
  SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 300;
  for (auto [op, scalar] : kUnaryOps) {
    const int id = static_cast<int>(op);
    double lo = needs_positive(op) ? 0.3 : 0, hi = needs_positive(op) ? 2.5 : 0;
    Pair base = random_pair({9, 13}, ++seed, DType::bf16, lo, hi, 2.0);
    check_unary(op, scalar, base, {9, 13}, DType::bf16, case_name("unary", id, DType::bf16, "contiguous"));
    check_unary(op, scalar, transposed(base), {13, 9}, DType::bf16, case_name("unary", id, DType::bf16, "transposed"));
  }
  using U = cuda::UnaryOp;
  for (DType dt : {DType::i32, DType::i64}) {
    for (auto [op, scalar] : std::vector<std::pair<U, double>>{
             {U::neg, 0}, {U::abs, 0}, {U::square, 0}, {U::relu, 0}, {U::add_scalar, 3}, {U::mul_scalar, -2},
             {U::rsub_scalar, 5}}) {
      Pair base = random_pair({11, 6}, ++seed, dt, -50, 50);
      check_unary(op, scalar, base, {11, 6}, dt, case_name("unary", static_cast<int>(op), dt, "contiguous"));
      check_unary(op, scalar, transposed(base), {6, 11}, dt,
                  case_name("unary", static_cast<int>(op), dt, "transposed"));
    }
  }
  Pair u8 = random_pair({40}, ++seed, DType::u8, 0, 200);
  check_unary(U::relu, 0, u8, {40}, DType::u8, "unary relu u8");
  check_unary(U::add_scalar, 7, u8, {40}, DType::u8, "unary add_scalar u8");
  Tensor i = empty({3}, {DType::i32, kGpu});
  CHECK_THROWS_WITH_ALL(cuda::unary(U::exp, i, 0, i), "dtype i32", "not supported");
}

TEST_CASE("cuda binary: every op matches the CPU (broadcast, strided, scalar, 64-bit indexing)") {
  SKIP_WITHOUT_CUDA_DEVICE();
  using B = cuda::BinaryOp;
  uint64_t seed = 500;
  for (bool force64 : {false, true}) {
    cuda::detail::set_force_64bit_indexing(force64);
    for (DType dt : {DType::f32, DType::f64}) {
      for (B op : {B::add, B::sub, B::mul, B::div, B::pow, B::swiglu}) {
        const int id = static_cast<int>(op);
        // pow needs a positive base; div a divisor away from 0.
        double alo = op == B::pow ? 0.3 : 0, ahi = op == B::pow ? 2.5 : 0;
        double blo = op == B::div ? 0.5 : 0, bhi = op == B::div ? 2.0 : 0;
        auto A = [&](const Shape& s) { return random_pair(s, ++seed, dt, alo, ahi, 1.5); };
        auto Bv = [&](const Shape& s) { return random_pair(s, ++seed, dt, blo, bhi, 1.5); };
        std::string tag = force64 ? " (64-bit index)" : "";
        check_binary(op, A({4, 33}), Bv({4, 33}), {4, 33}, dt, case_name("binary", id, dt, "same shape" + tag));
        check_binary(op, A({3, 1, 5}), Bv({4, 5}), {3, 4, 5}, dt,
                     case_name("binary", id, dt, "[3,1,5] x [4,5]" + tag));
        check_binary(op, A({6, 7}), Bv({}), {6, 7}, dt, case_name("binary", id, dt, "[6,7] x scalar" + tag));
        check_binary(op, A({}), Bv({6, 7}), {6, 7}, dt, case_name("binary", id, dt, "scalar x [6,7]" + tag));
        check_binary(op, A({7}), Bv({2, 3, 7}), {2, 3, 7}, dt, case_name("binary", id, dt, "[7] x [2,3,7]" + tag));
        // a: transpose of [33, 4]; b: every other column of [4, 66] starting at column 1.
        check_binary(op, transposed(A({33, 4})), view(Bv({4, 66}), {4, 33}, {66, 2}, 1), {4, 33}, dt,
                     case_name("binary", id, dt, "transposed x column-sliced" + tag));
        check_binary(op, A({1000, 3}), Bv({1000, 1}), {1000, 3}, dt,
                     case_name("binary", id, dt, "[1000,3] x [1000,1]" + tag));
      }
    }
  }
  cuda::detail::set_force_64bit_indexing(false);
  for (DType dt : {DType::i32, DType::i64}) {
    for (B op : {B::add, B::sub, B::mul}) {
      Pair a = random_pair({3, 1, 5}, ++seed, dt, -100, 100), b = random_pair({4, 5}, ++seed, dt, -100, 100);
      check_binary(op, a, b, {3, 4, 5}, dt, case_name("binary", static_cast<int>(op), dt, "[3,1,5] x [4,5]"));
    }
  }
  // bf16: f32 compute of the same bf16 inputs, rounded once.
  Pair a = random_pair({5, 8}, ++seed, DType::bf16), b = random_pair({8}, ++seed, DType::bf16);
  Tensor g = poisoned({5, 8}, DType::bf16);
  cuda::binary(B::mul, a.gpu, b.gpu, g);
  Tensor r = empty({5, 8}, {DType::f32});
  cpu::binary(B::mul, a.cpu.to(DType::f32), b.cpu.to(DType::f32), r);
  CHECK_CLOSE(on_cpu(g), r.to(DType::bf16), 0, 0);

  Tensor x = empty({3, 4}, {DType::f32, kGpu}), y = empty({5}, {DType::f32, kGpu}), o = empty({3, 4}, {DType::f32, kGpu});
  CHECK_THROWS_WITH_ALL(cuda::binary(B::add, x, y, o), "cuda binary", "[5]", "[3, 4]");
  Tensor yd = empty({3, 4}, {DType::f64, kGpu});
  CHECK_THROWS_WITH_ALL(cuda::binary(B::add, x, yd, o), "cuda binary", "f64");
}

TEST_CASE("cuda elementwise: up to 8 strided axes; 9 that cannot merge is a clear error") {
  SKIP_WITHOUT_CUDA_DEVICE();
  // A full reversal of the axes leaves no two axes mergeable.
  auto reversed = [](const Pair& p) {
    Shape sh = p.cpu.shape(), st = p.cpu.strides();
    std::reverse(sh.begin(), sh.end());
    std::reverse(st.begin(), st.end());
    return view(p, sh, st, 0);
  };
  Shape s8 = {2, 3, 2, 3, 2, 3, 2, 3};
  Pair a = reversed(random_pair(s8, 1, DType::f32));
  Pair b = random_pair(a.cpu.shape(), 2, DType::f32);
  check_binary(cuda::BinaryOp::add, a, b, a.cpu.shape(), DType::f32, "8 reversed axes");
  Shape s9 = {2, 3, 2, 3, 2, 3, 2, 3, 2};
  Pair c = reversed(random_pair(s9, 3, DType::f32));
  Tensor out = empty(c.cpu.shape(), {DType::f32, kGpu});
  CHECK_THROWS_WITH_ALL(cuda::unary(cuda::UnaryOp::neg, c.gpu, 0, out), "cuda unary", "at most 8");
  // 9 axes of a contiguous tensor merge into one: fine.
  Pair d = random_pair(s9, 4, DType::f32);
  check_unary(cuda::UnaryOp::exp, 0, d, s9, DType::f32, "9 contiguous axes");
}

TEST_CASE("cuda compare and where match the CPU") {
  SKIP_WITHOUT_CUDA_DEVICE();
  using C = cuda::CompareOp;
  uint64_t seed = 700;
  auto ties = [&](const Shape& s, DType dt) {  // small integers: equal values are common
    Generator gen(++seed);
    Tensor c = uniform(s, gen, {DType::f64}, -3, 3);
    std::vector<double> v = c.to_vector<double>();
    for (double& x : v) x = std::floor(x);
    Tensor t = from_vector(v, s).to(dt);
    return Pair{t, t.to(kGpu)};
  };
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::bf16}) {
    for (C op : {C::eq, C::ne, C::lt, C::le, C::gt, C::ge}) {
      Pair a = ties({3, 1, 5}, dt), b = ties({4, 5}, dt);
      Tensor g = poisoned({3, 4, 5}, DType::u8);
      cuda::compare(op, a.gpu, b.gpu, g);
      Tensor ref = empty({3, 4, 5}, {DType::u8});
      if (dt == DType::bf16)
        cpu::compare(op, a.cpu.to(DType::f32), b.cpu.to(DType::f32), ref);
      else
        cpu::compare(op, a.cpu, b.cpu, ref);
      INFO(case_name("compare", static_cast<int>(op), dt, "[3,1,5] x [4,5]"));
      CHECK_CLOSE(on_cpu(g), ref, 0, 0);
      // A transposed operand against a scalar.
      Pair at = transposed(ties({7, 4}, dt)), s = ties({}, dt);
      Tensor g2 = poisoned({4, 7}, DType::u8), ref2 = empty({4, 7}, {DType::u8});
      cuda::compare(op, at.gpu, s.gpu, g2);
      if (dt == DType::bf16)
        cpu::compare(op, at.cpu.to(DType::f32), s.cpu.to(DType::f32), ref2);
      else
        cpu::compare(op, at.cpu, s.cpu, ref2);
      CHECK_CLOSE(on_cpu(g2), ref2, 0, 0);
    }
  }
  for (DType dt : {DType::f32, DType::f64, DType::i32}) {
    Pair cond_src = ties({4, 1}, DType::f32);
    Tensor cc = empty({4, 1}, {DType::u8}), zero = zeros({}, {DType::f32});
    cpu::compare(C::gt, cond_src.cpu, zero, cc);
    Pair cond{cc, cc.to(kGpu)};
    Pair a = transposed(random_pair({6, 4}, ++seed, dt, -9, 9)), b = random_pair({6}, ++seed, dt, -9, 9);
    Tensor g = poisoned({4, 6}, dt), ref = empty({4, 6}, {dt});
    cuda::where(cond.gpu, a.gpu, b.gpu, g);
    cpu::where(cond.cpu, a.cpu, b.cpu, ref);
    INFO("where ", dtype_name(dt));
    CHECK_CLOSE(on_cpu(g), ref, 0, 0);
  }
}

TEST_CASE("cuda swiglu_backward matches the CPU") {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t n : {1, 1003, 70001}) {
      Pair gate = random_pair({n}, 10 + n, dt, 0, 0, 2.0), up = random_pair({n}, 20 + n, dt),
           g = random_pair({n}, 30 + n, dt);
      Tensor gg = poisoned({n}, dt), gu = poisoned({n}, dt);
      cuda::swiglu_backward(gate.gpu, up.gpu, g.gpu, gg, gu);
      Tensor rg = empty({n}, {dt}), ru = empty({n}, {dt});
      cpu::swiglu_backward(gate.cpu, up.cpu, g.cpu, rg, ru);
      Tol t = tol_for(dt);
      INFO(dtype_name(dt), " n=", n);
      CHECK_CLOSE(on_cpu(gg), rg, t.atol, t.rtol);
      CHECK_CLOSE(on_cpu(gu), ru, t.atol, t.rtol);
    }
  }
}

TEST_CASE("cuda fill and copy: strided views, every dtype conversion matches the CPU's copy_") {
  SKIP_WITHOUT_CUDA_DEVICE();
  // fill of a strided view writes exactly the view's elements.
  Tensor base = zeros({4, 6}, {DType::f32, kGpu});
  cuda::fill(make_view(base, {4, 3}, {6, 2}, 1), 2.5);
  std::vector<float> v = base.to_vector<float>();
  for (int i = 0; i < 24; ++i) CHECK(v[size_t(i)] == ((i % 6) % 2 == 1 ? 2.5f : 0.0f));
  // Strided same-dtype and converting copies, against core's CPU copy_.
  const DType all[] = {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u8};
  uint64_t seed = 900;
  for (DType sd : all) {
    for (DType dd : all) {
      Pair src = transposed(random_pair({5, 7}, ++seed, sd, 0, 100));
      Tensor gd = poisoned({7, 5}, dd), cd = empty({7, 5}, {dd});
      cuda::copy(gd, src.gpu);
      copy_(cd, src.cpu);
      INFO("copy ", dtype_name(sd), " -> ", dtype_name(dd));
      CHECK_CLOSE(on_cpu(gd), cd, 0, 0);
      // ... and into a strided destination (every other column of a [7, 10]).
      Tensor gbase = poisoned({7, 10}, dd);
      Tensor gview = make_view(gbase, {7, 5}, {10, 2}, 0);
      cuda::copy(gview, src.gpu);
      Tensor back = on_cpu(gbase);
      CHECK_CLOSE(make_view(back, {7, 5}, {10, 2}, 0), cd, 0, 0);
    }
  }
}
