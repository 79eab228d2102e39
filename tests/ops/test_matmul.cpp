#include "ops/cpu/matmul.h"
#include "test_util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace remoe;
using namespace remoe::test;

namespace {

// The naive triple loop, in f64, with NumPy broadcasting of the batch axes: the forward oracle.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const std::vector<double> av = a.to(DType::f64).to_vector<double>(), bv = b.to(DType::f64).to_vector<double>();
  const Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const size_t rank = std::max(ba.size(), bb.size());
  // Right-align both batch shapes to the output's rank (missing axes have size 1).
  Shape pa(rank - ba.size(), 1), pb(rank - bb.size(), 1), bo(rank);
  pa.insert(pa.end(), ba.begin(), ba.end());
  pb.insert(pb.end(), bb.begin(), bb.end());
  for (size_t i = 0; i < rank; ++i) bo[i] = std::max(pa[i], pb[i]);
  const int64_t nb = shape_numel(bo);
  std::vector<double> out(nb * m * n, 0.0);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;  // batch index -> a's and b's batch index
    for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
      int64_t idx = rem % bo[d];
      rem /= bo[d];
      ia += (pa[d] == 1 ? 0 : idx) * sa;
      ib += (pb[d] == 1 ? 0 : idx) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) s += av[(ia * m + r) * k + q] * bv[(ib * k + q) * n + c];
        out[(i * m + r) * n + c] = s;
      }
  }
  Shape os = bo;
  os.push_back(m);
  os.push_back(n);
  return from_vector<double>(out, os);
}

Tensor rand_t(const Shape& s, uint64_t seed, DType dt = DType::f64) {
  Generator gen(seed);
  return randn(s, gen, {dt});
}

// Checks matmul(a, b) against the naive loop (tolerance by dtype).
void check_forward(const Tensor& a, const Tensor& b) {
  CAPTURE(shape_str(a.shape()));
  CAPTURE(shape_str(b.shape()));
  const bool f32 = a.dtype() == DType::f32;
  Tensor y = matmul(a, b);
  CHECK(y.dtype() == a.dtype());
  CHECK(y.is_contiguous());
  CHECK_CLOSE(y, naive_matmul(a, b), f32 ? 1e-4 : 1e-12, f32 ? 1e-4 : 1e-12);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
const Fn kMatmul = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };

}  // namespace

TEST_CASE("matmul: 2-D forward matches the naive loop, f32 and f64, odd sizes") {
  // (M, K, N); the large ones go through Eigen's blocked (and multi-threaded) GEMM, the small ones
  // through its coefficient-wise product.
  const std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1}, {3, 5, 7}, {17, 1, 9}, {1, 9, 1},
                                                     {9, 1, 1}, {33, 65, 31}, {130, 70, 90}};
  uint64_t seed = 1;
  for (DType dt : {DType::f64, DType::f32})
    for (auto [m, k, n] : sizes) {
      seed += 2;
      check_forward(rand_t({m, k}, seed, dt), rand_t({k, n}, seed + 1, dt));
    }
}

TEST_CASE("matmul: batched forward broadcasts the batch axes") {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{2, 3, 4, 5}, {5, 6}},        // b shared: folded into one (2·3·4)×5 GEMM
      {{2, 3, 4, 5}, {1, 5, 6}},     // same, b with a size-1 batch axis
      {{2, 1, 4, 5}, {3, 5, 2}},     // both broadcast
      {{4, 5}, {3, 5, 2}},           // a shared
      {{1, 4, 5}, {2, 5, 3}},
      {{3, 2, 3}, {3, 3, 4}},        // plain batched
      {{2, 1, 1, 7}, {2, 7, 1}},     // M = N = 1
      {{64, 8, 8}, {64, 8, 8}},      // many small GEMMs: one per thread
      {{2, 1, 70, 40}, {3, 40, 50}}, // larger batched GEMMs: Eigen splits each one
  };
  uint64_t seed = 100;
  for (DType dt : {DType::f64, DType::f32})
    for (const auto& [sa, sb] : pairs) {
      seed += 2;
      check_forward(rand_t(sa, seed, dt), rand_t(sb, seed + 1, dt));
    }
}

