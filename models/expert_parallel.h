// Expert parallelism (docs/scaling.md): the E experts of every MoE layer are split over the P ranks
// of an expert group, each holding E/P consecutive experts. A layer routes its own tokens, sends
// each routed (token, expert) row to the rank holding the expert (all-to-all-v), runs the experts
// it holds on the rows it received, and sends the outputs back, where they are gated and summed
// as in the single-process dispatch (models/moe_dispatch.h). With data parallelism the world is
// DP × EP: rank = dp_index · P + ep_index; every rank trains on its own share of the batch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/comm.h"
#include "models/moe_dispatch.h"

namespace remoe {

struct ExpertParallel {
  std::shared_ptr<Communicator> world;     // every rank: batch shares, LB statistics, shared gradients
  std::shared_ptr<Communicator> group;     // the P ranks that together hold every expert once
  std::shared_ptr<Communicator> replicas;  // the world/P ranks that hold the same experts
  int64_t experts = 0;                     // experts per layer (E·G)

  int64_t size() const { return group->size(); }
  int64_t per_rank() const { return experts / size(); }
  int64_t first_local() const { return group->rank() * per_rank(); }
  int owner(int64_t expert) const { return static_cast<int>(expert / per_rank()); }  // rank in `group`
  bool holds(int64_t expert) const { return owner(expert) == group->rank(); }
};

// Splits `world` into expert groups of P consecutive ranks; `experts` must be a multiple of P and
// the world size a multiple of P (errors name dist.expert_parallel).
ExpertParallel make_expert_parallel(std::shared_ptr<Communicator> world, int64_t P, int64_t experts);

// The expert index of a parameter named "...ffn.experts.<e>.<weight>" (its AdamW state entries
// too), or -1 for every parameter outside an expert.
int64_t expert_index(const std::string& name);

// Differentiable exchange of rows: x [Σ send_rows, d] holds send_rows[r] consecutive rows for each
// rank r of `comm`; returns [Σ recv_rows, d] with recv_rows[r] rows from each rank r, in rank order.
// Its gradient is the reverse exchange. Every rank of `comm` must call it (also with no rows).
Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                       const std::shared_ptr<Communicator>& comm);

// moe_dispatch across the expert group: the same function of x (all experts' weights are passed,
// only the ones this rank holds are read). `counts` [E] are this rank's per-expert counts.
Tensor moe_dispatch_expert_parallel(const Tensor& x, const Routing& routing, const Tensor& counts,
                                    const ExpertWeights& experts, const ExpertParallel& ep);

}  // namespace remoe
