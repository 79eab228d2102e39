// Argument checks shared by the op files: every message names the op and the offending values.
#pragma once
#include <initializer_list>

#include "autograd/node.h"
#include "core/tensor.h"

namespace remoe {

// The device every defined tensor in `ts` lives on; throws naming the op if they differ.
inline Device common_device(const char* op, std::initializer_list<Tensor> ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    REMOE_CHECK(t.defined(), op, ": an input tensor is undefined");
    if (!first) first = &t;
    REMOE_CHECK(t.device() == first->device(), op, ": inputs are on different devices (",
                first->device().str(), " and ", t.device().str(), ")");
  }
  return first ? first->device() : Device::cpu();
}

inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  REMOE_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " ",
              shape_str(a.shape()), " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()),
              "); convert one with to() or cast()");
}

inline void check_floating(const char* op, const Tensor& t) {
  REMOE_CHECK(is_floating(t.dtype()), op, ": needs a floating tensor, got ", dtype_name(t.dtype()));
}

inline void check_integer(const char* op, const char* what, const Tensor& t) {
  REMOE_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32, op, ": ", what,
              " must be an integer tensor (i64 or i32), got ", dtype_name(t.dtype()));
}

// A backward rule's saved output. It is captured detached (the output owns the node: a strong
// capture would be a cycle), which is exact for the first derivative; when the backward itself is
// recorded (create_graph) the rule recomputes it from the inputs instead, so that the gradient
// depends on them and can be differentiated again.
template <class Recompute>
Tensor saved_output(const Tensor& detached, Recompute recompute) {
  return grad_enabled() ? recompute() : detached;
}

// The ops not yet behind a device seam (ops/kernel_table.h; elementwise is) run CPU kernels only.
inline void require_cpu(const char* op, Device d) {
  REMOE_CHECK(d.is_cpu(), op, ": no kernel for device ", d.str(), " in this build");
}

}  // namespace remoe
