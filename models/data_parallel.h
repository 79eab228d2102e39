// Data parallelism (docs/scaling.md): every rank builds the same global micro-batches from
// (seed, step), takes its share of their rows, and averages its gradients with the others', so
// an N-rank step equals the 1-rank step of the same global batch up to float summation order.
#pragma once
#include <cstdint>
#include <vector>

#include "core/comm.h"
#include "core/tensor.h"
#include "models/expert_parallel.h"
#include "models/module.h"
#include "models/optim.h"

namespace remoe {

struct Batch {
  Tensor inputs;   // [B, T] i64
  Tensor targets;  // [B, T] i64 (inputs shifted by one)
};

// Rows [r·B/N, (r+1)·B/N) of the batch for rank r of N; B must be a multiple of N.
Batch rank_share(const Batch& global, const Communicator& dp);

// Rank 0's values of every parameter on every rank (at start, so all replicas are one model).
void broadcast_parameters(const std::vector<Tensor>& params, Communicator& dp);

// Averages the gradients over the ranks, in buckets of at most `bucket_elements` floats (one
// all-reduce each). A parameter without a gradient here (an expert none of this rank's tokens
// chose) counts as zeros and gets the average of the others'; one that no rank's tokens reached
// keeps none, so AdamW skips it as it does in a single process.
void average_gradients(const std::vector<Tensor>& params, Communicator& dp, int64_t bucket_elements = 1 << 22);

// Under expert parallelism: shared gradients averaged over the world, each held expert's summed
// over the ranks holding it (÷ world size), then clipped to `max_norm` by the global norm (each
// expert counted once), which is returned. Experts held elsewhere keep no gradient (AdamW skips them).
double reduce_and_clip_expert_parallel(const NamedTensors& params, const ExpertParallel& ep, double max_norm,
                                       int64_t bucket_elements = 1 << 22);

// Copies every expert's weights and AdamW state from its holder to the other ranks of its group,
// so each rank holds the whole model as trained (before a checkpoint or an evaluation).
void gather_experts(const NamedTensors& params, AdamW& optimizer, const ExpertParallel& ep);

}  // namespace remoe
