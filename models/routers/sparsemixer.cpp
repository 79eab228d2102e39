// SparseMixer-v2 (Liu et al. 2024, "GRIN: GRadient-INformed MoE", arXiv 2409.12136, §2): TopK
// routing whose router gradient comes from a midpoint (Heun third-order) estimate of the
// expert-choice derivative instead of the softmax gate alone. Per token and for each of the k
// picks (earlier picks masked out, as GRIN does for its second expert):
//   candidates  M = {e : (max − s_e) / max(|s_e|, max) ≤ 2ε}     (near-best experts only)
//   π = softmax(s over M)
//   D ~ Gumbel-max over M when training, argmax s otherwise
//   ω = 1 if D = argmax s, else 1 with probability 1/4 and 1/3 otherwise (f(x) − f(0) ≈ ¼f'(x) + ¾f'(x/3))
//   gate = π_D · ω in the forward pass; its backward is ∂π_D/∂s (the ω factor is not differentiated).
#include <cmath>
#include <limits>

#include "core/rng.h"
#include "models/router_registry.h"
#include "models/routers/router_math.h"

namespace remoe {
namespace {

// The host-side decisions of one pick for every token: candidate mask, chosen expert, ω.
struct Pick {
  std::vector<uint8_t> candidate;  // [T, E]
  std::vector<int64_t> expert;     // [T]
  std::vector<double> omega;       // [T]
};

// Draws are indexed by the token's place in the whole micro-batch (first_token + t), so that data-
// parallel replicas draw what the single process draws for the same token.
Pick pick_experts(const std::vector<double>& s, std::vector<uint8_t>& taken, int64_t T, int64_t E,
                  const SparseMixerOptions& o, uint64_t pick) {
  Pick p{std::vector<uint8_t>(static_cast<size_t>(T * E), 0), std::vector<int64_t>(static_cast<size_t>(T)),
         std::vector<double>(static_cast<size_t>(T), 1.0)};
  const uint64_t key = (o.seed * 0x9E3779B97F4A7C15ull + o.stream) * 31 + pick;
  for (int64_t t = 0; t < T; ++t) {
    const size_t row = static_cast<size_t>(t * E);
    const uint64_t draw = static_cast<uint64_t>(o.first_token + t) * static_cast<uint64_t>(E + 1);
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (!taken[row + e] && (best < 0 || s[row + e] > s[row + best])) best = e;
    const double top = s[row + best];
    int64_t chosen = best;
    double chosen_key = -std::numeric_limits<double>::infinity();
    for (int64_t e = 0; e < E; ++e) {
      if (taken[row + e]) continue;
      const double factor = std::max(std::abs(s[row + e]), top);
      const bool near = factor == 0 || (top - s[row + e]) / factor <= 2 * o.eps;
      p.candidate[row + e] = near;
      if (!near || !o.training) continue;
      // Gumbel-max sample among the candidates: argmax s_e − log(−log U_e).
      const double u = philox_uniform(key, draw + static_cast<uint64_t>(e));
      const double gumbel_key = s[row + e] - std::log(-std::log(u));
      if (gumbel_key > chosen_key) chosen_key = gumbel_key, chosen = e;
    }
    if (o.training && chosen != best) {
      const double v = philox_uniform(key, draw + static_cast<uint64_t>(E));
      p.omega[static_cast<size_t>(t)] = v > 0.75 ? 1.0 : 1.0 / 3.0;
    }
    p.expert[static_cast<size_t>(t)] = chosen;
    taken[row + chosen] = 1;
  }
  return p;
}

}  // namespace

RouterOutput route_sparsemixer(const Tensor& logits, const SparseMixerOptions& o) {
  REMOE_CHECK(logits.dim() == 2, "route_sparsemixer: logits must be [T, E], got ", shape_str(logits.shape()));
  const int64_t T = logits.size(0), E = logits.size(1);
  REMOE_CHECK(o.k >= 1 && o.k <= E, "route_sparsemixer: k = ", o.k, " must be in [1, E = ", E, "]");
  const DType dt = router_math::router_dtype(logits);
  Tensor s = cast(logits, dt);
  const std::vector<double> sv = s.detach().to(DType::f64).to_vector<double>();
  std::vector<uint8_t> taken(static_cast<size_t>(T * E), 0);
  Tensor minus_inf = full({T, E}, -std::numeric_limits<double>::infinity(), {dt});
  std::vector<Tensor> gates, experts;
  for (int64_t j = 0; j < o.k; ++j) {
    Pick p = pick_experts(sv, taken, T, E, o, static_cast<uint64_t>(j));
    Tensor pi = softmax(where(from_vector(p.candidate, {T, E}), s, minus_inf), -1);  // π over the candidates
    Tensor chosen = from_vector(p.expert, {T, 1});
    Tensor pi_d = gather(pi, 1, chosen);                                            // [T, 1]
    Tensor forward_value = mul(pi_d, from_vector(p.omega, {T, 1}).to(dt));
    gates.push_back(add(pi_d, sub(forward_value, pi_d).detach()));  // value π_D·ω, gradient of π_D
    experts.push_back(chosen);
  }
  Tensor gate = reshape(cat(gates, 1), {T * o.k}), expert = reshape(cat(experts, 1), {T * o.k});
  RouterOutput out = routed({router_math::repeat_rows(T, o.k), expert, gate}, T, E);
  out.loss = load_balancing_loss(softmax(s, -1), replica_counts(out.counts, T, o.dp), o.k, o.aux_coeff);
  return out;
}

RouterSpec sparsemixer_router() {
  RouterSpec s;
  s.name = "sparsemixer";
  s.help = "SparseMixer-v2 (GRIN): TopK with sampled experts and a midpoint-method router gradient, LB aux loss";
  s.source = "Liu et al. 2024, GRIN: GRadient-INformed MoE (arXiv 2409.12136), SparseMixer-v2";
  s.label = "SparseMixer-v2";
  s.loss = RouterLoss::aux;
  s.config_keys = {"moe.aux_loss_coeff", "moe.sparsemixer_eps"};
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> {
    RouteFn route = [c](const Tensor& logits, const RouteContext& ctx) {
      SparseMixerOptions o{c.active(), c.aux_loss_coeff, c.sparsemixer_eps, ctx.training(), c.seed,
                           static_cast<uint64_t>(ctx.step) * 1009 + static_cast<uint64_t>(ctx.layer), ctx.dp,
                           ctx.first_token};
      return route_sparsemixer(logits, o);
    };
    return std::make_shared<MoEFFN>(c, gen, route);
  };
  s.active_experts = dispatched_experts;
  return s;
}

}  // namespace remoe
