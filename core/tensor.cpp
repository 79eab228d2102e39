#include "core/tensor.h"

#include <iomanip>
#include <ostream>
#include <sstream>

namespace remoe {

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "Tensor::size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

double Tensor::item() const {
  REMOE_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
              " elements, item() needs exactly one");
  Tensor c = to(Device::cpu()).to(DType::f64);
  return *c.data<double>();
}

Tensor Tensor::to(DType dt) const {
  Tensor out = empty(shape(), {dt, device()});
  copy_(out, *this);
  return out;
}

Tensor Tensor::to(Device dev) const {
  Tensor src = contiguous_data(*this);
  Tensor out = empty(shape(), {dtype(), dev});
  if (dev == device()) {
    copy_(out, src);
  } else {
    Allocator& a = allocator_for(dev.is_cpu() ? device() : dev);
    a.copy(out.raw_data(), dev, src.raw_data(), device(), static_cast<size_t>(numel()) * element_size());
  }
  return out;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = contiguous_data(to(Device::cpu()));
  const T* p = c.data<T>();
  return std::vector<T>(p, p + numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bf16> Tensor::to_vector<bf16>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

Tensor& Tensor::set_requires_grad(bool r) {
  REMOE_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require grad, got ",
              dtype_name(dtype()));
  REMOE_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be marked; use detach() first");
  impl().requires_grad = r;
  return *this;
}

Tensor Tensor::detach() const {
  auto d = std::make_shared<TensorImpl>();
  d->storage = impl().storage;
  d->shape = shape();
  d->strides = strides();
  d->offset = offset();
  d->dtype = dtype();
  return Tensor(d);
}

std::string Tensor::str() const {
  std::ostringstream s;
  s << *this;
  return s.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  // Print at most 6 leading elements of each innermost row and 6 rows per level, PyTorch-like.
  Tensor c = t.to(Device::cpu()).to(DType::f64);
  const double* p = c.data<double>();
  const Shape& sh = c.shape();
  bool integral = !is_floating(t.dtype());
  std::ostringstream body;
  body << std::setprecision(6);
  auto print_rec = [&](auto&& self, size_t d, int64_t base) -> void {
    if (d == sh.size()) {
      if (integral) body << static_cast<long long>(p[base]); else body << p[base];
      return;
    }
    int64_t stride = 1;
    for (size_t k = d + 1; k < sh.size(); ++k) stride *= sh[k];
    body << "[";
    for (int64_t i = 0; i < sh[d]; ++i) {
      if (sh[d] > 6 && i == 3) {
        body << "..., ";
        i = sh[d] - 3;
      }
      self(self, d + 1, base + i * stride);
      if (i + 1 < sh[d]) body << (d + 1 == sh.size() ? ", " : ",\n ");
    }
    body << "]";
  };
  print_rec(print_rec, 0, 0);
  os << "tensor(" << body.str() << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (!t.device().is_cpu()) os << ", device=" << t.device().str();
  if (t.requires_grad()) os << ", requires_grad=true";
  return os << ")";
}

}  // namespace remoe
