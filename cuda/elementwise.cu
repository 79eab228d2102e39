#include <atomic>
#include <type_traits>

#include "cuda/elementwise.h"
#include "cuda/kernel_utils.h"

namespace remoe::cuda {

namespace detail {
namespace {
std::atomic<bool> g_force_64bit{false};
}
void set_force_64bit_indexing(bool on) { g_force_64bit.store(on); }
bool force_64bit_indexing() { return g_force_64bit.load(std::memory_order_relaxed); }
}  // namespace detail

namespace {

// f32 and f64 overloads of CUDA's math functions (the accurate versions: no fast-math). Qualified
// with :: so that remoe's own exp(Tensor) etc. can never hide them.
__device__ __forceinline__ float d_exp(float v) { return ::expf(v); }
__device__ __forceinline__ double d_exp(double v) { return ::exp(v); }
__device__ __forceinline__ float d_log(float v) { return ::logf(v); }
__device__ __forceinline__ double d_log(double v) { return ::log(v); }
__device__ __forceinline__ float d_sqrt(float v) { return ::sqrtf(v); }
__device__ __forceinline__ double d_sqrt(double v) { return ::sqrt(v); }
__device__ __forceinline__ float d_tanh(float v) { return ::tanhf(v); }
__device__ __forceinline__ double d_tanh(double v) { return ::tanh(v); }
__device__ __forceinline__ float d_pow(float x, float y) { return ::powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return ::pow(x, y); }

template <class C>
__device__ __forceinline__ C d_sigmoid(C v) {
  return C(1) / (C(1) + d_exp(-v));
}

// ---- per-element operations (C is the compute type) ----

template <class C>
struct UnaryFn {
  UnaryOp op;
  C s;
  __device__ C operator()(C v) const {
    switch (op) {  // the same value of op for every thread: a uniform branch
      case UnaryOp::neg: return C(-v);
      case UnaryOp::abs:
        if constexpr (std::is_unsigned_v<C>) return v;
        else return v < C(0) ? C(-v) : v;
      case UnaryOp::square: return C(v * v);
      case UnaryOp::add_scalar: return C(v + s);
      case UnaryOp::mul_scalar: return C(v * s);
      case UnaryOp::rsub_scalar: return C(s - v);
      case UnaryOp::relu: return v > C(0) ? v : C(0);
      default: break;
    }
    if constexpr (std::is_floating_point_v<C>) {
      switch (op) {
        case UnaryOp::exp: return d_exp(v);
        case UnaryOp::log: return d_log(v);
        case UnaryOp::sqrt: return d_sqrt(v);
        case UnaryOp::rsqrt: return C(1) / d_sqrt(v);  // as the CPU: correctly rounded sqrt and divide
        case UnaryOp::tanh: return d_tanh(v);
        case UnaryOp::sigmoid: return d_sigmoid(v);
        case UnaryOp::silu: return v * d_sigmoid(v);
        case UnaryOp::rdiv_scalar: return s / v;
        case UnaryOp::pow_scalar: return d_pow(v, s);
        default: break;
      }
    }
    return v;  // unreachable: the host rejects ops the dtype does not support
  }
};

template <class C>
struct BinaryFn {
  BinaryOp op;
  __device__ C operator()(C x, C y) const {
    switch (op) {
      case BinaryOp::add: return C(x + y);
      case BinaryOp::sub: return C(x - y);
      case BinaryOp::mul: return C(x * y);
      default: break;
    }
    if constexpr (std::is_floating_point_v<C>) {
      switch (op) {
        case BinaryOp::div: return x / y;
        case BinaryOp::pow: return d_pow(x, y);
        case BinaryOp::swiglu: return x * d_sigmoid(x) * y;
        default: break;
      }
    }
    return x;  // unreachable
  }
};

template <class C>
struct CompareFn {
  CompareOp op;
  __device__ uint8_t operator()(C x, C y) const {
    switch (op) {
      case CompareOp::eq: return x == y;
      case CompareOp::ne: return x != y;
      case CompareOp::lt: return x < y;
      case CompareOp::le: return x <= y;
      case CompareOp::gt: return x > y;
      case CompareOp::ge: return x >= y;
    }
    return 0;
  }
};

// ---- element functors: f(i) contiguous, f(off) strided (off[0] is the output) ----

template <class TOut, class TIn, class Fn>
struct Map1 {
  TOut* out;
  const TIn* x;
  Fn fn;
  __device__ void operator()(int64_t i) const { out[i] = convert<TOut>(fn(convert<compute_t<TIn>>(x[i]))); }
  __device__ void operator()(const int64_t (&o)[2]) const {
    out[o[0]] = convert<TOut>(fn(convert<compute_t<TIn>>(x[o[1]])));
  }
};

template <class TOut, class TIn, class Fn>
struct Map2 {
  TOut* out;
  const TIn* a;
  const TIn* b;
  Fn fn;
  __device__ void operator()(int64_t i) const {
    out[i] = convert<TOut>(fn(convert<compute_t<TIn>>(a[i]), convert<compute_t<TIn>>(b[i])));
  }
  __device__ void operator()(const int64_t (&o)[3]) const {
    out[o[0]] = convert<TOut>(fn(convert<compute_t<TIn>>(a[o[1]]), convert<compute_t<TIn>>(b[o[2]])));
  }
};

template <class T>
struct WhereOp {
  T* out;
  const uint8_t* cond;
  const T* a;
  const T* b;
  __device__ void operator()(int64_t i) const { out[i] = cond[i] ? a[i] : b[i]; }
  __device__ void operator()(const int64_t (&o)[4]) const { out[o[0]] = cond[o[1]] ? a[o[2]] : b[o[3]]; }
};

template <class T>
struct SwigluBackward {
  const T* gate;
  const T* up;
  const T* g;
  T* g_gate;
  T* g_up;
  __device__ void operator()(int64_t i) const {
    T x = gate[i], s = d_sigmoid(x), silu = x * s;
    g_up[i] = g[i] * silu;
    g_gate[i] = g[i] * up[i] * (s + silu * (T(1) - s));  // d silu/dx = s + x·s·(1−s)
  }
};

template <class T>
struct FillOp {
  T* out;
  T v;
  __device__ void operator()(int64_t i) const { out[i] = v; }
  __device__ void operator()(const int64_t (&o)[1]) const { out[o[0]] = v; }
};

// Same-dtype copies move raw bits: one kernel per element size serves all dtypes of that size.
template <class B>
struct CopyBits {
  B* dst;
  const B* src;
  __device__ void operator()(int64_t i) const { dst[i] = src[i]; }
  __device__ void operator()(const int64_t (&o)[2]) const { dst[o[0]] = src[o[1]]; }
};

template <class D, class S>
struct ConvertOp {
  D* dst;
  const S* src;
  __device__ void operator()(int64_t i) const { dst[i] = convert<D>(src[i]); }
};

bool unary_runs_on_integers(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: case UnaryOp::abs: case UnaryOp::square: case UnaryOp::add_scalar:
    case UnaryOp::mul_scalar: case UnaryOp::rsub_scalar: case UnaryOp::relu: return true;
    default: return false;
  }
}

bool binary_runs_on_integers(BinaryOp op) {
  return op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul;
}

[[noreturn]] void fail_not_floating(DType t) {
  fail("elementwise op on dtype ", dtype_name(t), " is not supported (needs a floating tensor)");
}

void check_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  REMOE_CHECK(t.dtype() == want, op, ": ", what, " has dtype ", dtype_name(t.dtype()), " ",
              shape_str(t.shape()), ", expected ", dtype_name(want));
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, double scalar, const Tensor& out) {
  const char* name = "cuda unary";
  int device = cuda_device_of(name, {&x, &out});
  check_dtype(name, "output", out, x.dtype());
  Shape xs = broadcast_strides_to(name, x, out.shape());
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    if constexpr (!std::is_floating_point_v<C>) {
      if (!unary_runs_on_integers(op)) fail_not_floating(x.dtype());
    }
    Map1<T, T, UnaryFn<C>> f{typed_mut_ptr<T>(out), typed_ptr<T>(x), UnaryFn<C>{op, static_cast<C>(scalar)}};
    launch_elementwise<2>(name, device, out.shape(), {out.strides(), xs}, f);
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* name = "cuda binary";
  int device = cuda_device_of(name, {&a, &b, &out});
  check_dtype(name, "second operand", b, a.dtype());
  check_dtype(name, "output", out, a.dtype());
  Shape as = broadcast_strides_to(name, a, out.shape()), bs = broadcast_strides_to(name, b, out.shape());
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    if constexpr (!std::is_floating_point_v<C>) {
      if (!binary_runs_on_integers(op)) fail_not_floating(a.dtype());
    }
    Map2<T, T, BinaryFn<C>> f{typed_mut_ptr<T>(out), typed_ptr<T>(a), typed_ptr<T>(b), BinaryFn<C>{op}};
    launch_elementwise<3>(name, device, out.shape(), {out.strides(), as, bs}, f);
  });
}

