// Tensor: a cheap, shared handle to (storage, shape, strides, offset, dtype) plus autograd state.
// Copying a Tensor copies the handle, not the data. Views (ops::reshape, permute, slice, expand)
// share storage. Differentiable operations are free functions in ops/ops.h; this class holds only
// what a tensor *is*.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace remoe {

struct Node;  // autograd/node.h

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the node that produced this tensor (non-leaf)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t element_size() const { return dtype_size(dtype()); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // Pointer to the first element (storage + offset); T must match dtype().
  template <class T>
  T* data() const {
    REMOE_CHECK(dtype_of<T>() == dtype(), "Tensor::data: tensor has dtype ", dtype_name(dtype()),
                ", requested ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(impl().storage->data()) + impl().offset;
  }
  void* raw_data() const {
    return static_cast<char*>(impl().storage->data()) + impl().offset * element_size();
  }

  // The value of a one-element tensor, converted to double (copies from the device if needed).
  double item() const;
  // A new tensor with the same values in another dtype / on another device (always a copy).
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // Copies this tensor's elements into a new std::vector<T> in row-major order (T matches dtype).
  template <class T>
  std::vector<T> to_vector() const;

  // --- autograd ---
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as a parameter whose gradient backward() accumulates. Returns *this.
  Tensor& set_requires_grad(bool r = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  void zero_grad() const { impl().grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // Backpropagates from this tensor. `grad` defaults to ones for a one-element tensor.
  // The graph is freed afterwards unless retain_graph is set (defined in autograd/engine.cpp).
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // A tensor sharing this one's storage but cut from the graph (no grad_fn, requires_grad false).
  Tensor detach() const;

  std::string str() const;  // values and metadata, as PyTorch prints them (abbreviated)
  TensorImpl& impl() const {
    REMOE_CHECK(impl_ != nullptr, "use of an undefined Tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- construction (core/factory.cpp) ----
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
};

Tensor empty(const Shape& shape, TensorOptions opt = {});
Tensor zeros(const Shape& shape, TensorOptions opt = {});
Tensor ones(const Shape& shape, TensorOptions opt = {});
Tensor full(const Shape& shape, double value, TensorOptions opt = {});
Tensor scalar_tensor(double value, TensorOptions opt = {});  // shape []
// [start, end) in steps of `step`.
Tensor arange(double start, double end, double step = 1, TensorOptions opt = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// A tensor holding a copy of `values` (row-major) with the given shape.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());

// ---- raw (non-differentiable) data movement (core/copy.cpp) ----
// A view of t's storage with the given geometry; bounds are checked against the storage.
Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);
// Copies src into dst elementwise (any strides, converting dtype, same shape; devices may differ
// when both are contiguous). No autograd: this is the kernel behind to(), contiguous() and views.
void copy_(const Tensor& dst, const Tensor& src);
// t itself if it is contiguous, else a contiguous copy. No autograd (kernels use it on inputs).
Tensor contiguous_data(const Tensor& t);

}  // namespace remoe
