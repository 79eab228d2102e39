// CPU kernels of the softmax family. A softmax over axis `dim` of a contiguous tensor sees it as
// [outer, n, inner] (n = the axis' size, inner = the product of the axes after it), so no
// permutation or copy is needed for any axis; inner == 1 (the last axis) is the fast row path.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace remoe::cpu {

// out = softmax(x) (or log_softmax(x) when `log`) over the middle axis of x viewed as
// [outer, n, inner]. x and out contiguous, same shape and dtype (f32 or f64). Entries of −inf get
// probability exactly 0 (an all −inf row: softmax 0, log_softmax NaN).
void softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, const Tensor& out);

// Fused cross-entropy forward. logits [N, V] contiguous, targets [N] i64 contiguous, every target
// either ignore_index or in [0, V) (the caller checks). For every non-ignored row writes
// stats[i] = (m, log s), the row max and log Σ exp(x − m), so logsumexp = m + log s (zeros for
// ignored rows; stats is [N, 2], logits' dtype). Returns the sum over non-ignored rows of
// −log p[target] = logsumexp − logits[i, target] (in double) and their count in *count.
double cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& stats,
                             int64_t* count);

// Fused cross-entropy backward: grad[i, :] = (softmax(logits[i]) − onehot(target[i])) · scale for
// non-ignored rows (softmax = exp((x − m) − log s) from the saved stats), 0 for ignored rows.
// grad [N, V] contiguous, logits' dtype; scale = dL/dloss / count.
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& stats,
                            double scale, const Tensor& grad);

}  // namespace remoe::cpu
