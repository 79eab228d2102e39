// ReMoE: ReLU routing with the adaptively weighted L1 penalty (paper Eq. 9–11, docs/routers.md).
#include "models/router_registry.h"
#include "models/routers/router_math.h"

namespace remoe {

RouterOutput route_relu(const Tensor& logits, int64_t k, bool load_balanced, Communicator* dp) {
  REMOE_CHECK(logits.dim() == 2, "route_relu: logits must be [T, E], got ", shape_str(logits.shape()));
  const int64_t T = logits.size(0), E = logits.size(1);
  REMOE_CHECK(k >= 1 && k <= E, "route_relu: k = ", k, " must be in [1, E = ", E, "]");
  const DType dt = router_math::router_dtype(logits);
  Tensor R = relu(cast(logits, dt));  // [T, E], gates; may exceed 1
  Tensor active = gt(R.detach(), 0.0);
  Tensor token_grid = expand(reshape(arange(0, static_cast<double>(T), 1, {DType::i64}), {T, 1}), {T, E});
  Tensor expert_grid = expand(reshape(arange(0, static_cast<double>(E), 1, {DType::i64}), {1, E}), {T, E});
  RouterOutput out =
      routed({masked_select(token_grid, active), masked_select(expert_grid, active), masked_select(R, active)}, T, E);
  // Penalty of this layer: Σ_t Σ_e f_e·R_te / T, f_e = E/(k·T)·c_e (Eq. 10–11) or 1 (Eq. 9); over
  // replicas c_e and T are the whole micro-batch's, and each rank sums its own tokens.
  const BatchCounts batch = replica_counts(out.counts, T, dp);
  const double Tb = static_cast<double>(batch.tokens);
  Tensor weighted =
      load_balanced ? mul(R, reshape(mul(batch.counts.to(dt), static_cast<double>(E) / (static_cast<double>(k) * Tb)), {1, E}))
                    : R;
  out.loss = div(sum(weighted), Tb);
  return out;
}

RouterSpec relu_router() {
  RouterSpec s;
  s.name = "relu";
  s.help = "ReMoE: ReLU router, L1 penalty with load balancing and adaptive λ (target sparsity 1 - k/E)";
  s.source = "Wang, Chen, Zhu, ICLR 2025 (ReMoE), the L1 penalty of Eq. 9-11";
  s.label = "ReMoE";
  s.paper_column = "ReMoE";
  s.compared_with = "topk";
  s.loss = RouterLoss::regularizer;
  s.adaptive_lambda = true;
  s.config_keys = {"moe.load_balanced_l1", "moe.l1_sum_over_layers", "moe.l1_coeff_init", "moe.l1_coeff_multiplier"};
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> {
    RouteFn route = [c](const Tensor& logits, const RouteContext& ctx) {
      return route_relu(logits, c.active(), c.l1_load_balanced, ctx.dp);
    };
    return std::make_shared<MoEFFN>(c, gen, route);
  };
  s.active_experts = dispatched_experts;
  return s;
}

}  // namespace remoe
