// The one dropless MoE dispatch path shared by every router (design.md, "MoE layer"):
// triples → sort by expert → gather rows into one contiguous buffer → SwiGLU per non-empty
// expert on its contiguous block → multiply by gates → scatter-add back to the tokens.
#pragma once
#include <vector>

#include "models/routers.h"

namespace remoe {

// The weights of E SwiGLU experts: expert e computes down(silu(x·gate[e]) * (x·up[e])),
// gate/up [d, f], down [f, d].
struct ExpertWeights {
  std::vector<Tensor> gate, up, down;
  int64_t size() const { return static_cast<int64_t>(gate.size()); }
};

// y [T, d] = Σ over triples (t, e, g) of g · Expert_e(x_t); tokens with no triple get 0.
// `counts` [E] must be the per-expert counts of routing.expert. Experts with no token do no work.
Tensor moe_dispatch(const Tensor& x, const Routing& routing, const Tensor& counts, const ExpertWeights& experts);

// The same function as a plain per-token loop over each token's experts: the test oracle.
Tensor moe_reference(const Tensor& x, const Routing& routing, const ExpertWeights& experts);

}  // namespace remoe
