// The backward engine: order the graph's nodes so that each runs after every node that consumes
// its output (reverse topological order), sum the gradients arriving at each node, run its rule,
// and hand the results to its inputs; leaves accumulate into .grad. Freed afterwards by default.
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"

namespace remoe {
namespace {

thread_local bool g_grad_enabled = true;

// Depth-first post-order from the root's node = a topological order (inputs before consumers).
// Owning pointers: freeing a node's inputs during backward must not destroy nodes still queued.
std::vector<std::shared_ptr<Node>> topo_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  seen.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      std::shared_ptr<Node> child = node->inputs[next++].grad_fn();
      if (child && seen.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return order;  // root last
}

// For grad(): the nodes from which some wanted tensor can be reached (`order` has inputs before
// their consumers). Only these run: the rest of the graph -- e.g. what produced the wanted tensors,
// when grad() runs inside another backward (ops/composed_vjp.cpp) -- is neither run nor freed.
std::unordered_set<Node*> nodes_leading_to(const std::vector<std::shared_ptr<Node>>& order,
                                          const std::vector<Tensor>& wanted) {
  std::unordered_set<Node*> leads;
  for (const auto& node : order) {
    for (const Tensor& in : node->inputs) {
      bool hit = in.grad_fn() && leads.count(in.grad_fn().get());
      for (const Tensor& w : wanted) hit = hit || in.same(w);
      if (hit) {
        leads.insert(node.get());
        break;
      }
    }
  }
  return leads;
}

GradientSum g_gradient_sum = nullptr;  // set by the op layer (set_gradient_sum)

Tensor accumulate(const Tensor& acc, const Tensor& g) {
  if (!acc.defined()) return g;
  REMOE_CHECK(g_gradient_sum != nullptr, "backward: two gradients reach one tensor, but no op layer has "
              "registered the gradient sum (link remoe_ops: ops/elementwise.cpp registers add)");
  return g_gradient_sum(acc, g);
}

// Core of backward() and grad(): returns the gradient reaching each tensor of `wanted`.
std::vector<Tensor> backprop(const Tensor& root, const Tensor& seed, bool retain_graph, bool create_graph,
                             const std::vector<Tensor>* wanted) {
  REMOE_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no input of its graph has "
                                    "requires_grad, or it was computed under NoGradGuard)");
  Tensor g0 = seed;
  if (!g0.defined()) {
    REMOE_CHECK(root.numel() == 1, "backward: a gradient must be given for a non-scalar output of shape ",
                shape_str(root.shape()));
    g0 = ones_like(root);
  }
  REMOE_CHECK(g0.shape() == root.shape(), "backward: gradient shape ", shape_str(g0.shape()),
              " differs from output shape ", shape_str(root.shape()));

  // As in PyTorch, a backward that records its own graph keeps the graph it ran through: the
  // recorded gradients refer to its nodes (a second backward goes through them again).
  retain_graph = retain_graph || create_graph;
  bool prev_mode = grad_enabled();
  set_grad_enabled(create_graph);
  std::vector<Tensor> result(wanted ? wanted->size() : 0);
  auto deliver_leaf = [&](const Tensor& leaf, const Tensor& g) {
    if (wanted) {
      for (size_t i = 0; i < wanted->size(); ++i)
        if ((*wanted)[i].same(leaf)) result[i] = accumulate(result[i], g);
    } else {
      leaf.set_grad(accumulate(leaf.grad(), create_graph ? g : g.detach()));
    }
  };

  try {
    if (!root.grad_fn()) {
      deliver_leaf(root, g0);
    } else {
      std::unordered_map<Node*, Tensor> grads;
      grads[root.grad_fn().get()] = g0;
      std::vector<std::shared_ptr<Node>> order = topo_order(root.grad_fn());
      std::unordered_set<Node*> leads;
      if (wanted) leads = nodes_leading_to(order, *wanted);
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node* node = it->get();
        if (wanted && !leads.count(node)) continue;  // reaches no wanted tensor
        auto found = grads.find(node);
        if (found == grads.end()) continue;  // no gradient flows here
        Tensor gout = found->second;
        grads.erase(found);
        REMOE_CHECK(node->backward, "backward through ", node->name,
                    " a second time: its graph was freed; pass retain_graph=true to the first backward");
        std::vector<bool> needs(node->inputs.size());
        for (size_t i = 0; i < needs.size(); ++i) needs[i] = node->inputs[i].requires_grad();
        std::vector<Tensor> gin = node->backward(gout, needs);
        REMOE_CHECK(gin.size() == node->inputs.size(), "backward of ", node->name, " returned ", gin.size(),
                    " gradients for ", node->inputs.size(), " inputs");
        for (size_t i = 0; i < gin.size(); ++i) {
          const Tensor& in = node->inputs[i];
          if (!needs[i] || !gin[i].defined()) continue;
          REMOE_CHECK(gin[i].shape() == in.shape(), "backward of ", node->name, ": gradient for input ", i,
                      " has shape ", shape_str(gin[i].shape()), ", the input has ", shape_str(in.shape()));
          if (in.grad_fn()) {
            Tensor& slot = grads[in.grad_fn().get()];
            slot = accumulate(slot, gin[i]);
          }
          if (!in.grad_fn() || wanted) deliver_leaf(in, gin[i]);
        }
        if (!retain_graph) {  // free the graph: saved tensors live in the rule's captures
          node->backward = nullptr;
          node->inputs.clear();
        }
      }
    }
  } catch (...) {
    set_grad_enabled(prev_mode);
    throw;
  }
  set_grad_enabled(prev_mode);
  return result;
}

}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

void set_gradient_sum(GradientSum sum) { g_gradient_sum = sum; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor out, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  node->out_shape = out.shape();
  node->out_dtype = out.dtype();
  // The output is a fresh handle (ops return new tensors), so setting its node is safe.
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph, bool create_graph) {
  backprop(root, grad, retain_graph, create_graph, nullptr);
}

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output,
                         bool retain_graph, bool create_graph) {
  return backprop(output, grad_output, retain_graph, create_graph, &inputs);
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }

}  // namespace remoe