void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* name = "cuda compare";
  int device = cuda_device_of(name, {&a, &b, &out});
  check_dtype(name, "second operand", b, a.dtype());
  check_dtype(name, "output", out, DType::u8);
  Shape as = broadcast_strides_to(name, a, out.shape()), bs = broadcast_strides_to(name, b, out.shape());
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Map2<uint8_t, T, CompareFn<compute_t<T>>> f{typed_mut_ptr<uint8_t>(out), typed_ptr<T>(a), typed_ptr<T>(b),
                                                CompareFn<compute_t<T>>{op}};
    launch_elementwise<3>(name, device, out.shape(), {out.strides(), as, bs}, f);
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* name = "cuda where";
  int device = cuda_device_of(name, {&cond, &a, &b, &out});
  check_dtype(name, "condition", cond, DType::u8);
  check_dtype(name, "second operand", b, a.dtype());
  check_dtype(name, "output", out, a.dtype());
  const Shape& sh = out.shape();
  Shape cs = broadcast_strides_to(name, cond, sh), as = broadcast_strides_to(name, a, sh),
        bs = broadcast_strides_to(name, b, sh);
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    WhereOp<T> f{typed_mut_ptr<T>(out), typed_ptr<uint8_t>(cond), typed_ptr<T>(a), typed_ptr<T>(b)};
    launch_elementwise<4>(name, device, sh, {out.strides(), cs, as, bs}, f);
  });
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& g, const Tensor& g_gate, const Tensor& g_up) {
  const char* name = "cuda swiglu backward";
  int device = cuda_device_of(name, {&gate, &up, &g, &g_gate, &g_up});
  for (const Tensor* t : {&up, &g, &g_gate, &g_up}) {
    REMOE_CHECK(t->shape() == gate.shape(), name, ": shapes ", shape_str(gate.shape()), " and ",
                shape_str(t->shape()), " differ");
    check_dtype(name, "operand", *t, gate.dtype());
  }
  for (const Tensor* t : {&gate, &up, &g, &g_gate, &g_up})
    REMOE_CHECK(t->is_contiguous(), name, ": operand of shape ", shape_str(t->shape()), " must be contiguous");
  dispatch_float(gate.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_contiguous(device, gate.numel(),
                      SwigluBackward<T>{typed_ptr<T>(gate), typed_ptr<T>(up), typed_ptr<T>(g),
                                        typed_mut_ptr<T>(g_gate), typed_mut_ptr<T>(g_up)});
  });
}

