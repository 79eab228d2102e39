// Elementwise ops: forward through the family's device seam (ops/elementwise_kernels.h: the CPU
// kernels of ops/cpu/elementwise, the CUDA ones where cuda/ is built), backward rules written with
// public ops. Broadcasting in the forward pass is undone in the backward pass by sum_to.
#include <cmath>

#include "ops/common.h"
#include "ops/composed_vjp.h"
#include "ops/cpu/elementwise.h"
#include "ops/elementwise_kernels.h"
#include "ops/ops.h"

namespace remoe {

KernelTable<ElementwiseKernels>& elementwise_kernels() {
  static KernelTable<ElementwiseKernels> table = [] {
    KernelTable<ElementwiseKernels> t("elementwise");
    t.set(DeviceType::CPU, {cpu::unary, cpu::binary, cpu::compare, cpu::where, cpu::swiglu_backward});
    return t;
  }();
  return table;
}

namespace {

Tensor unary_forward(const char* name, UnaryOp op, const Tensor& x, double scalar = 0) {
  Device dev = common_device(name, {x});
  const ElementwiseKernels& k = elementwise_kernels().get(name, dev);
  Tensor out = empty(x.shape(), {x.dtype(), dev});
  k.unary(op, x, scalar, out);
  return out;
}

Tensor binary_forward(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  Device dev = common_device(name, {a, b});
  check_same_dtype(name, a, b);
  const ElementwiseKernels& k = elementwise_kernels().get(name, dev);
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), {a.dtype(), dev});
  k.binary(op, a, b, out);
  return out;
}

Tensor compare_forward(const char* name, CompareOp op, const Tensor& a, const Tensor& b) {
  Device dev = common_device(name, {a, b});
  check_same_dtype(name, a, b);
  const ElementwiseKernels& k = elementwise_kernels().get(name, dev);
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), {DType::u8, dev});
  k.compare(op, a, b, out);
  return out;
}

Tensor scalar_like(double s, const Tensor& t) { return scalar_tensor(s, {t.dtype(), t.device()}); }

// The mask x > 0 as x's dtype (1 or 0).
Tensor positive_mask(const Tensor& x) { return cast(gt(x, 0.0), x.dtype()); }

}  // namespace

// ---- binary ----
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("add", BinaryOp::add, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record("add", out, {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    return {need[0] ? sum_to(g, sa) : Tensor(), need[1] ? sum_to(g, sb) : Tensor()};
  });
}

