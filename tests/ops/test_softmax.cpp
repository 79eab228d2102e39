#include <cmath>
#include <limits>

#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

// Naive (log-)softmax along axis d, in long double: max, Σ exp(x − max), then each entry.
std::vector<double> naive_softmax(const Tensor& x, int64_t d, bool log) {
  std::vector<double> v = x.to(DType::f64).to_vector<double>();
  const Shape& s = x.shape();
  int64_t outer = 1, n = s[d], inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= s[i];
  for (int64_t i = d + 1; i < static_cast<int64_t>(s.size()); ++i) inner *= s[i];
  std::vector<double> out(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t k) { return (o * n + k) * inner + j; };
      long double m = -INFINITY, z = 0;
      for (int64_t k = 0; k < n; ++k) m = std::max<long double>(m, v[at(k)]);
      for (int64_t k = 0; k < n; ++k) z += std::exp(static_cast<long double>(v[at(k)]) - m);
      for (int64_t k = 0; k < n; ++k) {
        long double lp = v[at(k)] - m - std::log(z);
        out[at(k)] = static_cast<double>(log ? lp : std::exp(lp));
      }
    }
  return out;
}

// Naive cross-entropy: mean over non-ignored rows of logsumexp(row) − row[target].
double naive_cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets, int64_t ignore_index) {
  std::vector<double> lp = naive_softmax(logits, 1, true);
  const int64_t V = logits.shape()[1];
  double total = 0;
  int count = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] == ignore_index) continue;
    total -= lp[i * V + targets[i]];
    ++count;
  }
  return count ? total / count : 0.0;
}

Tensor targets_of(const std::vector<int64_t>& t) { return from_vector(t, {static_cast<int64_t>(t.size())}); }

// Random targets in [0, V) with every `every`-th row set to ignore_index.
std::vector<int64_t> random_targets(int64_t N, int64_t V, uint64_t seed, int64_t ignore_index, int every) {
  Generator gen(seed);
  std::vector<int64_t> t = randint({N}, 0, V, gen).to_vector<int64_t>();
  for (int64_t i = 0; every > 0 && i < N; i += every) t[i] = ignore_index;
  return t;
}

}  // namespace

TEST_CASE("softmax and log_softmax match a naive loop on every axis") {
  // Odd sizes; a middle axis; a row longer than the kernel's block (1024) whose values grow along
  // it (so the running max is raised block after block); a strided axis wider than 256 columns.
  const std::vector<Shape> shapes = {{1}, {7}, {3, 5}, {2, 3, 5}, {2, 2500}, {3, 4, 300}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    Generator gen(++seed);
    Tensor x = add(mul(randn(s, gen, {DType::f64}), 3.0), reshape(arange(0, static_cast<double>(s.back()), 1, {DType::f64}), {s.back()}));
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      CAPTURE(shape_str(s));
      CAPTURE(d);
      Tensor p = softmax(x, d), lp = log_softmax(x, d);
      CHECK_CLOSE(p, from_vector(naive_softmax(x, d, false), s), 1e-15, 1e-12);
      CHECK_CLOSE(lp, from_vector(naive_softmax(x, d, true), s), 1e-12, 1e-12);
      CHECK_CLOSE(softmax(x, d - static_cast<int64_t>(s.size())), p, 0, 0);
      // f32: same values to f32 rounding.
      Tensor x32 = x.to(DType::f32);
      CHECK(softmax(x32, d).dtype() == DType::f32);
      CHECK_CLOSE(softmax(x32, d), from_vector(naive_softmax(x32, d, false), s), 1e-7, 1e-5);
      CHECK_CLOSE(log_softmax(x32, d), from_vector(naive_softmax(x32, d, true), s), 1e-5, 1e-5);
    }
  }
  // A strided (transposed) input, and a 0-d input.
  Tensor a = reshape(arange(0, 6, 1, {DType::f64}), {2, 3});
  CHECK_CLOSE(softmax(transpose(a, 0, 1), 1), transpose(softmax(a, 0), 0, 1), 1e-15, 0);
  CHECK(softmax(scalar_tensor(3.0), -1).item() == 1.0);
  CHECK(log_softmax(scalar_tensor(3.0), 0).item() == 0.0);
}

