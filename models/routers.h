// Routers: map router logits [T, E] to (token, expert, gate) triples plus the router's loss terms
// and statistics, returned as values (no global state). Spec: ../shared/spec/remoe.md §2.
#pragma once
#include <cstdint>

#include "ops/ops.h"

namespace remoe {

// The (token, expert, gate) triples every router produces: entry i routes token[i] to
// expert[i] with weight gate[i]. TopK gives exactly k per token; ReLU a variable number (maybe 0).
struct Routing {
  Tensor token;   // [N] i64
  Tensor expert;  // [N] i64
  Tensor gate;    // [N] f32 (f64 for f64 logits), differentiable
};

struct RouterOutput {
  Routing routing;
  Tensor counts;           // [E] i64: pairs routed to each expert (c_e)
  int64_t active_pairs = 0;  // N: Σ_e c_e
  int64_t tokens = 0;        // T
  int64_t experts = 0;       // E
  // TopK: the load-balancing loss, already multiplied by its coefficient. Scalar, differentiable.
  Tensor aux_loss;
  // ReLU: this layer's penalty Σ_t Σ_e f_e·R_te / T (paper Eq. 10–11; L_reg is the mean over
  // layers of it). Scalar, differentiable. f_e = 1 for plain L1 (Eq. 9).
  Tensor reg_loss;
};

// TopK+softmax ("dMoE"): p = softmax(logits) in f32 over all E; the k largest, gates = p (not
// renormalised); aux = coeff · E/(k·T²) · Σ_e (Σ_t p_te) · c_e.
RouterOutput route_topk(const Tensor& logits, int64_t k, double aux_coeff);

// ReMoE: R = ReLU(logits); every pair with R > 0 is routed with gate R. The penalty uses
// f_e = E/(k·T) · c_e (load-balanced, Eq. 10) or f_e = 1 (plain L1, Eq. 9).
RouterOutput route_relu(const Tensor& logits, int64_t k, bool load_balanced);

}  // namespace remoe
