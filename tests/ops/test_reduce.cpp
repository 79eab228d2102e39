#include <cmath>
#include <limits>

#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// x viewed as [outer, n, inner] around axis d.
struct Split {
  int64_t outer = 1, n = 1, inner = 1;
};
Split split(const Shape& s, int64_t d) {
  Split r;
  for (int64_t i = 0; i < d; ++i) r.outer *= s[i];
  r.n = s[d];
  for (int64_t i = d + 1; i < static_cast<int64_t>(s.size()); ++i) r.inner *= s[i];
  return r;
}

// Naive sum over the flagged axes, in double, row-major over the kept axes.
std::vector<double> naive_sum(const Tensor& x, const std::vector<bool>& flags) {
  std::vector<double> v = x.to(DType::f64).to_vector<double>();
  const Shape& s = x.shape();
  Shape kept = s;
  for (size_t i = 0; i < s.size(); ++i)
    if (flags[i]) kept[i] = 1;
  std::vector<double> out(static_cast<size_t>(shape_numel(kept)), 0.0);
  Shape ks = contiguous_strides(kept);
  for (int64_t lin = 0; lin < x.numel(); ++lin) {
    int64_t rem = lin, o = 0;
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
      int64_t i = rem % s[d];
      rem /= s[d];
      if (!flags[d]) o += i * ks[d];
    }
    out[o] += v[lin];
  }
  return out;
}

// Naive max and first argmax along axis d.
void naive_max(const Tensor& x, int64_t d, std::vector<double>& values, std::vector<int64_t>& indices) {
  std::vector<double> v = x.to(DType::f64).to_vector<double>();
  Split sp = split(x.shape(), d);
  values.assign(sp.outer * sp.inner, 0);
  indices.assign(sp.outer * sp.inner, 0);
  for (int64_t o = 0; o < sp.outer; ++o)
    for (int64_t j = 0; j < sp.inner; ++j) {
      int64_t best = 0;
      for (int64_t k = 1; k < sp.n; ++k)
        if (v[(o * sp.n + k) * sp.inner + j] > v[(o * sp.n + best) * sp.inner + j]) best = k;
      values[o * sp.inner + j] = v[(o * sp.n + best) * sp.inner + j];
      indices[o * sp.inner + j] = best;
    }
}

}  // namespace

TEST_CASE("sum matches a naive loop on every kernel path") {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  // Last axis, leading axis, middle axis, several axes (contiguous and not), everything, size-1
  // axes, and sizes that cross the kernels' blocks (16384 elements along a row; 4096 columns and
  // 263 rows of 1000 for a strided axis).
  const std::vector<Case> cases = {
      {{7}, {}},           {{3, 5}, {1}},          {{3, 5}, {0}},         {{2, 3, 5}, {1}},
      {{2, 3, 5}, {0, 2}}, {{2, 3, 5}, {1, 2}},    {{2, 3, 5}, {0, 1}},   {{4, 1, 3}, {0, 1}},
      {{2, 1, 3}, {1}},    {{3, 40001}, {}},       {{3, 40001}, {1}},     {{40001, 3}, {0}},
      {{5, 70, 301}, {1}}, {{2, 3, 4, 5}, {0, 2}}, {{2, 3, 4, 5}, {1, 3}}, {{300, 1000}, {0}},
      {{2, 3, 5000}, {1}}};
  uint64_t seed = 1;
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(shape_str(Shape(c.dims)));
    Generator gen(++seed);
    std::vector<bool> flags(c.shape.size(), c.dims.empty());
    for (int64_t d : c.dims) flags[d] = true;
    Tensor x64 = randn(c.shape, gen, {DType::f64});
    std::vector<double> expect = naive_sum(x64, flags);
    Tensor s64 = sum(x64, c.dims, true);
    CHECK_CLOSE(s64, from_vector(expect, s64.shape()), 1e-9, 1e-12);
    // f32 accumulates in double too: as accurate as its rounding of the inputs allows.
    Tensor x32 = x64.to(DType::f32);
    CHECK_CLOSE(sum(x32, c.dims, true), from_vector(naive_sum(x32, flags), s64.shape()), 1e-4, 1e-6);
    // Integers sum exactly.
    Tensor xi = randint(c.shape, -50, 50, gen);
    std::vector<double> ei = naive_sum(xi, flags);
    std::vector<int64_t> got = sum(xi, c.dims, true).to_vector<int64_t>();
    bool exact = true;
    for (size_t i = 0; i < ei.size(); ++i) exact &= got[i] == static_cast<int64_t>(ei[i]);
    CHECK(exact);
  }
  // keepdim=false drops the axes; empty inputs sum to zero.
  CHECK(sum(zeros({2, 3, 4}), {0, 2}).shape() == Shape{3});
  CHECK(sum(zeros({0, 3}), {0}).to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(sum(zeros({2, 0}), {1}, true).shape() == Shape{2, 1});
  // A strided input is summed by value.
  Tensor a = reshape(arange(0, 6, 1, {DType::f64}), {2, 3});
  CHECK(sum(transpose(a, 0, 1), {1}).to_vector<double>() == std::vector<double>{3, 5, 7});
}

TEST_CASE("sum and mean gradients") {
  Tensor x = rand_leaf({2, 3, 5}, 3);
  for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{}, {0}, {1}, {-1}, {0, 2}}) {
    CAPTURE(shape_str(Shape(dims)));
    CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return sum(in[0], dims); }, {x});
    CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return mean(in[0], dims, true); }, {x});
  }
  CHECK(mean(from_vector<double>({1, 2, 3, 6}, {2, 2}), {1}).to_vector<double>() == std::vector<double>{1.5, 4.5});
}

