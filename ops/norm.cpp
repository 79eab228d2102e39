// RMSNorm: y = x / sqrt(mean(x², last axis) + eps) · weight. The fused op runs one CPU pass per
// row and saves the per-row rstd for its fused backward; composed::rms_norm is the same formula
// written with basic ops (the test oracle).
#include "ops/common.h"
#include "ops/composed_vjp.h"
#include "ops/cpu/norm.h"
#include "ops/ops.h"

namespace remoe {
namespace {

void check_rms_norm_args(const char* op, const Tensor& x, const Tensor& weight, double eps) {
  common_device(op, {x, weight});
  REMOE_CHECK(x.dim() >= 1, op, ": x must have at least one axis, got shape ", shape_str(x.shape()));
  REMOE_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), op, ": weight shape ", shape_str(weight.shape()),
              " does not match the last axis of x shape ", shape_str(x.shape()), " (expected [", x.size(-1), "])");
  REMOE_CHECK(x.size(-1) > 0, op, ": the normalised axis of x shape ", shape_str(x.shape()), " is empty");
  check_same_dtype(op, x, weight);
  check_floating(op, x);
  REMOE_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  const char* op = "rms_norm";
  check_rms_norm_args(op, x, weight, eps);
  require_cpu(op, x.device());
  Tensor xc = contiguous_data(x), wc = contiguous_data(weight);
  const int64_t D = x.size(-1);
  Tensor out = empty(x.shape(), {x.dtype(), x.device()});
  Tensor rstd = empty({x.numel() / D}, {x.dtype(), x.device()});
  cpu::rms_norm_forward(xc, wc, eps, out, rstd);
  return record(op, out, {x, weight}, [x, weight, eps, xc, wc, rstd](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    if (grad_enabled())  // create_graph: a recorded gradient, through the composed formula
      return composed_vjp([eps](const std::vector<Tensor>& in) { return composed::rms_norm(in[0], in[1], eps); },
                          {x, weight}, g, need);
    // Fused backward: one pass per row for gx, and per-thread partial sums for gw.
    require_cpu("rms_norm backward", g.device());
    Tensor gc = contiguous_data(g);
    Tensor gx = need[0] ? empty_like(xc) : Tensor();
    Tensor gw = need[1] ? empty_like(wc) : Tensor();
    cpu::rms_norm_backward(xc, wc, rstd, gc, gx, gw);
    return {gx, gw};
  });
}

namespace composed {

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_rms_norm_args("composed::rms_norm", x, weight, eps);
  Tensor ms = mean(square(x), {-1}, true);  // mean(x²) over the last axis, kept for broadcasting
  return mul(mul(x, rsqrt(add(ms, eps))), weight);
}

}  // namespace composed
}  // namespace remoe
