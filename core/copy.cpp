#include "core/strided.h"
#include "core/tensor.h"

namespace remoe {

Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  REMOE_CHECK(shape.size() == strides.size(), "make_view: shape ", shape_str(shape), " and strides ",
              shape_str(strides), " differ in rank");
  // The furthest element the view can touch must lie inside the storage.
  int64_t hi = offset, lo = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) { hi = lo = offset; break; }
    int64_t reach = (shape[i] - 1) * strides[i];
    (reach >= 0 ? hi : lo) += reach;
  }
  int64_t cap = static_cast<int64_t>(t.storage()->nbytes() / t.element_size());
  REMOE_CHECK(lo >= 0 && (shape_numel(shape) == 0 || hi < cap), "make_view: view shape ", shape_str(shape),
              " strides ", shape_str(strides), " offset ", offset, " exceeds storage of ", cap, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = t.dtype();
  return Tensor(impl);
}

void copy_(const Tensor& dst, const Tensor& src) {
  REMOE_CHECK(dst.shape() == src.shape(), "copy_: destination shape ", shape_str(dst.shape()),
              " differs from source shape ", shape_str(src.shape()));
  if (!dst.device().is_cpu() || !src.device().is_cpu()) {
    REMOE_CHECK(dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous(),
                "copy_: strided or converting copies on ", dst.device().str(), "/", src.device().str(),
                " need the device kernel; copy contiguous tensors of one dtype");
    Allocator& a = allocator_for(dst.device().is_cpu() ? src.device() : dst.device());
    a.copy(dst.raw_data(), dst.device(), src.raw_data(), src.device(),
           static_cast<size_t>(src.numel()) * src.element_size());
    return;
  }
  visit_dtype(dst.dtype(), [&](auto dt) {
    using D = typename decltype(dt)::type;
    visit_dtype(src.dtype(), [&](auto st) {
      using S = typename decltype(st)::type;
      D* d = static_cast<D*>(dst.storage()->data());
      const S* s = static_cast<const S*>(src.storage()->data());
      if (dst.is_contiguous() && src.is_contiguous()) {
        d += dst.offset();
        s += src.offset();
        for (int64_t i = 0, n = dst.numel(); i < n; ++i) d[i] = convert<D>(s[i]);
        return;
      }
      Shape ds = dst.strides(), ss = src.strides();
      int64_t doff = dst.offset(), soff = src.offset();
      for_each_strided<2>(dst.shape(), {ds, ss},
                          [&](const std::array<int64_t, 2>& o) { d[doff + o[0]] = convert<D>(s[soff + o[1]]); });
    });
  });
}

Tensor contiguous_data(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), {t.dtype(), t.device()});
  copy_(out, t);
  return out;
}

}  // namespace remoe
