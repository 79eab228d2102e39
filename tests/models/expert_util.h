// Random f64 SwiGLU experts for the MoE tests, and their parameters as one list.
#pragma once
#include "models/moe_dispatch.h"
#include "test_util.h"

namespace remoe::test {

inline ExpertWeights random_experts(int64_t E, int64_t d, int64_t f, uint64_t seed) {
  ExpertWeights w;
  for (int64_t e = 0; e < E; ++e) {
    w.gate.push_back(rand_leaf({d, f}, seed + 10 * e + 1));
    w.up.push_back(rand_leaf({d, f}, seed + 10 * e + 2));
    w.down.push_back(rand_leaf({f, d}, seed + 10 * e + 3));
  }
  return w;
}

inline std::vector<Tensor> expert_params(const ExpertWeights& w) {
  std::vector<Tensor> p;
  for (int64_t e = 0; e < w.size(); ++e) p.insert(p.end(), {w.gate[e], w.up[e], w.down[e]});
  return p;
}

}  // namespace remoe::test
