// Second derivatives through the fused ops (rms_norm, swiglu, attention, cross_entropy,
// grouped_swiglu) and through slice, whose adjoint is an op of its own. The fused backward kernels
// record nothing, so under create_graph they take the gradient through the composed formula
// (ops/composed_vjp.h). Checked by finite differences of a
// first derivative: gradcheck of s(x) = Σ r · ∂⟨c, f(x)⟩/∂x, whose gradient is a second derivative.
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// Grad mode on for a scope, also where gradcheck evaluates f under NoGradGuard.
struct GradOn {
  bool prev = grad_enabled();
  GradOn() { set_grad_enabled(true); }
  ~GradOn() { set_grad_enabled(prev); }
};

// s(inputs) = Σ_i Σ r_i · ∂⟨c, f(1.5·inputs)⟩/∂inputs_i over the inputs that require grad. The
// factor 1.5 makes the fused op's inputs intermediate tensors, so the nested grad() inside its
// backward must leave the nodes below it to the outer backward.
TensorFn first_derivative_probe(const TensorFn& f, uint64_t seed) {
  return [f, seed](const std::vector<Tensor>& inputs) {
    GradOn on;
    std::vector<Tensor> scaled, wrt;
    for (const Tensor& x : inputs) {
      scaled.push_back(x.requires_grad() ? mul(x, 1.5) : x);
      if (x.requires_grad()) wrt.push_back(x);
    }
    Tensor y = f(scaled);
    Generator gen(seed);
    Tensor c = randn(y.shape(), gen, {DType::f64});
    std::vector<Tensor> g = grad(sum(mul(y, c)), wrt, Tensor(), /*retain_graph=*/false, /*create_graph=*/true);
    Tensor s = scalar_tensor(0.0, {DType::f64});
    for (size_t i = 0; i < g.size(); ++i) {
      if (!g[i].defined()) continue;  // an input the output does not depend on (an empty group)
      s = add(s, sum(mul(g[i], randn(g[i].shape(), gen, {DType::f64}))));
    }
    return s;
  };
}

GradcheckOptions second_order() {
  GradcheckOptions o;
  o.eps = 1e-5, o.atol = 1e-6, o.rtol = 1e-4;
  return o;
}

}  // namespace

TEST_CASE("double backward: rms_norm, odd sizes") {
  for (const Shape& shape : {Shape{3, 5}, Shape{2, 3, 7}}) {
    Tensor x = rand_leaf(shape, 1), w = rand_leaf({shape.back()}, 2, 0.5, 1.5);
    auto f = [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 1e-5); };
    CHECK_GRADCHECK(first_derivative_probe(f, 3), {x, w}, second_order());
  }
}

TEST_CASE("double backward: swiglu") {
  Tensor gate = rand_leaf({3, 5}, 4), up = rand_leaf({3, 5}, 5);
  auto f = [](const std::vector<Tensor>& in) { return swiglu(in[0], in[1]); };
  CHECK_GRADCHECK(first_derivative_probe(f, 6), {gate, up}, second_order());
}

TEST_CASE("double backward: causal GQA attention") {
  Tensor q = rand_leaf({1, 3, 2, 4}, 7), k = rand_leaf({1, 3, 1, 4}, 8), v = rand_leaf({1, 3, 1, 4}, 9);
  for (bool causal : {true, false}) {
    auto f = [causal](const std::vector<Tensor>& in) { return attention(in[0], in[1], in[2], causal); };
    CHECK_GRADCHECK(first_derivative_probe(f, 10), {q, k, v}, second_order());
  }
}

TEST_CASE("double backward: cross_entropy with an ignored row") {
  Tensor logits = rand_leaf({4, 5}, 11);
  Tensor targets = from_vector<int64_t>({1, -100, 4, 0}, {4});
  auto f = [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); };
  CHECK_GRADCHECK(first_derivative_probe(f, 12), {logits, targets}, second_order());
}

TEST_CASE("double backward: grouped_swiglu with an empty group") {
  const std::vector<int64_t> rows{2, 0, 3};
  std::vector<Tensor> in{rand_leaf({5, 3}, 13)};
  for (int part = 0; part < 3; ++part)
    for (int e = 0; e < 3; ++e)
      in.push_back(part < 2 ? rand_leaf({3, 4}, 20 + uint64_t(part * 3 + e)) : rand_leaf({4, 3}, 30 + uint64_t(e)));
  auto f = [rows](const std::vector<Tensor>& t) {
    auto group = [&](int part) { return std::vector<Tensor>(t.begin() + 1 + part * 3, t.begin() + 4 + part * 3); };
    return grouped_swiglu(t[0], rows, group(0), group(1), group(2));
  };
  CHECK_GRADCHECK(first_derivative_probe(f, 14), in, second_order());
}

TEST_CASE("double backward: ops whose backward reads their own output") {
  // exp, sqrt, rsqrt, tanh, sigmoid, a / b, a^b, s / a, softmax, log_softmax keep their output for
  // the backward; under create_graph they recompute it as a recorded op (ops/common.h saved_output).
  Tensor a = rand_leaf({3, 5}, 19, 0.5, 2.0), b = rand_leaf({3, 5}, 20, 0.5, 2.0);
  const std::vector<std::pair<const char*, TensorFn>> cases{
      {"exp", [](const std::vector<Tensor>& in) { return exp(in[0]); }},
      {"sqrt", [](const std::vector<Tensor>& in) { return sqrt(in[0]); }},
      {"rsqrt", [](const std::vector<Tensor>& in) { return rsqrt(in[0]); }},
      {"tanh", [](const std::vector<Tensor>& in) { return tanh(in[0]); }},
      {"sigmoid", [](const std::vector<Tensor>& in) { return sigmoid(in[0]); }},
      {"div", [](const std::vector<Tensor>& in) { return div(in[0], in[1]); }},
      {"pow", [](const std::vector<Tensor>& in) { return pow(in[0], in[1]); }},
      {"rdiv", [](const std::vector<Tensor>& in) { return rdiv(2.0, in[0]); }},
      {"softmax", [](const std::vector<Tensor>& in) { return softmax(in[0], -1); }},
      {"log_softmax", [](const std::vector<Tensor>& in) { return log_softmax(in[0], 0); }},
  };
  for (const auto& [name, f] : cases) {
    INFO(std::string(name));
    CHECK_GRADCHECK(first_derivative_probe(f, 21), {a, b}, second_order());
  }
}

TEST_CASE("double backward: slice with a step (the slice inside composed grouped_swiglu)") {
  Tensor x = rand_leaf({7, 3}, 17);
  auto f = [](const std::vector<Tensor>& in) {
    Tensor part = slice(in[0], 0, 1, 6, 2);
    return mul(part, tanh(part));
  };
  CHECK_GRADCHECK(first_derivative_probe(f, 18), {x}, second_order());
}

TEST_CASE("double backward: the first backward still takes the fused kernel's gradient") {
  // Without create_graph the gradient comes from the kernel: it matches the composed one and has
  // no graph of its own.
  Tensor x = rand_leaf({3, 5}, 15), w = rand_leaf({5}, 16, 0.5, 1.5);
  std::vector<Tensor> fused = grad(sum(rms_norm(x, w, 1e-5)), {x, w});
  std::vector<Tensor> ref = grad(sum(composed::rms_norm(x, w, 1e-5)), {x, w});
  CHECK_FALSE(fused[0].requires_grad());
  CHECK_CLOSE(fused[0], ref[0], 1e-12, 1e-10);
  CHECK_CLOSE(fused[1], ref[1], 1e-12, 1e-10);
}
