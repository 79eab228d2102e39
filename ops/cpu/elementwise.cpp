#include "ops/cpu/elementwise.h"

#include <Eigen/Core>
#include <algorithm>
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

// SwiGLU over contiguous arrays with Eigen's vectorised exp (std::exp is a scalar libm call here:
// it only vectorises under -ffast-math). Chunks of kSwigluChunk elements stay in L1 while the few
// array expressions below pass over them; chunks are independent, so they are split over threads.
constexpr int64_t kSwigluChunk = 1024;
template <class T>
using ChunkArr = Eigen::Array<T, Eigen::Dynamic, 1, Eigen::ColMajor, kSwigluChunk, 1>;  // on the stack

// out = silu(g)·u = g·u / (1 + e^−g)
template <class T>
void swiglu_contiguous(const T* g, const T* u, T* out, int64_t n) {
  const int64_t chunks = (n + kSwigluChunk - 1) / kSwigluChunk;
#pragma omp parallel for if (n >= kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kSwigluChunk, len = std::min(kSwigluChunk, n - i0);
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    Eigen::Map<const Arr> G(g + i0, len), U(u + i0, len);
    Eigen::Map<Arr>(out + i0, len) = G * U / (T(1) + (-G).exp());
  }
}

// With s = sigmoid(g): d_up = d·g·s, d_gate = d·u·(s + g·s·(1 − s)).
template <class T>
void swiglu_backward_contiguous(const T* g, const T* u, const T* d, T* d_gate, T* d_up, int64_t n) {
  const int64_t chunks = (n + kSwigluChunk - 1) / kSwigluChunk;
#pragma omp parallel for if (n >= kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kSwigluChunk, len = std::min(kSwigluChunk, n - i0);
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    Eigen::Map<const Arr> G(g + i0, len), U(u + i0, len), D(d + i0, len);
    ChunkArr<T> sig = T(1) / (T(1) + (-G).exp());
    ChunkArr<T> silu = G * sig;
    Eigen::Map<Arr>(d_up + i0, len) = D * silu;
    Eigen::Map<Arr>(d_gate + i0, len) = D * U * (sig + silu * (T(1) - sig));
  }
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
        case BinaryOp::swiglu:
          if (a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() && b.shape() == out.shape())
            return swiglu_contiguous<T>(a.data<T>(), b.data<T>(), out.data<T>(), out.numel());
          return map2<T, T>(a, b, out, [](T g, T u) { return g * sigmoid_of(g) * u; });
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
    swiglu_backward_contiguous<T>(gate.data<T>(), up.data<T>(), g.data<T>(), g_gate.data<T>(), g_up.data<T>(),
                                  gate.numel());
  });
}

}  // namespace remoe::cpu