TEST_CASE("matmul: strided operands (transposed views are read in place, others copied)") {
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = rand_t({5, 3}, 1, dt), y = rand_t({7, 5}, 2, dt), w = rand_t({5, 7}, 3, dt);
    check_forward(transpose(x, 0, 1), w);                     // column-major a
    check_forward(rand_t({3, 5}, 4, dt), transpose(y, 0, 1));  // column-major b
    check_forward(transpose(x, 0, 1), transpose(y, 0, 1));    // both
    // Batched transposes: permuted last two axes of [2, 3, 5, 4] and [2, 3, 6, 5].
    Tensor p = rand_t({2, 3, 5, 4}, 5, dt), q = rand_t({2, 3, 6, 5}, 6, dt);
    check_forward(transpose(p, -1, -2), transpose(q, -1, -2));
    check_forward(transpose(p, -1, -2), rand_t({5, 6}, 7, dt));  // column-major a with shared b: not foldable
    // Batch axes permuted: a's rows are not one evenly strided run, so no folding.
    check_forward(permute(rand_t({3, 2, 4, 5}, 8, dt), {1, 0, 2, 3}), rand_t({5, 6}, 9, dt));
    // A batch-strided slice whose rows are evenly strided in a wider buffer (folds with row stride 5).
    check_forward(slice(rand_t({2, 3, 4, 5}, 10, dt), 3, 0, 3), rand_t({3, 6}, 11, dt));
    // Stepped slices: column stride 2 is neither layout, so the operand is copied.
    check_forward(slice(rand_t({4, 10}, 12, dt), 1, 0, 10, 2), slice(rand_t({5, 12}, 13, dt), 1, 1, 12, 3));
    // Expanded (stride 0) operands: over the batch axis (read in place) and inside a matrix (copied).
    check_forward(expand(rand_t({1, 3, 4}, 14, dt), {5, 3, 4}), rand_t({5, 4, 2}, 15, dt));
    check_forward(expand(rand_t({1, 4}, 16, dt), {3, 4}), rand_t({4, 2}, 17, dt));
    check_forward(rand_t({3, 4}, 18, dt), expand(rand_t({4, 1}, 19, dt), {4, 6}));
  }
}

TEST_CASE("cpu::matmul with accumulate adds the product into out (incl. row blocks and transposes)") {
  for (DType dt : {DType::f64, DType::f32}) {
    const bool f32 = dt == DType::f32;
    Tensor a = rand_t({37, 19}, 60, dt), b = rand_t({19, 23}, 61, dt), c0 = rand_t({37, 23}, 62, dt);
    Tensor out = clone(c0);
    cpu::matmul(a, b, out, /*accumulate=*/true);
    CHECK_CLOSE(out, add(c0, naive_matmul(a, b).to(dt)), f32 ? 1e-4 : 1e-12, f32 ? 1e-4 : 1e-12);
    // Into a block of rows of a larger buffer, from a transposed view; the other rows untouched.
    Tensor big = rand_t({50, 23}, 63, dt), before = clone(big);
    Tensor at = rand_t({19, 10}, 64, dt);
    cpu::matmul(transpose(at, 0, 1), b, slice(big, 0, 20, 30), true);
    CHECK_CLOSE(slice(big, 0, 20, 30), add(slice(before, 0, 20, 30), naive_matmul(transpose(at, 0, 1), b).to(dt)),
                f32 ? 1e-4 : 1e-12, f32 ? 1e-4 : 1e-12);
    CHECK(slice(big, 0, 0, 20).to(DType::f64).to_vector<double>() == slice(before, 0, 0, 20).to(DType::f64).to_vector<double>());
    CHECK(slice(big, 0, 30, 50).to(DType::f64).to_vector<double>() == slice(before, 0, 30, 50).to(DType::f64).to_vector<double>());
    // K = 0: nothing to add.
    Tensor keep = clone(c0);
    cpu::matmul(empty({37, 0}, {dt}), empty({0, 23}, {dt}), keep, true);
    CHECK(keep.to(DType::f64).to_vector<double>() == c0.to(DType::f64).to_vector<double>());
  }
}

TEST_CASE("matmul: empty operands") {
  Tensor z = matmul(ones({3, 0}), ones({0, 4}));  // K = 0: an empty sum
  CHECK(z.shape() == Shape{3, 4});
  CHECK(z.to_vector<float>() == std::vector<float>(12, 0.0f));
  CHECK(matmul(ones({2, 0, 3}), ones({3, 4})).shape() == Shape{2, 0, 4});
  CHECK(matmul(ones({0, 2, 3}), ones({3, 4})).shape() == Shape{0, 2, 4});
}

