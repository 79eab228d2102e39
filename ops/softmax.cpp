// The softmax family: softmax, log_softmax (any axis), and the fused softmax cross-entropy with
// its composed reference. softmax / log_softmax run a CPU kernel over x seen as [outer, n, inner]
// (no permutation for a middle axis) and have backward rules written with public ops;
// cross_entropy has a fused forward and backward kernel.
#include <algorithm>

#include "ops/common.h"
#include "ops/composed_vjp.h"
#include "ops/cpu/softmax.h"
#include "ops/ops.h"

namespace remoe {
namespace {

// Computes softmax or log_softmax of x over axis d (already normalised; x of rank >= 1).
Tensor softmax_forward(const char* op, const Tensor& x, int64_t d, bool log) {
  Device dev = common_device(op, {x});
  check_floating(op, x);
  require_cpu(op, dev);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  Tensor out = empty(x.shape(), {x.dtype(), dev});
  cpu::softmax(contiguous_data(x), outer, x.shape()[d], inner, log, out);
  return out;
}

// Checks cross_entropy's arguments (messages name `op`, both shapes, and a bad target's value and
// row) and returns the targets as a contiguous i64 tensor.
Tensor checked_targets(const char* op, const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  common_device(op, {logits, targets});
  check_floating(op, logits);
  REMOE_CHECK(logits.dim() == 2, op, ": logits must be [N, V], got ", shape_str(logits.shape()), " (targets ",
              shape_str(targets.shape()), ")");
  REMOE_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32, op,
              ": targets must be an integer tensor (i64 or i32), got ", dtype_name(targets.dtype()), " ",
              shape_str(targets.shape()), " (logits ", shape_str(logits.shape()), ")");
  REMOE_CHECK(targets.dim() == 1 && targets.shape()[0] == logits.shape()[0], op, ": targets ",
              shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()), " (expected [",
              logits.shape()[0], "])");
  Tensor t = contiguous_data(targets.dtype() == DType::i64 ? targets : targets.to(DType::i64));
  Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
  const int64_t* tp = host.data<int64_t>();
  const int64_t V = logits.shape()[1];
  for (int64_t i = 0; i < host.numel(); ++i) {
    REMOE_CHECK(tp[i] == ignore_index || (tp[i] >= 0 && tp[i] < V), op, ": target ", tp[i], " (row ", i,
                ") is out of range [0, ", V, ") for logits ", shape_str(logits.shape()), " (ignore_index ",
                ignore_index, ")");
  }
  return t;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) {  // a single element: its own axis
    normalize_dim(dim, 0, "softmax");
    return reshape(softmax(reshape(x, {1}), 0), {});
  }
  const int64_t d = normalize_dim(dim, x.dim(), "softmax");
  Tensor out = softmax_forward("softmax", x, d, false);
  Tensor y = out.detach();
  return record("softmax", out, {x}, [x, y, d](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor s = saved_output(y, [&] { return softmax(x, d); });
    return {mul(s, sub(g, sum(mul(g, s), {d}, true)))};  // dx = y·(g − Σ g·y)
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) {
    normalize_dim(dim, 0, "log_softmax");
    return reshape(log_softmax(reshape(x, {1}), 0), {});
  }
  const int64_t d = normalize_dim(dim, x.dim(), "log_softmax");
  Tensor out = softmax_forward("log_softmax", x, d, true);
  Tensor y = out.detach();
  return record("log_softmax", out, {x}, [x, y, d](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor ls = saved_output(y, [&] { return log_softmax(x, d); });
    return {sub(g, mul(exp(ls), sum(g, {d}, true)))};  // dx = g − softmax·Σ g, softmax = exp(y)
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy";
  Tensor t = checked_targets(op, logits, targets, ignore_index);
  Device dev = logits.device();
  require_cpu(op, dev);
  Tensor x = contiguous_data(logits);
  // Each row's logsumexp, as (max, log Σ exp(x − max)), is saved for the backward pass.
  Tensor stats = empty({x.shape()[0], 2}, {x.dtype(), dev});
  int64_t count = 0;
  double total = cpu::cross_entropy_forward(x, t, ignore_index, stats, &count);
  Tensor out = scalar_tensor(count > 0 ? total / static_cast<double>(count) : 0.0, {x.dtype(), dev});
  return record(op, out, {logits}, [logits, targets, x, t, stats, ignore_index, count](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    if (grad_enabled())  // create_graph: a recorded gradient, through the composed formula
      return composed_vjp([targets, ignore_index](const std::vector<Tensor>& in) {
        return composed::cross_entropy(in[0], targets, ignore_index);
      }, {logits}, g, need);
    require_cpu("cross_entropy backward", g.device());
    Tensor gx = empty(x.shape(), {x.dtype(), x.device()});
    // d mean / d logits[i] = (softmax_i − onehot_i) / count for each non-ignored row i.
    double scale = count > 0 ? g.item() / static_cast<double>(count) : 0.0;
    cpu::cross_entropy_backward(x, t, ignore_index, stats, scale, gx);
    return {gx};
  });
}

namespace composed {

// −mean over non-ignored rows of log_softmax(logits)[i, target[i]], without gather: the target
// entry is picked by a one-hot mask (positions 0..V-1 compared with the targets).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  Tensor t = checked_targets("cross_entropy", logits, targets, ignore_index);
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  Device dev = logits.device();
  Tensor logp = log_softmax(logits, -1);                                                       // [N, V]
  Tensor classes = reshape(arange(0, static_cast<double>(V), 1, {DType::i64, dev}), {1, V});  // [1, V]
  Tensor onehot = eq(classes, reshape(t, {N, 1}));                                             // u8 [N, V]
  Tensor zero = scalar_tensor(0.0, {logits.dtype(), dev});
  Tensor picked = sum(where(onehot, logp, zero), {1});                                         // [N]
  Tensor valid = ne(t, static_cast<double>(ignore_index));                                     // u8 [N]
  Tensor nll = where(valid, neg(picked), zero);  // also when ignore_index is a valid class
  double count = sum(valid.to(DType::i64)).item();
  return div(sum(nll), std::max(count, 1.0));
}

}  // namespace composed

}  // namespace remoe
