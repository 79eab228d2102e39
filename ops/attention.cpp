// Scaled-dot-product attention with grouped-query heads: the fused streaming op (forward and
// backward through ops/cpu/attention) and the composed reference built from matmul and softmax.
#include <cmath>
#include <limits>

#include "ops/common.h"
#include "ops/composed_vjp.h"
#include "ops/cpu/attention.h"
#include "ops/ops.h"

namespace remoe {
namespace {

std::string shapes_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  return "q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) + ", v " + shape_str(v.shape());
}

// The checks both versions share; returns the common device.
Device check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  Device dev = common_device(op, {q, k, v});
  const std::string shapes = shapes_of(q, k, v);
  REMOE_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": q, k and v must have rank 4 ([B, T, H, D]), got ",
              shapes);
  REMOE_CHECK(k.shape() == v.shape(), op, ": k and v shapes differ (", shapes, ")");
  REMOE_CHECK(q.shape()[0] == k.shape()[0] && q.shape()[1] == k.shape()[1], op,
              ": q and k/v differ in batch or time (B, T axes): ", shapes);
  REMOE_CHECK(q.shape()[3] == k.shape()[3], op, ": head dim D differs between q and k/v: ", shapes);
  REMOE_CHECK(q.shape()[3] > 0, op, ": head dim D must be positive: ", shapes);
  REMOE_CHECK(k.shape()[2] > 0 && q.shape()[2] % k.shape()[2] == 0, op, ": query heads Hq = ", q.shape()[2],
              " must be a positive multiple of kv heads Hkv = ", k.shape()[2], " (", shapes, ")");
  REMOE_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, ": dtypes differ (q ", dtype_name(q.dtype()),
              ", k ", dtype_name(k.dtype()), ", v ", dtype_name(v.dtype()), "; ", shapes, ")");
  REMOE_CHECK(q.dtype() == DType::f32 || q.dtype() == DType::f64, op, ": dtype ", dtype_name(q.dtype()),
              " is not supported (f32 and f64 are; ", shapes, ")");
  return dev;
}

// The kernels read q, k, v in place when their last axis is contiguous (any other strides, e.g.
// slices of a fused QKV projection, are fine); otherwise a contiguous copy.
Tensor rows_readable(const Tensor& x) { return x.strides()[3] == 1 ? x : contiguous_data(x); }

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  const char* op = "attention";
  Device dev = check_attention(op, q, k, v);
  require_cpu(op, dev);
  const int64_t B = q.shape()[0], T = q.shape()[1], Hq = q.shape()[2], D = q.shape()[3];
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor qd = rows_readable(q).detach(), kd = rows_readable(k).detach(), vd = rows_readable(v).detach();
  Tensor out = empty({B, T, Hq, D}, {q.dtype(), dev});
  Tensor lse = empty({B, Hq, T}, {q.dtype(), dev});  // per query row: log Σ_j exp(scale·q·k_j)
  cpu::attention_forward(qd, kd, vd, causal, scale, out, lse);
  Tensor o = out.detach();
  return record(op, out, {q, k, v},
                [q, k, v, qd, kd, vd, o, lse, causal, scale](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
                  if (grad_enabled())  // create_graph: a recorded gradient, through the composed formula
                    return composed_vjp([causal](const std::vector<Tensor>& in) {
                      return composed::attention(in[0], in[1], in[2], causal);
                    }, {q, k, v}, g, need);
                  require_cpu("attention backward", g.device());
                  Tensor gc = contiguous_data(g);
                  Tensor dq, dk, dv;
                  if (need[0]) dq = empty(qd.shape(), {qd.dtype(), qd.device()});
                  if (need[1] || need[2]) {
                    dk = empty(kd.shape(), {kd.dtype(), kd.device()});
                    dv = empty(vd.shape(), {vd.dtype(), vd.device()});
                  }
                  cpu::attention_backward(qd, kd, vd, o, lse, gc, causal, scale, dq, dk, dv);
                  return {dq, need[1] ? dk : Tensor(), need[2] ? dv : Tensor()};
                });
}

namespace composed {

// softmax(q·kᵀ/√D + mask)·v, head by head, with the kv heads repeated to match the query heads.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  check_attention("attention", q, k, v);
  const int64_t B = q.shape()[0], T = q.shape()[1], Hq = q.shape()[2], Hkv = k.shape()[2], D = q.shape()[3];
  const int64_t G = Hq / Hkv;
  // [B, T, Hkv, D] -> [B, T, Hkv, G, D] (a broadcast view) -> [B, T, Hq, D]: query head h = g·G + r
  // reads kv head g = h / G.
  auto repeat_heads = [&](const Tensor& x) {
    return G == 1 ? x : reshape(expand(unsqueeze(x, 3), {B, T, Hkv, G, D}), {B, T, Hq, D});
  };
  Tensor qh = permute(q, {0, 2, 1, 3});  // [B, H, T, D]
  Tensor kh = permute(repeat_heads(k), {0, 2, 1, 3});
  Tensor vh = permute(repeat_heads(v), {0, 2, 1, 3});
  Tensor scores = mul(matmul(qh, transpose(kh, -2, -1)), 1.0 / std::sqrt(static_cast<double>(D)));  // [B, H, T, T]
  if (causal) {
    // Query i sees key j iff j <= i: the [T, T] mask from the comparison of two aranges.
    Tensor pos = arange(0, static_cast<double>(T), 1, {DType::f32, q.device()});
    Tensor allowed = le(reshape(pos, {1, T}), reshape(pos, {T, 1}));
    Tensor minus_inf = scalar_tensor(-std::numeric_limits<double>::infinity(), {q.dtype(), q.device()});
    scores = where(allowed, scores, minus_inf);
  }
  Tensor o = matmul(softmax(scores, -1), vh);  // [B, H, T, D]
  return permute(o, {0, 2, 1, 3});
}

}  // namespace composed
}  // namespace remoe
