// Shape and view ops. Views are built with make_view over the input's storage; their backward
// rules map the gradient back to the input's shape (and, for slices, into a zero tensor).
#include <algorithm>
#include <numeric>

#include "ops/common.h"
#include "ops/ops.h"

namespace remoe {
namespace {

using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// The strides a reshape of `t` to `shape` can view with, or {} when the layout needs a copy.
// Groups the old axes that merge into / split from each new axis (as NumPy's attempt_nocopy).
Shape view_strides(const Tensor& t, const Shape& shape) {
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  if (t.numel() == 0) return contiguous_strides(shape);
  Shape ns(shape.size(), 0);
  size_t oi = 0, ni = 0;
  while (oi < os.size() || ni < shape.size()) {
    // skip size-1 axes: they take any stride
    if (ni < shape.size() && shape[ni] == 1) { ns[ni] = 1; ++ni; continue; }
    if (oi < os.size() && os[oi] == 1) { ++oi; continue; }
    if (oi >= os.size() || ni >= shape.size()) return {};
    size_t o0 = oi, n0 = ni;
    int64_t op = os[oi++], np = shape[ni++];
    while (op != np) {
      if (op < np) { if (oi >= os.size()) return {}; op *= os[oi++]; }
      else { if (ni >= shape.size()) return {}; np *= shape[ni++]; }
    }
    for (size_t k = o0; k + 1 < oi; ++k) {  // the old group must be contiguous among itself
      if (os[k] == 1) continue;
      int64_t next = k + 1;
      while (next < static_cast<int64_t>(oi) && os[next] == 1) ++next;
      if (next < static_cast<int64_t>(oi) && ost[k] != ost[next] * os[next]) return {};
    }
    int64_t stride = 1;  // innermost stride of the group
    for (size_t k = oi; k-- > o0;) if (os[k] != 1) { stride = ost[k]; break; }
    for (size_t k = ni; k-- > n0;) { ns[k] = stride; stride *= shape[k]; }
  }
  return ns;
}

Shape infer_shape(const Shape& shape, int64_t numel, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      REMOE_CHECK(infer < 0, "reshape: more than one -1 in target shape ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      REMOE_CHECK(out[i] >= 0, "reshape: negative size in target shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    REMOE_CHECK(known != 0 && numel % known == 0, "reshape: cannot reshape ", shape_str(from), " to ", shape_str(shape));
    out[infer] = numel / known;
  }
  REMOE_CHECK(shape_numel(out) == numel, "reshape: cannot reshape ", shape_str(from), " (", numel, " elements) to ",
              shape_str(shape));
  return out;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape target = infer_shape(shape, x.numel(), x.shape());
  Shape st = view_strides(x, target);
  Tensor out;
  if (!st.empty() || target.empty()) {
    out = make_view(x, target, st, x.offset());
  } else {  // the layout cannot be viewed with the new shape: copy first
    Tensor c = contiguous_data(x);
    out = make_view(c, target, contiguous_strides(target), c.offset());
  }
  Shape in_shape = x.shape();
  return record("reshape", out, {x}, [in_shape](const Tensor& g, const Needs&) -> Grads { return {reshape(g, in_shape)}; });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = normalize_dim(start_dim, x.dim(), "flatten"), e = normalize_dim(end_dim, x.dim(), "flatten");
  REMOE_CHECK(s <= e, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape sh(x.shape().begin(), x.shape().begin() + s);
  int64_t m = 1;
  for (int64_t i = s; i <= e; ++i) m *= x.shape()[i];
  sh.push_back(m);
  sh.insert(sh.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, sh);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  REMOE_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute: ", dims.size(), " axes given for a tensor of shape ",
              shape_str(x.shape()));
  Shape sh(dims.size()), st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = normalize_dim(dims[i], x.dim(), "permute");
    REMOE_CHECK(inverse[d] < 0, "permute: axis ", dims[i], " repeated in ", shape_str(Shape(dims)));
    inverse[d] = static_cast<int64_t>(i);
    sh[i] = x.shape()[d];
    st[i] = x.strides()[d];
  }
  Tensor out = make_view(x, sh, st, x.offset());
  return record("permute", out, {x}, [inverse](const Tensor& g, const Needs&) -> Grads { return {permute(g, inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  std::vector<int64_t> dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[normalize_dim(d0, x.dim(), "transpose")], dims[normalize_dim(d1, x.dim(), "transpose")]);
  return permute(x, dims);
}

namespace {

// The adjoint of slice: g written into the window (axis d, from s, every step-th entry) of a zero
// tensor of in_shape. Recorded, with the slice as its own adjoint, so that a gradient that passed
// through a slice can be differentiated again (create_graph).
Tensor slice_adjoint(const Tensor& g, const Shape& in_shape, int64_t d, int64_t s, int64_t step) {
  Tensor gx = zeros(in_shape, {g.dtype(), g.device()});
  Shape window_strides = gx.strides();
  window_strides[d] *= step;
  copy_(make_view(gx, g.shape(), window_strides, s * gx.strides()[d]), g);
  const int64_t end = s + g.shape()[d] * step;
  return record("slice_adjoint", gx, {g}, [d, s, end, step](const Tensor& gg, const Needs&) -> Grads {
    return {slice(gg, d, s, end, step)};
  });
}

}  // namespace

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = normalize_dim(dim, x.dim(), "slice");
  REMOE_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = x.shape()[d];
  auto clamp = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  int64_t s = clamp(start), e = std::max(clamp(end), clamp(start));
  Shape sh = x.shape(), st = x.strides();
  sh[d] = (e - s + step - 1) / step;
  st[d] *= step;
  Tensor out = make_view(x, sh, st, x.offset() + s * x.strides()[d]);
  Shape in_shape = x.shape();
  return record("slice", out, {x}, [in_shape, d, s, step](const Tensor& g, const Needs&) -> Grads {
    return {slice_adjoint(g, in_shape, d, s, step)};
  });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  int64_t d = normalize_dim(dim, x.dim(), "select");
  int64_t n = x.shape()[d];
  REMOE_CHECK(index >= -n && index < n, "select: index ", index, " out of range for axis ", dim, " of size ", n);
  int64_t i = index < 0 ? index + n : index;
  return squeeze(slice(x, d, i, i + 1), d);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  REMOE_CHECK(shape.size() >= x.shape().size(), "expand: cannot expand ", shape_str(x.shape()), " to fewer axes ",
              shape_str(shape));
  size_t lead = shape.size() - x.shape().size();
  Shape st(shape.size(), 0), target = shape;
  for (size_t i = 0; i < x.shape().size(); ++i) {
    int64_t have = x.shape()[i], want = shape[lead + i];
    if (want == -1) want = target[lead + i] = have;
    REMOE_CHECK(have == want || have == 1, "expand: cannot expand ", shape_str(x.shape()), " to ", shape_str(shape));
    st[lead + i] = have == want ? x.strides()[i] : 0;
  }
  Tensor out = make_view(x, target, st, x.offset());
  Shape in_shape = x.shape();
  return record("expand", out, {x}, [in_shape](const Tensor& g, const Needs&) -> Grads { return {sum_to(g, in_shape)}; });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim(dim, x.dim(), "squeeze");
  REMOE_CHECK(x.shape()[d] == 1, "squeeze: axis ", dim, " of ", shape_str(x.shape()), " has size ", x.shape()[d], ", not 1");
  Shape sh = x.shape();
  sh.erase(sh.begin() + d);
  return reshape(x, sh);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim(dim, x.dim() + 1, "unsqueeze");
  Shape sh = x.shape();
  sh.insert(sh.begin() + d, 1);
  return reshape(x, sh);
}

Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : clone(x); }

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  REMOE_CHECK(!xs.empty(), "cat: needs at least one tensor");
  const Tensor& x0 = xs[0];
  int64_t d = normalize_dim(dim, x0.dim(), "cat");
  Shape sh = x0.shape();
  sh[d] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    REMOE_CHECK(x.dim() == x0.dim(), "cat: shapes ", shape_str(x0.shape()), " and ", shape_str(x.shape()), " differ in rank");
    for (int64_t i = 0; i < x.dim(); ++i)
      REMOE_CHECK(i == d || x.shape()[i] == x0.shape()[i], "cat: shapes ", shape_str(x0.shape()), " and ",
                  shape_str(x.shape()), " differ outside axis ", dim);
    check_same_dtype("cat", x0, x);
    common_device("cat", {x0, x});
    sizes.push_back(x.shape()[d]);
    sh[d] += x.shape()[d];
  }
  Tensor out = empty(sh, {x0.dtype(), x0.device()});
  int64_t at = 0;
  for (const Tensor& x : xs) {
    Shape part = out.shape();
    part[d] = x.shape()[d];
    copy_(make_view(out, part, out.strides(), at * out.strides()[d]), x);
    at += x.shape()[d];
  }
  return record("cat", out, xs, [d, sizes](const Tensor& g, const Needs& need) -> Grads {
    Grads gs;
    int64_t from = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      gs.push_back(need[i] ? slice(g, d, from, from + sizes[i]) : Tensor());
      from += sizes[i];
    }
    return gs;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  REMOE_CHECK(!xs.empty(), "stack: needs at least one tensor");
  int64_t d = normalize_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (const Tensor& x : xs) {
    REMOE_CHECK(x.shape() == xs[0].shape(), "stack: shapes ", shape_str(xs[0].shape()), " and ", shape_str(x.shape()),
                " differ");
    parts.push_back(unsqueeze(x, d));
  }
  return cat(parts, d);
}

}  // namespace remoe
