// Routers: map one layer's router logits [T, E] (or, for Hash, its token ids) to (token, expert,
// gate) triples plus the layer's loss term and statistics, returned as values (no global state).
// The equations are in docs/routers.md; each function cites its paper.
#pragma once
#include <cstdint>

#include "core/comm.h"
#include "ops/ops.h"

namespace remoe {

// The (token, expert, gate) triples every dispatching router produces: entry i routes token[i] to
// expert[i] with weight gate[i]. TopK gives exactly k per token; ReLU a variable number (maybe 0).
struct Routing {
  Tensor token;   // [N] i64
  Tensor expert;  // [N] i64
  Tensor gate;    // [N] f32 (f64 for f64 logits), differentiable
};

struct RouterOutput {
  Routing routing;
  Tensor counts;             // [E] i64: pairs routed to each expert (c_e)
  int64_t active_pairs = 0;  // N: Σ_e c_e
  int64_t tokens = 0;        // T
  int64_t experts = 0;       // E
  // This layer's router loss term, undefined when the router has none. TopK family: the
  // load-balancing loss already multiplied by its coefficient. ReMoE: the penalty
  // Σ_t Σ_e f_e·R_te / T (paper Eq. 10–11), which the model averages over layers and weighs by λ.
  Tensor loss;
};

// Fills counts and active_pairs of a router output from its routing.
RouterOutput routed(Routing routing, int64_t tokens, int64_t experts);

// The routing statistics of a micro-batch split over data-parallel replicas (docs/scaling.md):
// the counts c_e and the token count T summed over the ranks of `dp` (unchanged when dp is null or
// one process), so that load balancing sees the whole micro-batch as the 1-process run does.
struct BatchCounts {
  Tensor counts;  // [E] i64
  int64_t tokens = 0;
};
BatchCounts replica_counts(const Tensor& local_counts, int64_t local_tokens, Communicator* dp);

// The load-balancing loss of the TopK family (Switch/dMoE form, docs/routers.md):
// coeff · E/(k·T²) · Σ_e (Σ_t p_te) · c_e, with c_e a constant. Scalar, differentiable in p.
// With replicas, p holds this rank's tokens and c, T are the whole micro-batch's: the ranks'
// values sum to the loss of the whole micro-batch.
Tensor load_balancing_loss(const Tensor& probs, const BatchCounts& batch, int64_t k, double coeff);

struct TopKOptions {
  int64_t k = 1;
  double aux_coeff = 0.01;
  bool renormalize = false;  // gates p / Σ_chosen p (Mixtral, DeepSeek); with k = 1 the gate is 1
  Communicator* dp = nullptr;  // data-parallel replicas whose tokens share the LB statistics
};
// TopK+softmax ("dMoE", the paper's baseline): p = softmax(logits) in f32 over all E; the k
// largest, gates = p (not renormalised unless asked); aux = load_balancing_loss(p).
RouterOutput route_topk(const Tensor& logits, const TopKOptions& options);
inline RouterOutput route_topk(const Tensor& logits, int64_t k, double aux_coeff) {
  return route_topk(logits, TopKOptions{k, aux_coeff, false});
}

// ReMoE (docs/routers.md): R = ReLU(logits); every pair with R > 0 is routed with gate R. The penalty
// uses f_e = E/(k·T) · c_e (load-balanced, Eq. 10–11) or f_e = 1 (plain L1, Eq. 9); with
// replicas (dp), c_e and T are the whole micro-batch's and the penalty is this rank's share.
RouterOutput route_relu(const Tensor& logits, int64_t k, bool load_balanced, Communicator* dp = nullptr);

// Hash layers (Roller et al. 2021): token id v goes to the k experts (h(v) + j) mod E, j < k, with
// h a fixed integer hash (splitmix64); gate 1; no router weights and no loss.
int64_t hash_expert(int64_t token_id, int64_t num_experts);
RouterOutput route_hash(const Tensor& token_ids, int64_t num_experts, int64_t k, DType gate_dtype);

// Expert Choice (Zhou et al. 2022): p = softmax(logits) over experts; each expert takes the
// C = max(1, T·k/E) tokens with the largest p_te in its column; gates = p. A token may get 0..E
// experts. It sees the whole batch at once, so it is not causal (as the paper used it).
RouterOutput route_expert_choice(const Tensor& logits, int64_t k);

struct SparseMixerOptions {
  int64_t k = 1;
  double aux_coeff = 0.01;
  double eps = 0.01;      // the candidate mask keeps experts within 2ε (relative) of the best
  bool training = false;  // sample the expert (training) or take the argmax (evaluation)
  uint64_t seed = 0;      // the (seed, stream) of this layer and step's random draws
  uint64_t stream = 0;
  Communicator* dp = nullptr;  // data-parallel replicas whose tokens share the LB statistics
  int64_t first_token = 0;     // index of row 0 in the whole micro-batch (data parallelism)
};
// SparseMixer-v2 (Liu et al. 2024, GRIN, arXiv 2409.12136): TopK whose router gradient is the
// estimator of GRIN (docs/routers.md): each of the k experts is sampled among the near-best
// candidates (Gumbel-max over the masked softmax π); its forward gate is π_D times the midpoint
// weight ω (1, or 1/3 with probability 3/4 when the sample is not the argmax: Heun's third-order
// rule), and its backward is that of π_D alone.
RouterOutput route_sparsemixer(const Tensor& logits, const SparseMixerOptions& options);

// The weights of Lory's E experts, stacked: gate/up [E, d, w], down [E, w, d]; router [d, E].
struct LoryWeights {
  Tensor router, gate, up, down;
};
// Lory (Zhong et al. 2024, arXiv 2405.03133): x [B·T, d] (rows b·T + t) in segments of `segment`
// tokens; segment s runs one SwiGLU with weights Σ_e p_se θ_e, p_s = softmax(mean(x of segment
// s−1)·W_r), p_0 uniform (docs/routers.md). Output [B·T, d].
Tensor lory_mix(const Tensor& x, const LoryWeights& w, int64_t batch, int64_t seq, int64_t segment);

}  // namespace remoe
