// Finite-difference gradient check. For a function f of tensors, compares the gradient that
// autograd computes with central differences (f(x+h) − f(x−h)) / 2h, in f64.
// Small outputs are checked as a full Jacobian (one backward per output element); large ones
// through `projections` random projections s = Σ r·f(x).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace remoe {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  int64_t full_jacobian_max_outputs = 32;
  int projections = 2;
  uint64_t seed = 1234;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d f / d inputs[i] for every input with requires_grad (must be f64 CPU leaves; other
// inputs, e.g. indices, pass through unchanged). Returns "" on success, otherwise a description
// of the worst mismatch (input, element, analytic vs numeric).
std::string gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, GradcheckOptions opt = {});

}  // namespace remoe
