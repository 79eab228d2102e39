#include "models/routers.h"

namespace remoe {
namespace {

// Router math runs in at least f32 (the paper's fp32 router); f64 stays f64 (gradient checks).
DType router_dtype(const Tensor& logits) { return logits.dtype() == DType::f64 ? DType::f64 : DType::f32; }

}  // namespace

RouterOutput route_topk(const Tensor& logits, int64_t k, double aux_coeff) {
  REMOE_CHECK(logits.dim() == 2, "route_topk: logits must be [T, E], got ", shape_str(logits.shape()));
  const int64_t T = logits.size(0), E = logits.size(1);
  REMOE_CHECK(k >= 1 && k <= E, "route_topk: k = ", k, " must be in [1, E = ", E, "]");
  const DType dt = router_dtype(logits);
  Tensor probs = softmax(cast(logits, dt), -1);  // [T, E], fp32 as in the paper
  TopK top = topk(probs, k, -1);                          // [T, k]
  RouterOutput out;
  out.tokens = T;
  out.experts = E;
  Tensor token_ids = arange(0, static_cast<double>(T), 1, {DType::i64});
  out.routing.token = reshape(contiguous(expand(reshape(token_ids, {T, 1}), {T, k})), {T * k});
  out.routing.expert = reshape(top.indices, {T * k});
  out.routing.gate = reshape(top.values, {T * k});
  out.counts = bincount(out.routing.expert, E);
  out.active_pairs = T * k;
  // aux = coeff · E/(k·T²) · Σ_e P_e·c_e with P_e = Σ_t p_te; c_e is a constant.
  Tensor p_sum = sum(probs, {0});
  out.aux_loss = mul(sum(mul(p_sum, out.counts.to(dt))),
                     aux_coeff * static_cast<double>(E) / (static_cast<double>(k) * T * T));
  return out;
}

RouterOutput route_relu(const Tensor& logits, int64_t k, bool load_balanced) {
  REMOE_CHECK(logits.dim() == 2, "route_relu: logits must be [T, E], got ", shape_str(logits.shape()));
  const int64_t T = logits.size(0), E = logits.size(1);
  REMOE_CHECK(k >= 1 && k <= E, "route_relu: k = ", k, " must be in [1, E = ", E, "]");
  const DType dt = router_dtype(logits);
  Tensor R = relu(cast(logits, dt));  // [T, E], gates; may exceed 1
  Tensor active = gt(R.detach(), 0.0);
  RouterOutput out;
  out.tokens = T;
  out.experts = E;
  Tensor token_grid = expand(reshape(arange(0, static_cast<double>(T), 1, {DType::i64}), {T, 1}), {T, E});
  Tensor expert_grid = expand(reshape(arange(0, static_cast<double>(E), 1, {DType::i64}), {1, E}), {T, E});
  out.routing.token = masked_select(token_grid, active);
  out.routing.expert = masked_select(expert_grid, active);
  out.routing.gate = masked_select(R, active);
  out.counts = bincount(out.routing.expert, E);
  out.active_pairs = out.routing.token.numel();
  // Penalty of this layer: Σ_t Σ_e f_e·R_te / T, f_e = E/(k·T)·c_e (Eq. 10–11) or 1 (Eq. 9).
  Tensor weighted = load_balanced
                        ? mul(R, reshape(mul(out.counts.to(dt), static_cast<double>(E) / (static_cast<double>(k) * T)), {1, E}))
                        : R;
  out.reg_loss = div(sum(weighted), static_cast<double>(T));
  return out;
}

}  // namespace remoe