TEST_CASE("softmax and log_softmax gradients on axes -1, 0 and a middle axis") {
  const std::vector<Shape> shapes = {{5}, {3, 7}, {2, 3, 5}, {3, 1, 4}};
  uint64_t seed = 200;
  for (const Shape& s : shapes) {
    Tensor x = rand_leaf(s, ++seed);
    std::vector<int64_t> axes = {-1, 0};
    if (s.size() >= 3) axes.push_back(1);
    for (int64_t d : axes) {
      CAPTURE(shape_str(s));
      CAPTURE(d);
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return softmax(in[0], d); }, {x});
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return log_softmax(in[0], d); }, {x});
    }
  }
}

TEST_CASE("softmax is numerically stable and masks -inf exactly") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(std::string(dtype_name(dt)));
    Tensor x = from_vector<double>({1000, 1001, 999, -1000, -1001, -999}, {2, 3}).to(dt);
    Tensor p = softmax(x, 1), lp = log_softmax(x, 1);
    Tensor ref = from_vector<double>({1, 2, 0, 1, 0, 2}, {2, 3});  // the same rows shifted
    CHECK_CLOSE(p, softmax(ref, 1), 1e-6, 1e-6);
    CHECK_CLOSE(lp, log_softmax(ref, 1), 1e-5, 1e-6);
    CHECK_CLOSE(softmax(x, 0), from_vector<double>({1, 1, 1, 0, 0, 0}, {2, 3}), 1e-30, 0);
    // Masked entries get probability exactly 0; an all −inf row gets 0 (log_softmax: NaN).
    Tensor m = from_vector<double>({-kInf, 0, 0, -kInf, -kInf, -kInf}, {2, 3}).to(dt);
    CHECK(softmax(m, 1).to(DType::f64).to_vector<double>() == std::vector<double>{0, 0.5, 0.5, 0, 0, 0});
    CHECK(softmax(m, 0).to(DType::f64).to_vector<double>() == std::vector<double>{0, 1, 1, 0, 0, 0});
    std::vector<double> ml = log_softmax(m, 1).to(DType::f64).to_vector<double>();
    CHECK(ml[0] == -kInf);
    CHECK(ml[1] == doctest::Approx(std::log(0.5)));
    CHECK(std::isnan(ml[3]));
    // A long row whose first blocks are entirely −inf.
    Tensor longrow = full({1, 3000}, -kInf, {dt});
    Tensor tail = full({1, 2}, 5.0, {dt});
    Tensor lr = softmax(cat({longrow, tail}, 1), 1);
    CHECK(sum(lr).item() == doctest::Approx(1.0));
    CHECK(lr.to(DType::f64).to_vector<double>()[3001] == doctest::Approx(0.5));
  }
  // Cross-entropy of huge logits is finite and equals the shifted problem's.
  Tensor big = from_vector<double>({1000, 1001, 999, -1000, -1001, -999}, {2, 3});
  Tensor t = targets_of({2, 0});
  double ce = cross_entropy(big, t).item();
  CHECK(std::isfinite(ce));
  CHECK(ce == doctest::Approx(naive_cross_entropy(from_vector<double>({1, 2, 0, 1, 0, 2}, {2, 3}), {2, 0}, -100)));
  CHECK(std::isfinite(cross_entropy(big.to(DType::f32), t).item()));
}

