// The backward of a fused op while the backward itself is recorded (grad(..., create_graph=true):
// a gradient that will be differentiated again). The fused backward kernels (rms_norm, swiglu,
// attention, cross_entropy, grouped_swiglu) compute gradients without recording them, so under
// create_graph these ops take the gradient through their composed version instead: the same
// formula built from recorded ops (`composed::`), differentiable to any order. The first backward
// keeps the fast kernel; only a graph that asks for higher derivatives pays for the composed one.
#pragma once
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace remoe {

using ComposedForward = std::function<Tensor(const std::vector<Tensor>& inputs)>;

// The gradients of composed(inputs) · grad_out with respect to the inputs with needs[i], recorded
// (undefined where !needs[i]). Call it from a backward rule when grad_enabled() is on.
std::vector<Tensor> composed_vjp(const ComposedForward& composed, const std::vector<Tensor>& inputs,
                                 const Tensor& grad_out, const std::vector<bool>& needs);

}  // namespace remoe