namespace {
// The backward engine sums the gradients that meet at a tensor with this add (autograd/node.h:
// autograd is below the op layer and cannot call it itself). Registered when this file is linked:
// every program that records a graph does, since the backward rules are written with add and mul.
[[maybe_unused]] const bool g_gradient_sum_registered = [] {
  set_gradient_sum(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&add));
  return true;
}();
}  // namespace

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("sub", BinaryOp::sub, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record("sub", out, {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    return {need[0] ? sum_to(g, sa) : Tensor(), need[1] ? sum_to(neg(g), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("mul", BinaryOp::mul, a, b);
  return record("mul", out, {a, b}, [a, b](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    return {need[0] ? sum_to(mul(g, b), a.shape()) : Tensor(), need[1] ? sum_to(mul(g, a), b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("div", BinaryOp::div, a, b);
  Tensor y = out.detach();
  return record("div", out, {a, b}, [a, b, y](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    Tensor gb;
    if (need[1]) gb = sum_to(neg(div(mul(g, saved_output(y, [&] { return div(a, b); })), b)), b.shape());  // d(a/b)/db = −(a/b)/b
    return {need[0] ? sum_to(div(g, b), a.shape()) : Tensor(), gb};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("pow", BinaryOp::pow, a, b);
  Tensor y = out.detach();
  return record("pow", out, {a, b}, [a, b, y](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    Tensor ga, gb;
    if (need[0]) ga = sum_to(mul(g, mul(b, pow(a, sub(b, 1.0)))), a.shape());  // b·a^(b−1)
    if (need[1]) gb = sum_to(mul(g, mul(saved_output(y, [&] { return pow(a, b); }), log(a))), b.shape());               // a^b·ln a
    return {ga, gb};
  });
}

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  REMOE_CHECK(gate.shape() == up.shape(), "swiglu: gate shape ", shape_str(gate.shape()), " differs from up shape ",
              shape_str(up.shape()));
  Tensor out = binary_forward("swiglu", BinaryOp::swiglu, gate, up);
  return record("swiglu", out, {gate, up}, [gate, up](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    if (grad_enabled())  // create_graph: a recorded gradient, through the composed formula
      return composed_vjp([](const std::vector<Tensor>& in) { return composed::swiglu(in[0], in[1]); }, {gate, up}, g,
                          need);
    Tensor gc = contiguous_data(gate), uc = contiguous_data(up), grc = contiguous_data(g);
    const ElementwiseKernels& k = elementwise_kernels().get("swiglu backward", g.device());
    Tensor g_gate = empty_like(gc), g_up = empty_like(uc);
    k.swiglu_backward(gc, uc, grc, g_gate, g_up);
    return {g_gate, g_up};
  });
}

// ---- scalar forms ----
Tensor add(const Tensor& a, double s) {
  return record("add_scalar", unary_forward("add", UnaryOp::add_scalar, a, s), {a},
                [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
}
Tensor sub(const Tensor& a, double s) { return add(a, -s); }
Tensor rsub(double s, const Tensor& a) {
  return record("rsub_scalar", unary_forward("rsub", UnaryOp::rsub_scalar, a, s), {a},
                [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {neg(g)}; });
}
Tensor mul(const Tensor& a, double s) {
  return record("mul_scalar", unary_forward("mul", UnaryOp::mul_scalar, a, s), {a},
                [s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {mul(g, s)}; });
}
Tensor div(const Tensor& a, double s) {
  REMOE_CHECK(is_floating(a.dtype()), "div: needs a floating tensor, got ", dtype_name(a.dtype()));
  return mul(a, 1.0 / s);
}
Tensor rdiv(double s, const Tensor& a) {
  Tensor out = unary_forward("rdiv", UnaryOp::rdiv_scalar, a, s);
  Tensor y = out.detach();
  return record("rdiv_scalar", out, {a}, [a, y, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {neg(div(mul(g, saved_output(y, [&] { return rdiv(s, a); })), a))};  // d(s/a)/da = −(s/a)/a
  });
}
Tensor pow(const Tensor& a, double e) {
  return record("pow_scalar", unary_forward("pow", UnaryOp::pow_scalar, a, e), {a},
                [a, e](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {mul(g, mul(pow(a, e - 1.0), e))};
                });
}

// ---- unary ----
Tensor neg(const Tensor& a) {
  return record("neg", unary_forward("neg", UnaryOp::neg, a), {a},
                [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {neg(g)}; });
}
Tensor exp(const Tensor& a) {
  Tensor out = unary_forward("exp", UnaryOp::exp, a);
  Tensor y = out.detach();
  return record("exp", out, {a}, [a, y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {mul(g, saved_output(y, [&] { return exp(a); }))};
  });
}
Tensor log(const Tensor& a) {
  return record("log", unary_forward("log", UnaryOp::log, a), {a},
                [a](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {div(g, a)}; });
}
Tensor sqrt(const Tensor& a) {
  Tensor out = unary_forward("sqrt", UnaryOp::sqrt, a);
  Tensor y = out.detach();
  return record("sqrt", out, {a}, [a, y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {div(mul(g, 0.5), saved_output(y, [&] { return sqrt(a); }))};
  });
}
Tensor rsqrt(const Tensor& a) {
  Tensor out = unary_forward("rsqrt", UnaryOp::rsqrt, a);
  Tensor y = out.detach();
  return record("rsqrt", out, {a}, [a, y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {mul(g, mul(pow(saved_output(y, [&] { return rsqrt(a); }), 3.0), -0.5))};  // d a^(−1/2) = −½ a^(−3/2)
  });
}
Tensor tanh(const Tensor& a) {
  Tensor out = unary_forward("tanh", UnaryOp::tanh, a);
  Tensor y = out.detach();
  return record("tanh", out, {a}, [a, y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {mul(g, rsub(1.0, square(saved_output(y, [&] { return tanh(a); }))))};
  });
}
Tensor sigmoid(const Tensor& a) {
  Tensor out = unary_forward("sigmoid", UnaryOp::sigmoid, a);
  Tensor y = out.detach();
  return record("sigmoid", out, {a}, [a, y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor s = saved_output(y, [&] { return sigmoid(a); });
    return {mul(g, mul(s, rsub(1.0, s)))};
  });
}
Tensor silu(const Tensor& a) {
  return record("silu", unary_forward("silu", UnaryOp::silu, a), {a},
                [a](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  Tensor s = sigmoid(a);
                  return {mul(g, mul(s, add(mul(a, rsub(1.0, s)), 1.0)))};  // s·(1 + a·(1 − s))
                });
}
Tensor relu(const Tensor& a) {
  return record("relu", unary_forward("relu", UnaryOp::relu, a), {a},
                [a](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {mul(g, positive_mask(a))}; });
}
Tensor abs(const Tensor& a) {
  return record("abs", unary_forward("abs", UnaryOp::abs, a), {a},
                [a](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {mul(g, sub(positive_mask(a), positive_mask(neg(a))))};  // sign(a)
                });
}
Tensor square(const Tensor& a) {
  return record("square", unary_forward("square", UnaryOp::square, a), {a},
                [a](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {mul(g, mul(a, 2.0))}; });
}

// ---- comparisons, where, cast, clone ----
Tensor eq(const Tensor& a, const Tensor& b) { return compare_forward("eq", CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_forward("ne", CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_forward("lt", CompareOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_forward("le", CompareOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_forward("gt", CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_forward("ge", CompareOp::ge, a, b); }
Tensor eq(const Tensor& a, double s) { return eq(a, scalar_like(s, a)); }
Tensor ne(const Tensor& a, double s) { return ne(a, scalar_like(s, a)); }
Tensor lt(const Tensor& a, double s) { return lt(a, scalar_like(s, a)); }
Tensor le(const Tensor& a, double s) { return le(a, scalar_like(s, a)); }
Tensor gt(const Tensor& a, double s) { return gt(a, scalar_like(s, a)); }
Tensor ge(const Tensor& a, double s) { return ge(a, scalar_like(s, a)); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const char* name = "where";
  Device dev = common_device(name, {cond, a, b});
  REMOE_CHECK(cond.dtype() == DType::u8, "where: condition must be u8 (a comparison's result), got ",
              dtype_name(cond.dtype()));
  check_same_dtype(name, a, b);
  const ElementwiseKernels& k = elementwise_kernels().get(name, dev);
  Shape sh = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), name), b.shape(), name);
  Tensor out = empty(sh, {a.dtype(), dev});
  k.where(cond, a, b, out);
  Shape sa = a.shape(), sb = b.shape();
  return record(name, out, {a, b}, [cond, sa, sb](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    Tensor zero = scalar_like(0.0, g);
    return {need[0] ? sum_to(where(cond, g, zero), sa) : Tensor(), need[1] ? sum_to(where(cond, zero, g), sb) : Tensor()};
  });
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  REMOE_CHECK(!x.requires_grad() || is_floating(dtype), "cast: a tensor that requires grad can only be cast to a "
              "floating dtype, not ", dtype_name(dtype));
  DType from = x.dtype();
  return record("cast", x.to(dtype), {x},
                [from](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {cast(g, from)}; });
}

Tensor clone(const Tensor& x) {
  Tensor out = empty(x.shape(), {x.dtype(), x.device()});
  copy_(out, x);
  return record("clone", out, {x}, [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
}

}  // namespace remoe