TEST_CASE("max and argmax match a naive loop") {
  const std::vector<Shape> shapes = {{1}, {7}, {3, 5}, {2, 3, 5}, {4, 300, 3}, {3, 2, 301}};
  uint64_t seed = 20;
  for (const Shape& s : shapes) {
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      CAPTURE(shape_str(s));
      CAPTURE(d);
      Generator gen(++seed);
      Tensor x = randn(s, gen, {DType::f64});
      std::vector<double> values;
      std::vector<int64_t> indices;
      naive_max(x, d, values, indices);
      Shape kept = s, dropped = s;
      kept[d] = 1;
      dropped.erase(dropped.begin() + d);
      Tensor m = max(x, d), mk = max(x, d, true), a = argmax(x, d), ak = argmax(x, d, true);
      CHECK(m.shape() == dropped);
      CHECK(mk.shape() == kept);
      CHECK(a.shape() == dropped);
      CHECK(ak.shape() == kept);
      CHECK(a.dtype() == DType::i64);
      CHECK(m.to_vector<double>() == values);
      CHECK(a.to_vector<int64_t>() == indices);
      CHECK(ak.to_vector<int64_t>() == indices);
      // Negative axes count from the end; f32 and i32 use the same kernel.
      CHECK(argmax(x, d - static_cast<int64_t>(s.size())).to_vector<int64_t>() == indices);
      CHECK(argmax(x.to(DType::f32), d).to_vector<int64_t>() == indices);
      Tensor xi = randint(s, -1000000, 1000000, gen, {DType::i32});
      naive_max(xi, d, values, indices);
      std::vector<int32_t> mi = max(xi, d).to_vector<int32_t>();
      bool same = true;
      for (size_t i = 0; i < values.size(); ++i) same &= mi[i] == static_cast<int32_t>(values[i]);
      CHECK(same);
    }
  }
  // Ties go to the first maximal element; NaN counts as the maximum; a 0-d tensor is its own max.
  Tensor t = from_vector<double>({1, 3, 3, 2, 5, 5, 5, 0}, {2, 4});
  CHECK(argmax(t, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  // Checked element by element: GCC 12.2 with AVX-512 enabled (-march=native on an AVX-512 CPU)
  // miscompiles the 32-byte constant {1, 1, 1, 0} (int64) into {1, 1, 1, 1} when it is stored to
  // the heap, so a std::vector literal of it can hold the wrong values (a compiler bug, not argmax).
  const std::vector<int64_t> argmax_axis0 = argmax(t, 0).to_vector<int64_t>();
  REQUIRE(argmax_axis0.size() == 4);
  CHECK(argmax_axis0[0] == 1);
  CHECK(argmax_axis0[1] == 1);
  CHECK(argmax_axis0[2] == 1);
  CHECK(argmax_axis0[3] == 0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor n = from_vector<double>({1, nan, 7, nan}, {4});
  CHECK(argmax(n, 0).item() == 1);
  CHECK(std::isnan(max(n, 0).item()));
  CHECK(max(scalar_tensor(4.0), 0).item() == 4.0);
  CHECK(argmax(scalar_tensor(4.0), -1).item() == 0);
}

TEST_CASE("max gradient goes to the first maximal element") {
  // Random normal inputs have no ties, so central differences are valid.
  const std::vector<Shape> shapes = {{5}, {3, 7}, {2, 3, 5}, {3, 1, 4}};
  uint64_t seed = 40;
  for (const Shape& s : shapes) {
    Tensor x = rand_leaf(s, ++seed);
    for (int64_t d = -1; d < static_cast<int64_t>(s.size()); ++d) {
      CAPTURE(shape_str(s));
      CAPTURE(d);
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return max(in[0], d); }, {x});
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return max(in[0], d, true); }, {x});
    }
  }
  // With ties the whole gradient goes to the first maximum.
  Tensor t = from_vector<double>({1, 3, 3, 2, 5, 5, 5, 0}, {2, 4});
  t.set_requires_grad(true);
  sum(mul(max(t, 1), from_vector<double>({2, 10}, {2}))).backward();
  CHECK(t.grad().to_vector<double>() == std::vector<double>{0, 2, 0, 0, 10, 0, 0, 0});
  // argmax is not differentiable.
  Tensor x = rand_leaf({3, 4}, 9);
  CHECK_FALSE(argmax(x, 1).requires_grad());
  CHECK(max(x, 1).requires_grad());
}

TEST_CASE("max and argmax errors name the op and the shape") {
  CHECK_THROWS_WITH_ALL(max(zeros({2, 3}), 2), "max", "axis 2", "rank 2");
  CHECK_THROWS_WITH_ALL(argmax(zeros({2, 3}), -3), "argmax", "axis -3");
  CHECK_THROWS_WITH_ALL(max(zeros({2, 0}), 1), "max", "size 0", "[2, 0]");
  CHECK_THROWS_WITH_ALL(argmax(zeros({0, 3}), 0), "argmax", "[0, 3]");
  CHECK_THROWS_WITH_ALL(max(zeros({2}).to(DType::bf16), 0), "max", "bf16");
  CHECK_THROWS_WITH_ALL(sum(zeros({2, 3}), {1, 1}), "sum", "listed twice");
  CHECK_THROWS_WITH_ALL(sum(zeros({2, 3}), {2}), "sum", "axis 2");
}