void fill(const Tensor& out, double value) {
  const char* name = "cuda fill";
  int device = cuda_device_of(name, {&out});
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_elementwise<1>(name, device, out.shape(), {out.strides()}, FillOp<T>{typed_mut_ptr<T>(out), convert<T>(value)});
  });
}

namespace {

template <class B>
void copy_bits(int device, const Tensor& dst, const Tensor& src) {
  launch_elementwise<2>("cuda copy", device, dst.shape(), {dst.strides(), src.strides()},
                        CopyBits<B>{typed_mut_ptr<B>(dst), typed_ptr<B>(src)});
}

}  // namespace

void copy(const Tensor& dst, const Tensor& src) {
  const char* name = "cuda copy";
  int device = cuda_device_of(name, {&dst, &src});
  REMOE_CHECK(dst.shape() == src.shape(), name, ": destination shape ", shape_str(dst.shape()),
              " differs from source shape ", shape_str(src.shape()));
  if (dst.dtype() == src.dtype()) {
    switch (dst.element_size()) {
      case 1: return copy_bits<uint8_t>(device, dst, src);
      case 2: return copy_bits<uint16_t>(device, dst, src);
      case 4: return copy_bits<uint32_t>(device, dst, src);
      case 8: return copy_bits<uint64_t>(device, dst, src);
      default: fail(name, ": unexpected element size ", dst.element_size());
    }
  }
  // Converting copies: the conversion kernel is contiguous-only (36 dtype pairs); strided sides go
  // through a contiguous temporary of their own dtype. Temporaries are released at once: their
  // blocks are reused only by work queued later on the same stream.
  if (!src.is_contiguous()) {
    Tensor tmp = empty(src.shape(), {src.dtype(), src.device()});
    copy(tmp, src);
    return copy(dst, tmp);
  }
  if (!dst.is_contiguous()) {
    Tensor tmp = empty(dst.shape(), {dst.dtype(), dst.device()});
    copy(tmp, src);
    return copy(dst, tmp);
  }
  visit_dtype(dst.dtype(), [&](auto dt) {
    using D = typename decltype(dt)::type;
    visit_dtype(src.dtype(), [&](auto st) {
      using S = typename decltype(st)::type;
      launch_contiguous(device, dst.numel(), ConvertOp<D, S>{typed_mut_ptr<D>(dst), typed_ptr<S>(src)});
    });
  });
}

}  // namespace remoe::cuda
