// Reductions: sum, mean, max, argmax, and sum_to (which undoes broadcasting in backward rules).
#include <utility>

#include "ops/common.h"
#include "ops/cpu/reduce.h"
#include "ops/ops.h"

namespace remoe {
namespace {

// Flags for the reduced axes (all of them when dims is empty), checking each axis.
std::vector<bool> reduce_flags(const char* op, const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<bool> flags(x.dim(), dims.empty());
  for (int64_t d : dims) {
    int64_t a = normalize_dim(d, x.dim(), op);
    REMOE_CHECK(!flags[a], op, ": axis ", d, " listed twice");
    flags[a] = true;
  }
  return flags;
}

Shape kept_shape(const Shape& s, const std::vector<bool>& flags) {
  Shape k = s;
  for (size_t i = 0; i < s.size(); ++i)
    if (flags[i]) k[i] = 1;
  return k;
}

Shape dropped_shape(const Shape& s, const std::vector<bool>& flags) {
  Shape k;
  for (size_t i = 0; i < s.size(); ++i)
    if (!flags[i]) k.push_back(s[i]);
  return k;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Device dev = common_device("sum", {x});
  require_cpu("sum", dev);
  std::vector<bool> flags = reduce_flags("sum", x, dims);
  Shape kept = kept_shape(x.shape(), flags);
  Tensor out = empty(kept, {x.dtype(), dev});
  cpu::sum(contiguous_data(x), flags, out);
  if (!keepdim) out = make_view(out, dropped_shape(x.shape(), flags), contiguous_strides(dropped_shape(x.shape(), flags)), 0);
  Shape in_shape = x.shape();
  return record("sum", out, {x}, [in_shape, kept](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {contiguous(expand(reshape(g, kept), in_shape))};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_floating("mean", x);
  std::vector<bool> flags = reduce_flags("mean", x, dims);
  int64_t count = 1;
  for (size_t i = 0; i < flags.size(); ++i)
    if (flags[i]) count *= x.shape()[i];
  return div(sum(x, dims, keepdim), static_cast<double>(count));
}

namespace {

// The maximum of x along `dim` and its first index, both with x's shape less that axis (or with
// it kept as 1). x of rank 0 is treated as [1].
std::pair<Tensor, Tensor> max_forward(const char* op, const Tensor& x, int64_t dim, bool keepdim) {
  Device dev = common_device(op, {x});
  int64_t d = normalize_dim(dim, x.dim(), op);
  REMOE_CHECK(x.dim() == 0 || x.shape()[d] > 0, op, ": cannot reduce axis ", dim, " of size 0 (shape ",
              shape_str(x.shape()), ")");
  require_cpu(op, dev);
  Shape out_shape = x.shape();
  int64_t outer = 1, n = 1, inner = 1;
  if (x.dim() > 0) {
    for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
    n = x.shape()[d];
    for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
    if (keepdim) {
      out_shape[d] = 1;
    } else {
      out_shape.erase(out_shape.begin() + d);
    }
  }
  Tensor values = empty(out_shape, {x.dtype(), dev}), indices = empty(out_shape, {DType::i64, dev});
  cpu::max(contiguous_data(x), outer, n, inner, values, indices);
  return {values, indices};
}

}  // namespace

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  auto [values, indices] = max_forward("max", x, dim, keepdim);
  if (x.dim() == 0) {
    return record("max", values, {x}, [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
  }
  const int64_t d = normalize_dim(dim, x.dim(), "max");
  Shape in_shape = x.shape();
  // The gradient goes to the first maximal element: a one-hot along the axis, built by comparing
  // the positions 0..n-1 (laid along axis d) with the saved indices (keepdim layout).
  Tensor idx = keepdim ? indices : unsqueeze(indices, d);
  return record("max", values, {x}, [in_shape, d, idx, keepdim](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Shape pos_shape(in_shape.size(), 1);
    pos_shape[d] = in_shape[d];
    Tensor pos = reshape(arange(0, static_cast<double>(in_shape[d]), 1, {DType::i64, g.device()}), pos_shape);
    Tensor gk = keepdim ? g : unsqueeze(g, d);
    return {where(eq(pos, idx), gk, scalar_tensor(0.0, {g.dtype(), g.device()}))};
  });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return max_forward("argmax", x, dim, keepdim).second; }

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  REMOE_CHECK(shape.size() <= x.shape().size(), "sum_to: cannot sum ", shape_str(x.shape()), " to more axes ",
              shape_str(shape));
  size_t lead = x.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < x.shape().size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] == 1 && x.shape()[i] != 1) {
      dims.push_back(static_cast<int64_t>(i));
    } else {
      REMOE_CHECK(shape[i - lead] == x.shape()[i], "sum_to: shape ", shape_str(shape), " is not a broadcast source of ",
                  shape_str(x.shape()));
    }
  }
  return reshape(sum(x, dims, true), shape);
}

}  // namespace remoe