TEST_CASE("matmul: the batched paths agree whatever the thread count") {
  // One GEMM per thread (many small matrices) vs one thread: the same products.
  Tensor a = rand_t({16, 24, 20}, 40), b = rand_t({16, 20, 28}, 41);
  Tensor y = matmul(a, b);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Tensor y1 = matmul(a, b);
  omp_set_num_threads(threads);
  CHECK_CLOSE(y, y1, 1e-12, 1e-12);
#endif
  CHECK_CLOSE(y, naive_matmul(a, b), 1e-12, 1e-12);
}

TEST_CASE("matmul: gradients (f64), incl. broadcasting and transposed views") {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{1, 1}, {1, 1}},       {{3, 5}, {5, 7}},       {{17, 1}, {1, 9}},     {{2, 3, 4, 5}, {5, 6}},
      {{2, 3, 4, 5}, {1, 5, 6}}, {{2, 1, 4, 5}, {3, 5, 2}}, {{4, 5}, {3, 5, 2}}, {{3, 2, 3}, {3, 3, 4}},
  };
  uint64_t seed = 200;
  for (const auto& [sa, sb] : pairs) {
    CAPTURE(shape_str(sa));
    CAPTURE(shape_str(sb));
    Tensor a = rand_leaf(sa, ++seed), b = rand_leaf(sb, ++seed);
    CHECK_GRADCHECK(kMatmul, {a, b});
  }
  // Transposed views as operands (the function transposes its leaves).
  Tensor x = rand_leaf({5, 3}, 301), y = rand_leaf({7, 5}, 302);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(transpose(in[0], 0, 1), transpose(in[1], 0, 1)); },
                  {x, y});
  Tensor p = rand_leaf({2, 3, 5, 4}, 303), w = rand_leaf({5, 6}, 304);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(transpose(in[0], -1, -2), in[1]); }, {p, w});
  Tensor q = rand_leaf({2, 6, 5}, 305);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], transpose(in[1], -1, -2)); },
                  {rand_leaf({2, 4, 5}, 306), q});
  // Only one operand requiring a gradient.
  Tensor c = rand_t({3, 4, 5}, 307);
  CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return matmul(c, in[0]); }, {rand_leaf({5, 2}, 308)});
}

TEST_CASE("matmul: gradients of a linear layer match the per-batch formulas") {
  // gb for a shared b is computed as one GEMM over all rows; check it against Σ aᵢᵀ gᵢ.
  Tensor a = rand_leaf({2, 3, 4}, 400), b = rand_leaf({4, 5}, 401);
  Tensor g = rand_t({2, 3, 5}, 402);
  matmul(a, b).backward(g);
  Tensor gb_ref = zeros({4, 5}, {DType::f64});
  for (int64_t i = 0; i < 2; ++i) gb_ref = add(gb_ref, naive_matmul(transpose(select(a, 0, i), 0, 1), select(g, 0, i)));
  CHECK_CLOSE(b.grad(), gb_ref, 1e-12, 1e-12);
  CHECK_CLOSE(a.grad(), naive_matmul(g, transpose(b, 0, 1)), 1e-12, 1e-12);
}

TEST_CASE("matmul: errors name matmul and both shapes") {
  CHECK_THROWS_WITH_ALL(matmul(zeros({3}), zeros({3, 4})), "matmul needs at least 2-D operands", "[3]", "[3, 4]");
  CHECK_THROWS_WITH_ALL(matmul(zeros({2, 3}), zeros({4})), "matmul", "2-D", "[2, 3]", "[4]");
  CHECK_THROWS_WITH_ALL(matmul(zeros({2, 3}), zeros({4, 5})), "matmul", "[2, 3]", "[4, 5]");
  CHECK_THROWS_WITH_ALL(matmul(zeros({2, 3, 4}), zeros({3, 4, 5})), "matmul", "[2, 3, 4]", "[3, 4, 5]", "broadcast");
  CHECK_THROWS_WITH_ALL(matmul(zeros({2, 3}), zeros({3, 4}, {DType::f64})), "matmul", "[2, 3]", "[3, 4]", "f32", "f64");
  CHECK_THROWS_WITH_ALL(matmul(zeros({2, 3}, {DType::i64}), zeros({3, 4}, {DType::i64})), "matmul", "i64", "[2, 3]",
                        "[3, 4]");
}
