#include "ops/cpu/elementwise.h"

#include <cmath>

#include "core/strided.h"

namespace remoe::cpu {
namespace {

// out[i] = f(x[i]) over any strides; contiguous inputs take the vectorisable fast path.
template <class TOut, class TIn, class F>
void map1(const Tensor& x, const Tensor& out, F f) {
  const TIn* xp = static_cast<const TIn*>(x.storage()->data()) + x.offset();
  TOut* op = out.data<TOut>();
  const int64_t n = out.numel();
  if (x.is_contiguous() && x.shape() == out.shape()) {
#pragma omp parallel for simd if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) op[i] = f(xp[i]);
    return;
  }
  Shape xs = x.strides(), os = out.strides();
  while (xs.size() < os.size()) xs.insert(xs.begin(), 0);
  for_each_strided<2>(out.shape(), {os, xs}, [&](const std::array<int64_t, 2>& o) { op[o[0]] = f(xp[o[1]]); });
}

// Right-aligns t's strides to the output's rank; broadcast axes (size 1 against larger) get stride 0.
Shape broadcast_strides(const Tensor& t, const Shape& out_shape) {
  Shape st(out_shape.size(), 0);
  size_t lead = out_shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

template <class TOut, class TIn, class F>
void map2(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  const TIn* ap = static_cast<const TIn*>(a.storage()->data()) + a.offset();
  const TIn* bp = static_cast<const TIn*>(b.storage()->data()) + b.offset();
  TOut* op = out.data<TOut>();
  const int64_t n = out.numel();
  if (a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() && b.shape() == out.shape()) {
#pragma omp parallel for simd if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) op[i] = f(ap[i], bp[i]);
    return;
  }
  if (a.is_contiguous() && a.shape() == out.shape() && b.numel() == 1) {  // tensor ∘ scalar tensor
    const TIn s = bp[0];
#pragma omp parallel for simd if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) op[i] = f(ap[i], s);
    return;
  }
  for_each_strided<3>(out.shape(), {out.strides(), broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())},
                      [&](const std::array<int64_t, 3>& o) { op[o[0]] = f(ap[o[1]], bp[o[2]]); });
}

template <class T>
inline T sigmoid_of(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, double scalar, const Tensor& out) {
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T s = static_cast<T>(scalar);
    switch (op) {
      case UnaryOp::neg: return map1<T, T>(x, out, [](T v) { return T(-v); });
      case UnaryOp::abs: return map1<T, T>(x, out, [](T v) { return v < T(0) ? T(-v) : v; });
      case UnaryOp::square: return map1<T, T>(x, out, [](T v) { return T(v * v); });
      case UnaryOp::add_scalar: return map1<T, T>(x, out, [s](T v) { return T(v + s); });
      case UnaryOp::mul_scalar: return map1<T, T>(x, out, [s](T v) { return T(v * s); });
      case UnaryOp::rsub_scalar: return map1<T, T>(x, out, [s](T v) { return T(s - v); });
      case UnaryOp::relu: return map1<T, T>(x, out, [](T v) { return v > T(0) ? v : T(0); });
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case UnaryOp::exp: return map1<T, T>(x, out, [](T v) { return std::exp(v); });
        case UnaryOp::log: return map1<T, T>(x, out, [](T v) { return std::log(v); });
        case UnaryOp::sqrt: return map1<T, T>(x, out, [](T v) { return std::sqrt(v); });
        case UnaryOp::rsqrt: return map1<T, T>(x, out, [](T v) { return T(1) / std::sqrt(v); });
        case UnaryOp::tanh: return map1<T, T>(x, out, [](T v) { return std::tanh(v); });
        case UnaryOp::sigmoid: return map1<T, T>(x, out, [](T v) { return sigmoid_of(v); });
        case UnaryOp::silu: return map1<T, T>(x, out, [](T v) { return v * sigmoid_of(v); });
        case UnaryOp::rdiv_scalar: return map1<T, T>(x, out, [s](T v) { return s / v; });
        case UnaryOp::pow_scalar: return map1<T, T>(x, out, [s](T v) { return std::pow(v, s); });
        default: break;
      }
    }
    fail("elementwise op on dtype ", dtype_name(x.dtype()), " is not supported (needs a floating tensor)");
  };
  dispatch_numeric(x.dtype(), "elementwise", run);
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case BinaryOp::add: return map2<T, T>(a, b, out, [](T x, T y) { return T(x + y); });
      case BinaryOp::sub: return map2<T, T>(a, b, out, [](T x, T y) { return T(x - y); });
      case BinaryOp::mul: return map2<T, T>(a, b, out, [](T x, T y) { return T(x * y); });
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case BinaryOp::div: return map2<T, T>(a, b, out, [](T x, T y) { return x / y; });
        case BinaryOp::pow: return map2<T, T>(a, b, out, [](T x, T y) { return std::pow(x, y); });
        case BinaryOp::swiglu: return map2<T, T>(a, b, out, [](T g, T u) { return g * sigmoid_of(g) * u; });
        default: break;
      }
    }
    fail("elementwise op on dtype ", dtype_name(a.dtype()), " is not supported (needs a floating tensor)");
  };
  dispatch_numeric(a.dtype(), "elementwise", run);
}

void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_numeric(a.dtype(), "compare", [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case CompareOp::eq: return map2<uint8_t, T>(a, b, out, [](T x, T y) { return uint8_t(x == y); });
      case CompareOp::ne: return map2<uint8_t, T>(a, b, out, [](T x, T y) { return uint8_t(x != y); });
      case CompareOp::lt: return map2<uint8_t, T>(a, b, out, [](T x, T y) { return uint8_t(x < y); });
      case CompareOp::le: return map2<uint8_t, T>(a, b, out, [](T x, T y) { return uint8_t(x <= y); });
      case CompareOp::gt: return map2<uint8_t, T>(a, b, out, [](T x, T y) { return uint8_t(x > y); });
      case CompareOp::ge: return map2<uint8_t, T>(a, b, out, [](T x, T y) { return uint8_t(x >= y); });
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_numeric(a.dtype(), "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const uint8_t* cp = static_cast<const uint8_t*>(cond.storage()->data()) + cond.offset();
    const T* ap = static_cast<const T*>(a.storage()->data()) + a.offset();
    const T* bp = static_cast<const T*>(b.storage()->data()) + b.offset();
    T* op = out.data<T>();
    const Shape& sh = out.shape();
    for_each_strided<4>(sh, {out.strides(), broadcast_strides(cond, sh), broadcast_strides(a, sh), broadcast_strides(b, sh)},
                        [&](const std::array<int64_t, 4>& o) { op[o[0]] = cp[o[1]] ? ap[o[2]] : bp[o[3]]; });
  });
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& g, const Tensor& g_gate, const Tensor& g_up) {
  dispatch_float(gate.dtype(), "swiglu backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gp = gate.data<T>();
    const T* up_ = up.data<T>();
    const T* gr = g.data<T>();
    T* gg = g_gate.data<T>();
    T* gu = g_up.data<T>();
    const int64_t n = gate.numel();
#pragma omp parallel for simd if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      T s = sigmoid_of(gp[i]);
      T silu = gp[i] * s;
      gu[i] = gr[i] * silu;
      gg[i] = gr[i] * up_[i] * (s + silu * (T(1) - s));  // d silu/dx = s + x·s·(1−s)
    }
  });
}

}  // namespace remoe::cpu
