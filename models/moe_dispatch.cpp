#include "models/moe_dispatch.h"

namespace remoe {
namespace {

Tensor swiglu_expert(const Tensor& x, const ExpertWeights& w, int64_t e) {
  return matmul(swiglu(matmul(x, w.gate[e]), matmul(x, w.up[e])), w.down[e]);
}

}  // namespace

Tensor moe_dispatch(const Tensor& x, const Routing& routing, const Tensor& counts, const ExpertWeights& experts) {
  REMOE_CHECK(x.dim() == 2, "moe_dispatch: x must be [T, d], got ", shape_str(x.shape()));
  REMOE_CHECK(counts.numel() == experts.size(), "moe_dispatch: ", counts.numel(), " expert counts for ",
              experts.size(), " experts");
  const int64_t T = x.size(0), d = x.size(1);
  Tensor out = zeros({T, d}, {x.dtype(), x.device()});
  if (routing.token.numel() == 0) return out;  // every token routed nowhere: only the residual passes

  // Sort the triples by expert (stable, so tokens keep their order inside an expert's block).
  Tensor order = argsort(routing.expert);
  Tensor token_sorted = index_select(routing.token, 0, order);
  Tensor gate_sorted = index_select(routing.gate, 0, order);
  Tensor rows = index_select(x, 0, token_sorted);  // [N, d], expert e's rows are contiguous

  // Every non-empty expert's SwiGLU on its contiguous block of rows, in one fused op.
  std::vector<int64_t> count = counts.to_vector<int64_t>();
  int64_t routed = 0;
  for (int64_t c : count) routed += c;
  REMOE_CHECK(routed == routing.token.numel(), "moe_dispatch: counts sum to ", routed, " but there are ",
              routing.token.numel(), " routed pairs");
  Tensor y = grouped_swiglu(rows, count, experts.gate, experts.up, experts.down);  // [N, d]
  Tensor weighted = mul(y, reshape(cast(gate_sorted, y.dtype()), {-1, 1}));  // gate each row
  return index_add(out, 0, token_sorted, weighted);
}

Tensor moe_reference(const Tensor& x, const Routing& routing, const ExpertWeights& experts) {
  const int64_t T = x.size(0);
  std::vector<int64_t> tok = routing.token.to_vector<int64_t>(), exp = routing.expert.to_vector<int64_t>();
  std::vector<Tensor> rows;
  for (int64_t t = 0; t < T; ++t) {
    Tensor xt = slice(x, 0, t, t + 1);
    Tensor yt = zeros({1, x.size(1)}, {x.dtype()});
    for (size_t i = 0; i < tok.size(); ++i) {
      if (tok[i] != t) continue;
      Tensor g = cast(reshape(slice(routing.gate, 0, static_cast<int64_t>(i), static_cast<int64_t>(i) + 1), {1, 1}), x.dtype());
      yt = add(yt, mul(swiglu_expert(xt, experts, exp[i]), g));
    }
    rows.push_back(yt);
  }
  return cat(rows, 0);
}

}  // namespace remoe
