#include "ops/composed_vjp.h"

#include "autograd/node.h"
#include "core/error.h"

namespace remoe {

std::vector<Tensor> composed_vjp(const ComposedForward& composed, const std::vector<Tensor>& inputs,
                                 const Tensor& grad_out, const std::vector<bool>& needs) {
  REMOE_CHECK(grad_enabled(), "composed_vjp: only for a backward that is being recorded (create_graph)");
  std::vector<Tensor> wanted;
  std::vector<size_t> where;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (needs[i]) wanted.push_back(inputs[i]), where.push_back(i);
  std::vector<Tensor> grads(inputs.size());
  if (wanted.empty()) return grads;
  // The composed graph hangs off the op's own inputs, so the gradients it gives are connected to
  // everything that produced them; grad() runs only the composed nodes (those that reach an input).
  Tensor y = composed(inputs);
  std::vector<Tensor> g = grad(y, wanted, grad_out, /*retain_graph=*/false, /*create_graph=*/true);
  for (size_t j = 0; j < where.size(); ++j) grads[where[j]] = g[j];
  return grads;
}

}  // namespace remoe
