// CPU kernels of causal / full scaled-dot-product attention with grouped-query heads, in the
// streaming (FlashAttention) form: the T×T score matrix is never materialised; each task walks
// one block of queries (forward) or keys (backward) against the other side block by block.
//
// Layout: q [B, T, Hq, D]; k, v [B, T, Hkv, D]; query head h reads kv head h / (Hq / Hkv).
// q, k and v may be strided views (e.g. slices of a fused QKV projection) as long as their last
// axis has stride 1; every other tensor is contiguous. One floating dtype (f32 or f64) throughout.
#pragma once
#include "core/tensor.h"

namespace remoe::cpu {

// Rows per query block and per key block (also what the tests use to cross block boundaries).
constexpr int64_t kAttentionBlock = 32;

// out [B, T, Hq, D] = softmax(q·kᵀ·scale (+ causal mask)) · v; lse [B, Hq, T] receives each
// query row's logsumexp of the scaled, masked scores (what backward needs to recompute P).
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale,
                       const Tensor& out, const Tensor& lse);

// How the backward pass is split over threads (automatic picks; the others are for tests).
enum class AttentionBackwardSchedule {
  automatic,  // fused when both sides are wanted and B·Hkv gives every thread work, else split
  fused,      // one pass per (b, kv head): dQ, dK, dV together (no two tasks share an output row)
  split,      // one pass per (b, kv head, key block) for dK, dV and one per (b, q head, query block) for dQ
};

// Given dout = dL/dout (contiguous) and the forward's out and lse: the FlashAttention-2 backward,
// with D_i = rowsum(dout_i ∘ out_i), P_ij = exp(scale·q_i·k_j − L_i), dV_j += P_ijᵀ dout_i,
// dS_ij = P_ij ∘ (dout_i·v_jᵀ − D_i), dQ_i += scale·dS_ij k_j, dK_j += scale·dS_ijᵀ q_i.
// dq [B, T, Hq, D] or dk, dv [B, T, Hkv, D] (contiguous, overwritten) may be undefined Tensors to
// skip them (dk and dv are computed together: pass both or neither).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, bool causal, double scale, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv, AttentionBackwardSchedule schedule = AttentionBackwardSchedule::automatic);

}  // namespace remoe::cpu
