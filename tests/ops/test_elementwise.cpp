#include "ops/cpu/elementwise.h"
#include "ops/elementwise_kernels.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {
const std::vector<Shape> kShapes = {{1}, {5}, {3, 7}, {2, 3, 5}};

// Gradchecks a unary op on inputs of several shapes, values drawn in [lo, hi).
template <class F>
void check_unary_grad(F op, double lo, double hi) {
  uint64_t seed = 10;
  for (const Shape& s : kShapes) {
    CAPTURE(shape_str(s));
    Tensor x = rand_leaf(s, ++seed, lo, hi);
    CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return op(in[0]); }, {x});
  }
}
}  // namespace

TEST_CASE("unary ops match std:: functions") {
  Tensor x = from_vector<double>({-1.5, -0.25, 0.5, 2.0}, {4});
  auto v = [](const Tensor& t) { return t.to_vector<double>(); };
  for (size_t i = 0; i < 4; ++i) {
    double a = x.to_vector<double>()[i];
    CHECK(v(exp(x))[i] == doctest::Approx(std::exp(a)));
    CHECK(v(tanh(x))[i] == doctest::Approx(std::tanh(a)));
    CHECK(v(sigmoid(x))[i] == doctest::Approx(1 / (1 + std::exp(-a))));
    CHECK(v(silu(x))[i] == doctest::Approx(a / (1 + std::exp(-a))));
    CHECK(v(relu(x))[i] == (a > 0 ? a : 0));
    CHECK(v(abs(x))[i] == std::abs(a));
    CHECK(v(neg(x))[i] == -a);
    CHECK(v(square(x))[i] == a * a);
  }
  Tensor p = from_vector<double>({0.25, 4.0}, {2});
  CHECK(v(sqrt(p)) == std::vector<double>{0.5, 2.0});
  CHECK(v(rsqrt(p)) == std::vector<double>{2.0, 0.5});
  CHECK(v(log(p))[1] == doctest::Approx(std::log(4.0)));
  CHECK(v(pow(p, 1.5))[1] == doctest::Approx(8.0));
  CHECK(v(rdiv(1.0, p)) == std::vector<double>{4.0, 0.25});
  CHECK(v(rsub(1.0, p)) == std::vector<double>{0.75, -3.0});
}

TEST_CASE("unary gradients") {
  check_unary_grad([](const Tensor& x) { return neg(x); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return exp(x); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return log(x); }, 0.2, 3);
  check_unary_grad([](const Tensor& x) { return sqrt(x); }, 0.2, 3);
  check_unary_grad([](const Tensor& x) { return rsqrt(x); }, 0.2, 3);
  check_unary_grad([](const Tensor& x) { return tanh(x); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return sigmoid(x); }, -3, 3);
  check_unary_grad([](const Tensor& x) { return silu(x); }, -3, 3);
  check_unary_grad([](const Tensor& x) { return relu(x); }, 0.1, 2);   // away from the kink
  check_unary_grad([](const Tensor& x) { return relu(x); }, -2, -0.1);
  check_unary_grad([](const Tensor& x) { return abs(x); }, 0.1, 2);
  check_unary_grad([](const Tensor& x) { return square(x); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return pow(x, 2.5); }, 0.2, 2);
  check_unary_grad([](const Tensor& x) { return add(x, 3.0); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return mul(x, -1.5); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return div(x, 4.0); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return rsub(2.0, x); }, -2, 2);
  check_unary_grad([](const Tensor& x) { return rdiv(2.0, x); }, 0.5, 2);
  check_unary_grad([](const Tensor& x) { return clone(x); }, -2, 2);
}

TEST_CASE("cast is differentiable (numeric gradient through f32 needs a larger step)") {
  Tensor x = rand_leaf({3, 5}, 3);
  GradcheckOptions opt;
  opt.eps = 1e-2;
  opt.atol = 1e-4;
  opt.rtol = 1e-3;
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return cast(cast(in[0], DType::f32), DType::f64); }, {x}, opt);
}

