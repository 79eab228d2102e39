// Embedding and the index ops behind MoE dispatch: forward through ops/cpu/index, backward rules
// written with these same public ops (each rule is the adjoint of its forward):
//   index_select / embedding  <->  index_add into zeros
//   gather                    <->  scatter_add into zeros
//   masked_select             <->  index_add into zeros at the flat positions of the mask
// Every index is range-checked before a kernel runs: an out-of-range index is an error naming the
// op, the value and the valid range, never a crash.
#include <limits>

#include "ops/common.h"
#include "ops/cpu/index.h"
#include "ops/ops.h"

namespace remoe {
namespace {

Tensor zeros_for(const Shape& shape, const Tensor& g) { return zeros(shape, {g.dtype(), g.device()}); }

// The contiguous index, after checking that every entry lies in [0, n) (n = x.shape()[dim]).
Tensor checked_index(const char* op, const Tensor& index, const Shape& x_shape, int64_t dim) {
  Tensor idx = contiguous_data(index);
  const int64_t n = x_shape[dim];
  if (auto bad = cpu::first_out_of_range(idx, n))
    fail(op, ": index ", *bad, " is out of range [0, ", n, ") for dim ", dim, " of x ", shape_str(x_shape));
  return idx;
}

// A copy of x in fresh contiguous storage (the destination of the scatter kernels).
Tensor contiguous_copy(const Tensor& x) {
  Tensor out = empty(x.shape(), {x.dtype(), x.device()});
  copy_(out, x);
  return out;
}

// g (shape `have`) padded with zeros at the end of each axis up to `want` (have ≤ want per axis).
Tensor pad_to(Tensor g, const Shape& want) {
  for (size_t a = 0; a < want.size(); ++a) {
    if (g.shape()[a] == want[a]) continue;
    Shape zs = g.shape();
    zs[a] = want[a] - g.shape()[a];
    g = cat({g, zeros_for(zs, g)}, static_cast<int64_t>(a));
  }
  return g;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* op = "embedding";
  Device dev = common_device(op, {weight, ids});
  check_integer(op, "ids", ids);
  REMOE_CHECK(weight.dim() == 2, "embedding: weight must be 2-D [V, D], got ", shape_str(weight.shape()), " (ids ",
              shape_str(ids.shape()), ")");
  require_cpu(op, dev);
  const int64_t V = weight.shape()[0], D = weight.shape()[1];
  Tensor idc = contiguous_data(ids);
  if (auto bad = cpu::first_out_of_range(idc, V))
    fail("embedding: id ", *bad, " is out of range [0, ", V, ") (V = ", V, ", weight ", shape_str(weight.shape()), ")");
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = empty(out_shape, {weight.dtype(), dev});
  cpu::index_select(contiguous_data(weight), 0, idc, out);
  Shape wshape = weight.shape();
  return record(op, out, {weight}, [idc, wshape](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    // d weight = Σ over tokens of g's row added at the token's id (repeated ids accumulate).
    const int64_t n = idc.numel();
    return {index_add(zeros_for(wshape, g), 0, reshape(idc, {n}), reshape(g, {n, wshape[1]}))};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const char* op = "index_select";
  Device dev = common_device(op, {x, index});
  check_integer(op, "index", index);
  REMOE_CHECK(index.dim() == 1, "index_select: index must be 1-D, got shape ", shape_str(index.shape()), " (x ",
              shape_str(x.shape()), ")");
  const int64_t d = normalize_dim(dim, x.dim(), op);
  require_cpu(op, dev);
  Tensor idc = checked_index(op, index, x.shape(), d);
  Shape out_shape = x.shape();
  out_shape[d] = index.numel();
  Tensor out = empty(out_shape, {x.dtype(), dev});
  cpu::index_select(contiguous_data(x), d, idc, out);
  Shape xs = x.shape();
  return record(op, out, {x}, [xs, d, idc](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {index_add(zeros_for(xs, g), d, idc, g)};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const char* op = "gather";
  Device dev = common_device(op, {x, index});
  check_integer(op, "index", index);
  REMOE_CHECK(index.dim() == x.dim(), "gather: index ", shape_str(index.shape()), " must have the rank of x ",
              shape_str(x.shape()));
  const int64_t d = normalize_dim(dim, x.dim(), op);
  for (int64_t a = 0; a < x.dim(); ++a)
    REMOE_CHECK(a == d || index.shape()[a] <= x.shape()[a], "gather: index ", shape_str(index.shape()),
                " is larger than x ", shape_str(x.shape()), " at axis ", a, " (only axis ", d, " may differ)");
  require_cpu(op, dev);
  Tensor idc = checked_index(op, index, x.shape(), d);
  Tensor out = empty(index.shape(), {x.dtype(), dev});
  cpu::gather(x, d, idc, out);
  Shape xs = x.shape();
  return record(op, out, {x}, [xs, d, idc](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {scatter_add(zeros_for(xs, g), d, idc, g)};
  });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add";
  Device dev = common_device(op, {x, index, src});
  check_integer(op, "index", index);
  check_same_dtype(op, x, src);
  REMOE_CHECK(index.dim() == x.dim() && src.dim() == x.dim(), "scatter_add: x ", shape_str(x.shape()), ", index ",
              shape_str(index.shape()), " and src ", shape_str(src.shape()), " must have the same rank");
  const int64_t d = normalize_dim(dim, x.dim(), op);
  for (int64_t a = 0; a < x.dim(); ++a) {
    REMOE_CHECK(index.shape()[a] <= src.shape()[a], "scatter_add: index ", shape_str(index.shape()),
                " is larger than src ", shape_str(src.shape()), " at axis ", a);
    REMOE_CHECK(a == d || index.shape()[a] <= x.shape()[a], "scatter_add: index ", shape_str(index.shape()),
                " is larger than x ", shape_str(x.shape()), " at axis ", a, " (only axis ", d, " may differ)");
  }
  require_cpu(op, dev);
  Tensor idc = checked_index(op, index, x.shape(), d);
  Tensor out = contiguous_copy(x);
  cpu::scatter_add_(out, d, idc, src);
  Shape src_shape = src.shape();
  return record(op, out, {x, src}, [d, idc, src_shape](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
    // d x = g (out is x plus something); d src = g read back at the scattered positions, zero for
    // the src entries beyond index's extent (they were never added).
    Tensor gsrc;
    if (needs[1]) gsrc = pad_to(gather(g, d, idc), src_shape);
    return {needs[0] ? g : Tensor(), gsrc};
  });
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "index_add";
  Device dev = common_device(op, {x, index, src});
  check_integer(op, "index", index);
  check_same_dtype(op, x, src);
  REMOE_CHECK(index.dim() == 1, "index_add: index must be 1-D, got shape ", shape_str(index.shape()), " (x ",
              shape_str(x.shape()), ", src ", shape_str(src.shape()), ")");
  const int64_t d = normalize_dim(dim, x.dim(), op);
  Shape want = x.shape();
  want[d] = index.numel();
  REMOE_CHECK(src.shape() == want, "index_add: src ", shape_str(src.shape()), " must be ", shape_str(want),
              " (x ", shape_str(x.shape()), " with axis ", d, " of index's length ", index.numel(), ")");
  require_cpu(op, dev);
  Tensor idc = checked_index(op, index, x.shape(), d);
  Tensor out = contiguous_copy(x);
  cpu::index_add_(out, d, idc, contiguous_data(src));
  return record(op, out, {x, src}, [d, idc](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
    return {needs[0] ? g : Tensor(), needs[1] ? index_select(g, d, idc) : Tensor()};
  });
}

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  const char* op = "topk";
  Device dev = common_device(op, {x});
  const int64_t d = normalize_dim(dim, x.dim(), op);
  const int64_t n = x.shape()[d];
  REMOE_CHECK(k >= 0 && k <= n, "topk: k = ", k, " is out of range [0, ", n, "] for axis ", d, " of x ",
              shape_str(x.shape()));
  require_cpu(op, dev);
  Shape out_shape = x.shape();
  out_shape[d] = k;
  TopK r{empty(out_shape, {x.dtype(), dev}), empty(out_shape, {DType::i64, dev})};
  cpu::topk(contiguous_data(x), k, d, largest, r.values, r.indices);
  Shape xs = x.shape();
  Tensor idx = r.indices;
  // The gradient of each selected value goes back to its position (indices are distinct per row).
  r.values = record(op, r.values, {x}, [xs, d, idx](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {scatter_add(zeros_for(xs, g), d, idx, g)};
  });
  return r;
}

Tensor argsort(const Tensor& keys, int64_t dim, bool descending) {
  const char* op = "argsort";
  Device dev = common_device(op, {keys});
  const int64_t d = normalize_dim(dim, keys.dim(), op);
  require_cpu(op, dev);
  Tensor out = empty(keys.shape(), {DType::i64, dev});
  cpu::argsort(contiguous_data(keys), d, descending, out);
  return out;
}

Tensor bincount(const Tensor& x, int64_t minlength) {
  const char* op = "bincount";
  Device dev = common_device(op, {x});
  check_integer(op, "input", x);
  REMOE_CHECK(x.dim() == 1, "bincount: input must be 1-D, got shape ", shape_str(x.shape()));
  REMOE_CHECK(minlength >= 0, "bincount: minlength must be non-negative, got ", minlength);
  require_cpu(op, dev);
  Tensor xc = contiguous_data(x);
  const cpu::IndexBounds b = cpu::index_bounds(xc);
  if (b.min < 0) {
    auto bad = cpu::first_out_of_range(xc, std::numeric_limits<int64_t>::max());
    fail("bincount: input must be non-negative, got ", bad.value_or(b.min), " (input ", shape_str(x.shape()), ")");
  }
  const int64_t len = std::max(minlength, b.max + 1);
  Tensor out = empty({len}, {DType::i64, dev});
  cpu::bincount(xc, out);
  return out;
}

Tensor masked_select(const Tensor& x, const Tensor& mask) {
  const char* op = "masked_select";
  Device dev = common_device(op, {x, mask});
  REMOE_CHECK(mask.dtype() == DType::u8, "masked_select: mask must be u8 (a comparison's result), got ",
              dtype_name(mask.dtype()), " (mask ", shape_str(mask.shape()), ", x ", shape_str(x.shape()), ")");
  REMOE_CHECK(broadcast_shapes(mask.shape(), x.shape(), op) == x.shape(), "masked_select: mask ",
              shape_str(mask.shape()), " does not broadcast to x ", shape_str(x.shape()));
  require_cpu(op, dev);
  // The row-major positions of the selected elements: the forward is a flat index_select by them,
  // the backward a flat index_add of g into zeros at them.
  Tensor pos = cpu::nonzero_positions(expand(mask, x.shape()));
  Tensor xc = contiguous_data(x);
  const int64_t numel = x.numel();
  Tensor out = empty({pos.numel()}, {x.dtype(), dev});
  cpu::index_select(make_view(xc, {numel}, {1}, xc.offset()), 0, pos, out);
  Shape xs = x.shape();
  return record(op, out, {x}, [xs, numel, pos](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor p = pos.device() == g.device() ? pos : pos.to(g.device());
    return {reshape(index_add(zeros_for({numel}, g), 0, p, g), xs)};
  });
}

}  // namespace remoe
