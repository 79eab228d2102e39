// Hash layers (Roller et al. 2021, "Hash Layers For Large Sparse Models"): a fixed, balanced-in-
// expectation assignment of each vocabulary id to experts; no router weights, no loss, gate 1.
#include "models/router_registry.h"

namespace remoe {

int64_t hash_expert(int64_t token_id, int64_t num_experts) {
  // splitmix64's finaliser: every bit of the id moves every bit of the hash, so consecutive ids
  // (which BPE vocabularies order by frequency) spread evenly over the experts.
  uint64_t z = static_cast<uint64_t>(token_id) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<int64_t>(z % static_cast<uint64_t>(num_experts));
}

RouterOutput route_hash(const Tensor& token_ids, int64_t num_experts, int64_t k, DType gate_dtype) {
  REMOE_CHECK(token_ids.defined() && token_ids.dim() == 1, "route_hash: token ids must be [T]");
  REMOE_CHECK(k >= 1 && k <= num_experts, "route_hash: k = ", k, " must be in [1, E = ", num_experts, "]");
  const std::vector<int64_t> ids = token_ids.to(DType::i64).to_vector<int64_t>();
  const int64_t T = static_cast<int64_t>(ids.size());
  std::vector<int64_t> tok, exp;
  tok.reserve(static_cast<size_t>(T * k));
  exp.reserve(static_cast<size_t>(T * k));
  for (int64_t t = 0; t < T; ++t) {
    const int64_t h = hash_expert(ids[static_cast<size_t>(t)], num_experts);
    for (int64_t j = 0; j < k; ++j) {  // k distinct experts: the hashed one and the next k − 1
      tok.push_back(t);
      exp.push_back((h + j) % num_experts);
    }
  }
  Tensor token = from_vector(tok, {T * k}), expert = from_vector(exp, {T * k});
  return routed({token, expert, ones({T * k}, {gate_dtype})}, T, num_experts);
}

RouterSpec hash_router() {
  RouterSpec s;
  s.name = "hash";
  s.help = "Hash layer: expert = hash(token id) mod E (k consecutive for k > 1), gate 1, no router weights";
  s.source = "Roller et al. 2021, Hash Layers For Large Sparse Models";
  s.label = "Hash";
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> {
    RouteFn route = [E = c.experts(), k = c.active()](const Tensor&, const RouteContext& ctx) {
      return route_hash(ctx.token_ids, E, k, DType::f32);
    };
    return std::make_shared<MoEFFN>(c, gen, route, /*with_router=*/false);
  };
  s.active_experts = dispatched_experts;
  return s;
}

}  // namespace remoe
