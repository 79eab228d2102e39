// The elementwise family's device seam (ops/kernel_table.h): what a backend provides so that every
// elementwise op (ops/elementwise.cpp) runs on its device. The contracts are those of
// ops/cpu/elementwise.h: `out` is allocated by the caller with the broadcast shape; inputs may be
// strided or broadcast views, all on one device.
#pragma once
#include "core/tensor.h"
#include "ops/elementwise_kinds.h"
#include "ops/kernel_table.h"

namespace remoe {

struct ElementwiseKernels {
  void (*unary)(UnaryOp op, const Tensor& x, double scalar, const Tensor& out) = nullptr;
  void (*binary)(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) = nullptr;
  void (*compare)(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out) = nullptr;  // out u8
  void (*where)(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) = nullptr;
  // All five same-shape contiguous: g_gate = g·up·silu'(gate), g_up = g·silu(gate).
  void (*swiglu_backward)(const Tensor& gate, const Tensor& up, const Tensor& g, const Tensor& g_gate,
                          const Tensor& g_up) = nullptr;
};

// The table, with the CPU kernels already in it.
KernelTable<ElementwiseKernels>& elementwise_kernels();

}  // namespace remoe
