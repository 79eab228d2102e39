// CUDA kernels of the elementwise family, mirroring ops/cpu/elementwise.h (the enums of
// ops/elementwise_kinds.h, the same contracts): `out` is allocated by the caller with the broadcast shape; inputs may be strided or
// broadcast views (up to 8 axes after merging contiguous ones). All operands must live on one CUDA
// device; the kernels are queued on that device's stream (cuda/stream.h) and return at once.
//
// Dtypes: f32, f64, and bf16 (loaded into f32, computed in f32, rounded back to bf16); the integer
// dtypes i32/i64/u8 for the ops the CPU backend also runs on integers (neg, abs, square, relu, the
// add/mul/rsub scalar forms, add, sub, mul, compare, where). Other combinations throw the CPU
// backend's error.
#pragma once
#include "core/tensor.h"
#include "ops/elementwise_kinds.h"

namespace remoe::cuda {

using remoe::BinaryOp;  // so that cuda::UnaryOp etc. name the shared kinds
using remoe::CompareOp;
using remoe::UnaryOp;

void unary(UnaryOp op, const Tensor& x, double scalar, const Tensor& out);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out);  // out u8
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);  // cond u8
// SwiGLU backward, all five same-shape contiguous f32/f64:
// g_gate = g·up·silu'(gate), g_up = g·silu(gate).
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& g, const Tensor& g_gate,
                     const Tensor& g_up);

// Writes `value` (converted to out's dtype) into every element of out (any strides).
void fill(const Tensor& out, double value);
// dst = src elementwise, same shape, any strides on both sides, converting between any two dtypes
// (the device counterpart of core's copy_; bf16 rounds to nearest even as on the CPU).
void copy(const Tensor& dst, const Tensor& src);

namespace detail {
// Test hook: when set, strided kernels index with 64-bit arithmetic even for small tensors, so the
// path that only tensors of 2^31+ elements take can be checked cheaply.
void set_force_64bit_indexing(bool on);
bool force_64bit_indexing();
}  // namespace detail

}  // namespace remoe::cuda