TEST_CASE("cross_entropy matches a naive loop and the composed version, forward and gradient") {
  struct Case {
    int64_t N, V;
    int64_t ignore_index;
    int every;  // every-th row ignored (0: none)
  };
  // Odd sizes; ignored rows; ignore_index a valid class (0); a V over one block; a grid large
  // enough for the parallel path.
  const std::vector<Case> cases = {{1, 1, -100, 0}, {5, 7, -100, 0}, {6, 5, -100, 2},  {9, 4, 0, 3},
                                   {3, 1500, -1, 2}, {64, 1000, -100, 5}};
  uint64_t seed = 300;
  for (const Case& c : cases) {
    CAPTURE(c.N);
    CAPTURE(c.V);
    CAPTURE(c.ignore_index);
    Tensor x = rand_leaf({c.N, c.V}, ++seed, -4, 4);
    std::vector<int64_t> tv = random_targets(c.N, c.V, ++seed, c.ignore_index, c.every);
    Tensor t = targets_of(tv);
    const int64_t ig = c.ignore_index;
    Tensor fused = cross_entropy(x, t, ig), comp = composed::cross_entropy(x, t, ig);
    CHECK(fused.shape() == Shape{});
    CHECK(fused.item() == doctest::Approx(naive_cross_entropy(x, tv, ig)).epsilon(1e-12));
    CHECK_CLOSE(fused, comp, 1e-12, 1e-12);
    // Gradients agree with the composed version (and with central differences on small cases).
    Tensor w = scalar_tensor(1.7, {DType::f64});
    Tensor gf = grad(mul(cross_entropy(x, t, ig), w), {x})[0];
    Tensor gc = grad(mul(composed::cross_entropy(x, t, ig), w), {x})[0];
    CHECK_CLOSE(gf, gc, 1e-14, 1e-10);
    if (c.N * c.V <= 64)
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], ig); }, {x, t});
    // Ignored rows get no gradient.
    std::vector<double> g = gf.to_vector<double>();
    bool ignored_zero = true;
    for (int64_t i = 0; i < c.N; ++i)
      if (tv[i] == ig)
        for (int64_t j = 0; j < c.V; ++j) ignored_zero &= g[i * c.V + j] == 0;
    CHECK(ignored_zero);
    // f32: same loss to f32 rounding; i32 targets are accepted.
    Tensor x32 = x.detach().to(DType::f32);
    CHECK(cross_entropy(x32, t, ig).dtype() == DType::f32);
    CHECK(cross_entropy(x32, t, ig).item() == doctest::Approx(fused.item()).epsilon(1e-5));
    CHECK(cross_entropy(x, t.to(DType::i32), ig).item() == fused.item());
  }
  // A strided logits view.
  Tensor xt = rand_leaf({4, 3}, 5);
  Tensor tt = targets_of({1, 0, 3});
  CHECK_CLOSE(cross_entropy(transpose(xt, 0, 1), tt), composed::cross_entropy(transpose(xt, 0, 1), tt), 1e-12, 0);
  CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(transpose(in[0], 0, 1), tt); }, {xt});
}

TEST_CASE("cross_entropy with every row ignored is 0 with a zero gradient") {
  Tensor x = rand_leaf({3, 4}, 11);
  Tensor t = targets_of({-100, -100, -100});
  Tensor loss = cross_entropy(x, t);
  CHECK(loss.item() == 0);
  CHECK(composed::cross_entropy(x, t).item() == 0);
  loss.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>(12, 0.0));
  // No rows at all.
  Tensor e = rand_leaf({0, 4}, 12);
  CHECK(cross_entropy(e, zeros({0}, {DType::i64})).item() == 0);
}

TEST_CASE("cross_entropy and softmax errors name the op, the shapes and the bad value") {
  Tensor x = zeros({4, 5});
  CHECK_THROWS_WITH_ALL(cross_entropy(x, targets_of({0, 1, 5, 2})), "cross_entropy", "target 5", "row 2", "[0, 5)",
                        "[4, 5]");
  CHECK_THROWS_WITH_ALL(cross_entropy(x, targets_of({0, -1, 1, 2})), "cross_entropy", "target -1", "[0, 5)");
  CHECK_THROWS_WITH_ALL(composed::cross_entropy(x, targets_of({0, 1, 7, 2})), "cross_entropy", "target 7");
  CHECK_THROWS_WITH_ALL(cross_entropy(x, targets_of({0, 1, 2})), "cross_entropy", "[3]", "[4, 5]");
  CHECK_THROWS_WITH_ALL(cross_entropy(x, zeros({4, 1}, {DType::i64})), "cross_entropy", "[4, 1]", "[4, 5]");
  CHECK_THROWS_WITH_ALL(cross_entropy(x, zeros({4})), "cross_entropy", "targets", "f32", "[4]", "[4, 5]");
  CHECK_THROWS_WITH_ALL(cross_entropy(zeros({2, 4, 5}), targets_of({0, 1})), "cross_entropy", "[N, V]", "[2, 4, 5]",
                        "[2]");
  CHECK_THROWS_WITH_ALL(cross_entropy(zeros({4, 5}, {DType::i64}), targets_of({0, 1, 2, 3})), "cross_entropy", "i64");
  CHECK_THROWS_WITH_ALL(softmax(zeros({2, 3}), 2), "softmax", "axis 2", "rank 2");
  CHECK_THROWS_WITH_ALL(log_softmax(zeros({2, 3}), -3), "log_softmax", "axis -3");
  CHECK_THROWS_WITH_ALL(softmax(zeros({2}, {DType::i64}), 0), "softmax", "i64");
  CHECK_THROWS_WITH_ALL(log_softmax(zeros({2}).to(DType::bf16), 0), "log_softmax", "bf16");
}
