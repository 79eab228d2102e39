// matmul under set_matmul_precision(bf16): inputs rounded to bfloat16, products summed in f32
// (oneDNN). Checked against the exact (f64) product of the rounded inputs, so any error beyond
// f32 summation -- a wrong layout, a lost transpose, a dropped accumulation -- shows; and the
// gradients against f32's within bf16's tolerance. Skipped, visibly, where bf16 GEMMs cannot run.
#include <optional>

#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// Restores f32 GEMMs however a test case ends (the precision is process-wide).
struct Bf16Scope {
  Bf16Scope() { set_matmul_precision(MatmulPrecision::bf16); }
  ~Bf16Scope() { set_matmul_precision(MatmulPrecision::f32); }
};

bool bf16_here() {
  std::string why;
  if (bf16_matmul_supported(&why)) return true;
  MESSAGE("bf16 matmul tests skipped: " << why);
  return false;
}

// An f32 tensor with values in [-1, 1).
Tensor rand_f32(const Shape& shape, uint64_t seed) { return rand_leaf(shape, seed, -1, 1).to(DType::f32).detach(); }

// The exact product of the bf16-rounded inputs, in f64.
Tensor rounded_product(const Tensor& a, const Tensor& b) {
  return matmul(a.to(DType::bf16).to(DType::f64), b.to(DType::bf16).to(DType::f64));
}

}  // namespace

TEST_CASE("matmul bf16: equals the f64 product of the rounded inputs, every layout and shape") {
  if (!bf16_here()) return;
  // (M, K, N), odd sizes included; each with a, b row-major, transposed views, and batched.
  const std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 128, 96}, {129, 31, 257}};
  uint64_t seed = 1;
  for (const auto& [M, K, N] : sizes) {
    CAPTURE(M);
    CAPTURE(K);
    CAPTURE(N);
    const Tensor a = rand_f32({M, K}, seed++), b = rand_f32({K, N}, seed++);
    const Tensor at = transpose(rand_f32({K, M}, seed++), 0, 1), bt = transpose(rand_f32({N, K}, seed++), 0, 1);
    const Tensor ab = rand_f32({2, M, K}, seed++);
    Bf16Scope bf16;
    // f32 sums of K products of magnitude <= 1: |error| <= ~K·2^-24·Σ|a||b|; 1e-5 absolute covers K <= 257.
    for (const auto& [x, y] : {std::pair{a, b}, {at, b}, {a, bt}, {at, bt}, {ab, b}})
      CHECK_CLOSE(matmul(x, y).to(DType::f64), rounded_product(x, y), 1e-5, 1e-5);
  }
}

TEST_CASE("matmul bf16: differs from f32 by bf16 rounding, forward and gradients") {
  if (!bf16_here()) return;
  const Tensor a0 = rand_f32({37, 64}, 11), b0 = rand_f32({64, 45}, 12), r = rand_f32({37, 45}, 13);
  auto run = [&](bool bf16_gemms) {
    std::optional<Bf16Scope> scope;
    if (bf16_gemms) scope.emplace();
    Tensor a = clone(a0), b = clone(b0);
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    Tensor y = matmul(a, b);
    sum(mul(y, r)).backward();  // the backward GEMMs run in the same precision
    return std::vector<Tensor>{y.detach(), a.grad(), b.grad()};
  };
  const std::vector<Tensor> f32 = run(false), bf16 = run(true);
  for (size_t i = 0; i < f32.size(); ++i) {
    CAPTURE(i);
    // Relative rounding of bf16 is 2^-9; over 64 (or 45, 37) random-sign terms the sums keep
    // about that relative error of their scale (~sqrt(K)): 2e-2 absolute is ~10 sigma.
    CHECK_CLOSE(bf16[i], f32[i], 2e-2, 1e-2);
    CHECK_FALSE(compare_close(bf16[i], f32[i], 1e-6, 1e-6).empty());  // it really ran in bf16
  }
}

TEST_CASE("matmul bf16: f64 matmuls are never rounded") {
  if (!bf16_here()) return;
  const Tensor a = rand_leaf({9, 13}, 21).detach(), b = rand_leaf({13, 5}, 22).detach();
  const Tensor f64 = matmul(a, b);
  Bf16Scope bf16;
  CHECK(compare_close(matmul(a, b), f64, 0, 0).empty());
}

TEST_CASE("set_matmul_precision(bf16) where it cannot run is an error naming why") {
  std::string why;
  if (bf16_matmul_supported(&why)) {
    MESSAGE("bf16 GEMMs run here: the refusal is not reachable on this machine");
    return;
  }
  CHECK_THROWS_WITH_AS(set_matmul_precision(MatmulPrecision::bf16), doctest::Contains(why.c_str()), std::exception);
  CHECK(matmul_precision() == MatmulPrecision::f32);
}