TEST_CASE("binary ops broadcast, and their gradients undo the broadcast") {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{4}, {4}}, {{3, 5}, {5}}, {{3, 1}, {1, 5}}, {{2, 3, 5}, {3, 1}}, {{1}, {2, 3}}, {{7, 3}, {7, 3}}};
  uint64_t seed = 100;
  for (const auto& [sa, sb] : pairs) {
    CAPTURE(shape_str(sa));
    CAPTURE(shape_str(sb));
    Tensor a = rand_leaf(sa, ++seed, 0.5, 2), b = rand_leaf(sb, ++seed, 0.5, 2);
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {a, b});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }, {a, b});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }, {a, b});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return div(in[0], in[1]); }, {a, b});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return pow(in[0], in[1]); }, {a, b});
  }
  // Forward against a naive loop for one broadcast pair.
  Tensor a = reshape(arange(0, 6, 1, {DType::f64}), {2, 3}), b = from_vector<double>({10, 20, 30}, {3});
  CHECK((a + b).to_vector<double>() == std::vector<double>{10, 21, 32, 13, 24, 35});
  CHECK((a * b).to_vector<double>() == std::vector<double>{0, 20, 60, 30, 80, 150});
  CHECK(div(b, 10.0).to_vector<double>() == std::vector<double>{1, 2, 3});
  // Strided (transposed) operands.
  Tensor t = transpose(a, 0, 1);  // [3, 2]
  CHECK((t - t).to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK((t + reshape(b, {3, 1})).to_vector<double>() == std::vector<double>{10, 13, 21, 24, 32, 35});
}

TEST_CASE("gradients flow through strided views") {
  Tensor x = rand_leaf({3, 4}, 7);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return mul(transpose(in[0], 0, 1), 2.0); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return slice(in[0], 1, 1, 4, 2); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return select(in[0], 0, 2); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return reshape(permute(in[0], {1, 0}), {2, 6}); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return expand(reshape(in[0], {3, 1, 4}), {3, 2, 4}); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return cat({in[0], exp(in[0])}, 0); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return stack({in[0], in[0]}, 1); }, {x});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return flatten(unsqueeze(in[0], 1)); }, {x});
}

TEST_CASE("swiglu: fused equals composed, and its backward is right") {
  for (const Shape& s : kShapes) {
    Tensor g = rand_leaf(s, 21), u = rand_leaf(s, 22);
    CHECK_CLOSE(swiglu(g, u), mul(silu(g), u), 1e-12, 1e-12);
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return swiglu(in[0], in[1]); }, {g, u});
  }
  CHECK_THROWS_WITH_ALL(swiglu(zeros({2, 3}), zeros({3, 2})), "swiglu", "[2, 3]", "[3, 2]");
}

TEST_CASE("comparisons and where") {
  Tensor a = from_vector<double>({1, 2, 3}, {3}), b = from_vector<double>({3, 2, 1}, {3});
  CHECK(lt(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 0});
  CHECK(le(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 0});
  CHECK(eq(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 0});
  CHECK(ne(a, 2.0).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 1});
  CHECK(gt(a, 1.0).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 1});
  CHECK(ge(a, b).to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 1});
  CHECK(where(gt(a, b), a, b).to_vector<double>() == std::vector<double>{3, 2, 3});
  Tensor x = rand_leaf({4, 3}, 31), y = rand_leaf({3}, 32);
  Tensor c = gt(rand_leaf({4, 1}, 33).detach(), 0.0);
  CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return where(c, in[0], in[1]); }, {x, y});
  CHECK_THROWS_WITH_ALL(where(a, a, b), "where", "u8");
}

TEST_CASE("elementwise errors name the op and both shapes") {
  CHECK_THROWS_WITH_ALL(add(zeros({2, 3}), zeros({4})), "add", "[2, 3]", "[4]");
  CHECK_THROWS_WITH_ALL(mul(zeros({2}), zeros({2}, {DType::f64})), "mul", "f32", "f64");
  CHECK_THROWS_WITH_ALL(exp(zeros({2}, {DType::i64})), "i64");
}

TEST_CASE("elementwise device seam: kernels chosen by device, a device without them is a clear error") {
  // The process-wide table has the CPU kernels; test_ops does not link cuda/, so CUDA has none.
  CHECK(elementwise_kernels().has(DeviceType::CPU));
  CHECK((elementwise_kernels().get("add", Device::cpu()).binary == &cpu::binary));
  // A table of its own, to see both sides of the lookup without touching the process-wide one.
  KernelTable<ElementwiseKernels> table("elementwise");
  CHECK_FALSE(table.has(DeviceType::CUDA));
  CHECK_THROWS_WITH(table.get("exp", Device::cuda(1)),
                    doctest::Contains("exp: no elementwise kernels for device cuda:1 in this build"));
  table.set(DeviceType::CUDA, elementwise_kernels().get("exp", Device::cpu()));
  CHECK((table.get("exp", Device::cuda(1)).unary == &cpu::unary));
  CHECK_FALSE(table.has(DeviceType::CPU));
}
