// A node of the autograd graph: the record an op leaves on its output when an input needs a
// gradient. It keeps the op's inputs (the graph's edges) and a backward rule that maps the
// gradient of the output to one gradient per input, written with public ops so that it runs on
// every device and can itself be differentiated.
//
// Convention for saved tensors: a backward rule may capture inputs freely, but must capture the
// op's *output* as out.detach() — the output owns this node, so a strong capture would be a cycle.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace remoe {

// grad_out: gradient of the op's output. needs[i]: whether input i needs a gradient; the rule
// may return an undefined Tensor for inputs that do not (and for non-differentiable inputs).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& needs)>;

struct Node {
  std::string name;            // the op's name, for error messages and graph dumps
  std::vector<Tensor> inputs;  // edges to the inputs (their grad_fn, or leaves to accumulate into)
  BackwardFn backward;         // empty once the graph has been freed
  Shape out_shape;             // the output's shape, to check gradients handed to this node
  DType out_dtype = DType::f32;
};

// Grad mode: ops record nodes only while it is on (per thread, on by default).
bool grad_enabled();
void set_grad_enabled(bool on);

// Turns gradient recording off for its scope (evaluation, optimizer updates, backward itself).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and at least one of the inputs requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a node to `out` when any input requires a gradient (and grad mode is on); returns out.
// Every differentiable op ends with `return record("op", out, {inputs...}, rule);`.
Tensor record(const char* name, Tensor out, std::vector<Tensor> inputs, BackwardFn backward);

// The one op the engine needs itself: the sum of two gradients that reach the same tensor. Autograd
// sits below the op layer and links nothing of it (the build checks: tests/layers), so the op layer
// hands its `add` in when it is linked (ops/elementwise.cpp). With create_graph the sum is recorded.
using GradientSum = Tensor (*)(const Tensor& a, const Tensor& b);
void set_gradient_sum(GradientSum sum);

// Backpropagates `grad` (shape of root) through the graph of `root`, accumulating into the .grad
// of every leaf that requires it. create_graph records the backward ops (for double backward).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph, bool create_graph = false);

// The gradients of `output` (seeded with ones, or `grad_output`) with respect to `inputs`,
// returned rather than accumulated into .grad; leaves' .grad are left untouched.
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output = Tensor(),
                         bool retain_graph = false, bool create_graph = false);

}  // namespace remoe
