#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

TEST_CASE("backward accumulates through shared subexpressions") {
  Tensor x = from_vector<double>({2.0}, {1}).set_requires_grad();
  Tensor y = mul(x, x);         // x²
  Tensor z = add(mul(y, x), y);  // x³ + x²
  sum(z).backward();
  CHECK(x.grad().item() == doctest::Approx(3 * 4 + 2 * 2));  // 3x² + 2x
  // A second backward accumulates into .grad.
  sum(mul(x, 3.0)).backward();
  CHECK(x.grad().item() == doctest::Approx(16 + 3));
}

TEST_CASE("the graph is freed after backward unless retained") {
  Tensor x = from_vector<double>({1.0, 2.0}, {2}).set_requires_grad();
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().to_vector<double>()[0] == doctest::Approx(2 * std::exp(1.0)));
  CHECK_THROWS_WITH_ALL(y.backward(), "retain_graph");
}

TEST_CASE("NoGradGuard, detach and requires_grad") {
  Tensor x = ones({3}, {DType::f64}).set_requires_grad();
  {
    NoGradGuard g;
    Tensor y = mul(x, 2.0);
    CHECK(!y.requires_grad());
    CHECK(!grad_enabled());
  }
  CHECK(grad_enabled());
  Tensor d = x.detach();
  CHECK(!d.requires_grad());
  CHECK(d.storage() == x.storage());
  CHECK(!mul(d, 2.0).requires_grad());
  CHECK(mul(x, 2.0).requires_grad());
  CHECK_THROWS_WITH_ALL(sum(d).backward(), "does not require grad");
  CHECK_THROWS_WITH_ALL(mul(x, 2.0).backward(), "non-scalar", "[3]");
  CHECK_THROWS_WITH_ALL(from_vector<int64_t>({1}, {1}).set_requires_grad(), "floating");
}

TEST_CASE("grad() returns gradients without touching .grad, and supports double backward") {
  Tensor x = from_vector<double>({1.5}, {1}).set_requires_grad();
  Tensor y = sum(pow(x, 3.0));
  std::vector<Tensor> g = grad(y, {x}, Tensor(), /*retain_graph=*/true, /*create_graph=*/true);
  CHECK(g[0].item() == doctest::Approx(3 * 1.5 * 1.5));
  CHECK(!x.grad().defined());
  std::vector<Tensor> gg = grad(sum(g[0]), {x});
  CHECK(gg[0].item() == doctest::Approx(6 * 1.5));
}

TEST_CASE("grad() runs only the nodes that reach the wanted tensors") {
  // y = exp(h), h = 2x: grad(y, {h}) must neither run nor free h's own node, so that a backward
  // from h still works afterwards (a grad() nested in another backward relies on it).
  Tensor x = from_vector<double>({0.5, -1.0}, {2}).set_requires_grad();
  Tensor h = mul(x, 2.0);
  std::vector<Tensor> gh = grad(sum(exp(h)), {h});  // retain_graph = false
  CHECK(gh[0].to_vector<double>()[0] == doctest::Approx(std::exp(1.0)));
  CHECK(!x.grad().defined());  // nothing reached the leaf
  sum(h).backward();           // h's node is intact
  CHECK(x.grad().to_vector<double>()[1] == doctest::Approx(2.0));
}

TEST_CASE("gradcheck catches a wrong backward rule") {
  // A deliberately broken op: forward x², backward claims 3x.
  auto broken = [](const std::vector<Tensor>& in) {
    Tensor out = square(in[0].detach());
    Tensor x = in[0];
    return record("broken_square", out, {x}, [x](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {mul(g, mul(x, 3.0))};
    });
  };
  Tensor x = rand_leaf({3, 2}, 5);
  CHECK_FALSE(gradcheck(broken, {x}).empty());
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return square(in[0]); }, {x}).empty());
}
