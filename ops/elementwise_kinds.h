// The elementwise op kinds, shared by every device's kernels (ops/cpu/elementwise.h,
// cuda/elementwise.h): they belong to the op layer, not to one backend.
#pragma once

namespace remoe {

enum class UnaryOp {
  neg, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, relu, abs, square,
  add_scalar, mul_scalar, rsub_scalar, rdiv_scalar, pow_scalar,
};
enum class BinaryOp { add, sub, mul, div, pow, swiglu };
enum class CompareOp { eq, ne, lt, le, gt, ge };

}  // namespace remoe
