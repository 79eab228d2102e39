// CPU kernels of the elementwise family. `out` is allocated by the caller with the broadcast shape
// (contiguous); inputs may be strided or broadcast views.
#pragma once
#include "core/tensor.h"
#include "ops/elementwise_kinds.h"

namespace remoe::cpu {

void unary(UnaryOp op, const Tensor& x, double scalar, const Tensor& out);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out);  // out u8
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
// SwiGLU backward, all four same-shape contiguous: g_gate = g·up·silu'(gate), g_up = g·silu(gate).
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& g, const Tensor& g_gate,
                     const Tensor& g_up);

}  // namespace remoe::cpu
