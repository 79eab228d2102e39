// TopK+softmax, the paper's MoE baseline ("dMoE", dropless), with its ablations: no LB loss
// (moe.aux_loss_coeff = 0), a near-dense warm-up (moe.topk_warmup_k for the first
// moe.topk_warmup_steps steps; paper: k = 6 for 100 steps) and renormalised gates.
#include "models/router_registry.h"
#include "models/routers/router_math.h"

namespace remoe {

RouterOutput route_topk(const Tensor& logits, const TopKOptions& o) {
  REMOE_CHECK(logits.dim() == 2, "route_topk: logits must be [T, E], got ", shape_str(logits.shape()));
  const int64_t T = logits.size(0), E = logits.size(1);
  REMOE_CHECK(o.k >= 1 && o.k <= E, "route_topk: k = ", o.k, " must be in [1, E = ", E, "]");
  Tensor probs = softmax(cast(logits, router_math::router_dtype(logits)), -1);  // [T, E], fp32 as in the paper
  TopK top = topk(probs, o.k, -1);                                             // [T, k]
  Tensor gates = o.renormalize ? div(top.values, sum(top.values, {1}, true)) : top.values;
  RouterOutput out = routed({router_math::repeat_rows(T, o.k), reshape(top.indices, {T * o.k}), reshape(gates, {T * o.k})},
                            T, E);
  out.loss = load_balancing_loss(probs, replica_counts(out.counts, T, o.dp), o.k, o.aux_coeff);
  return out;
}

namespace {

// k·G, or the warm-up k·G while step < topk_warmup_steps (never during evaluation).
int64_t scheduled_k(const ModelConfig& c, int64_t step) {
  if (c.topk_warmup_k > 0 && step < c.topk_warmup_steps) return std::min(c.topk_warmup_k * c.granularity, c.experts());
  return c.active();
}

}  // namespace

RouterSpec topk_router() {
  RouterSpec s;
  s.name = "topk";
  s.help = "TopK+softmax MoE (dMoE): k experts per token, gates = softmax probabilities, LB aux loss";
  s.source = "Shazeer et al. 2017; Gale et al. 2023 (dMoE); the baseline of the ReMoE paper";
  s.label = "TopK";
  s.paper_column = "MoE";
  s.loss = RouterLoss::aux;
  s.config_keys = {"moe.aux_loss_coeff", "moe.topk_warmup_k", "moe.topk_warmup_steps", "moe.topk_renormalize"};
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> {
    RouteFn route = [c](const Tensor& logits, const RouteContext& ctx) {
      return route_topk(logits, TopKOptions{scheduled_k(c, ctx.step), c.aux_loss_coeff, c.topk_renormalize, ctx.dp});
    };
    return std::make_shared<MoEFFN>(c, gen, route);
  };
  s.active_experts = dispatched_experts;
  return s;
}

}  // namespace remoe
