// Expert Choice routing (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing"):
// the experts pick tokens instead of tokens picking experts, so every expert is exactly full.
#include "models/router_registry.h"
#include "models/routers/router_math.h"

namespace remoe {

RouterOutput route_expert_choice(const Tensor& logits, int64_t k) {
  REMOE_CHECK(logits.dim() == 2, "route_expert_choice: logits must be [T, E], got ", shape_str(logits.shape()));
  const int64_t T = logits.size(0), E = logits.size(1);
  REMOE_CHECK(k >= 1 && k <= E, "route_expert_choice: k = ", k, " must be in [1, E = ", E, "]");
  // Capacity C = T·k/E (the paper's capacity factor 1), at least one token per expert.
  const int64_t C = std::min(T, std::max<int64_t>(1, T * k / E));
  Tensor scores = softmax(cast(logits, router_math::router_dtype(logits)), -1);  // [T, E], over experts
  TopK picked = topk(contiguous(transpose(scores, 0, 1)), C, -1);             // [E, C]: each column's best tokens
  return routed({reshape(picked.indices, {E * C}), router_math::repeat_rows(E, C), reshape(picked.values, {E * C})}, T, E);
}

RouterSpec expert_choice_router() {
  RouterSpec s;
  s.name = "expert_choice";
  s.help = "Expert Choice: each expert takes its top T·k/E tokens by softmax score (sees the whole batch: not causal)";
  s.source = "Zhou et al. 2022, Mixture-of-Experts with Expert Choice Routing (capacity factor 1)";
  s.label = "Expert choice";
  s.token_local = false;
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> {
    RouteFn route = [k = c.active()](const Tensor& logits, const RouteContext&) { return route_expert_choice(logits, k); };
    return std::make_shared<MoEFFN>(c, gen, route);
  };
  s.active_experts = dispatched_experts;
  return s;
}

}  // namespace remoe
