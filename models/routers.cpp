// What the routers share: their output's statistics, the TopK family's load-balancing loss.
#include "models/routers.h"

namespace remoe {

RouterOutput routed(Routing routing, int64_t tokens, int64_t experts) {
  RouterOutput out;
  out.counts = bincount(routing.expert, experts);
  out.active_pairs = routing.expert.numel();
  out.tokens = tokens;
  out.experts = experts;
  out.routing = std::move(routing);
  return out;
}

BatchCounts replica_counts(const Tensor& local_counts, int64_t local_tokens, Communicator* dp) {
  if (!dp || dp->size() == 1) return {local_counts, local_tokens};
  Tensor counts = clone(local_counts);
  dp->all_reduce(counts, ReduceOp::sum);
  return {counts, dp->all_reduce(local_tokens, ReduceOp::sum)};
}

Tensor load_balancing_loss(const Tensor& probs, const BatchCounts& batch, int64_t k, double coeff) {
  const int64_t E = probs.size(1);
  const double T = static_cast<double>(batch.tokens);
  // Σ_e P_e·c_e with P_e = Σ_t p_te; c_e is a count, so no gradient flows through it.
  Tensor p_sum = sum(probs, {0});
  return mul(sum(mul(p_sum, batch.counts.to(probs.dtype()))), coeff * static_cast<double>(E) / (static_cast<double>(k) * T * T));
}

}  // namespace remoe
