// Reductions: sum, mean, max, argmax, and sum_to (which undoes broadcasting in backward rules).
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
