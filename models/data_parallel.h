// Data parallelism (docs/scaling.md): every rank builds the same global micro-batches from
// (seed, step), takes its share of their rows, and averages its gradients with the others', so
// an N-rank step equals the 1-rank step of the same global batch up to float summation order.
#pragma once
#include <cstdint>
#include <vector>

#include "core/comm.h"
#include "core/tensor.h"

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
// chose) counts as zeros and gets the average of the others'.
void average_gradients(const std::vector<Tensor>& params, Communicator& dp, int64_t bucket_elements = 1 << 22);

}  // namespace remoe
