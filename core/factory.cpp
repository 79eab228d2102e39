#include <cmath>

#include "core/random.h"
#include "core/tensor.h"

namespace remoe {
namespace {

// Writes f(i) (a double) into every element of a fresh contiguous CPU tensor, then moves it to
// opt.device. Factories are not hot paths; one implementation for every dtype and device.
template <class F>
Tensor fill_with(const Shape& shape, TensorOptions opt, F f) {
  for (int64_t d : shape) REMOE_CHECK(d >= 0, "tensor factory: negative size in shape ", shape_str(shape));
  Tensor cpu = empty(shape, {DType::f64, Device::cpu()});
  double* p = cpu.data<double>();
  int64_t n = cpu.numel();
  for (int64_t i = 0; i < n; ++i) p[i] = f(i);
  Tensor typed = opt.dtype == DType::f64 ? cpu : cpu.to(opt.dtype);
  return opt.device.is_cpu() ? typed : typed.to(opt.device);
}

}  // namespace

Tensor empty(const Shape& shape, TensorOptions opt) {
  for (int64_t d : shape) REMOE_CHECK(d >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(opt.dtype),
                                            opt.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = opt.dtype;
  return Tensor(impl);
}

Tensor full(const Shape& shape, double value, TensorOptions opt) {
  return fill_with(shape, opt, [&](int64_t) { return value; });
}
Tensor zeros(const Shape& shape, TensorOptions opt) { return full(shape, 0.0, opt); }
Tensor ones(const Shape& shape, TensorOptions opt) { return full(shape, 1.0, opt); }
Tensor scalar_tensor(double value, TensorOptions opt) { return full({}, value, opt); }

Tensor arange(double start, double end, double step, TensorOptions opt) {
  REMOE_CHECK(step != 0, "arange: step must be non-zero");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  return fill_with({n}, opt, [&](int64_t i) { return start + static_cast<double>(i) * step; });
}

Tensor empty_like(const Tensor& t) { return empty(t.shape(), {t.dtype(), t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {t.dtype(), t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {t.dtype(), t.device()}); }

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  REMOE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor cpu = empty(shape, {dtype_of<T>(), Device::cpu()});
  std::copy(values.begin(), values.end(), cpu.data<T>());
  return device.is_cpu() ? cpu : cpu.to(device);
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<bf16>(const std::vector<bf16>&, const Shape&, Device);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, Device);

Tensor randn(const Shape& shape, Generator& gen, TensorOptions opt, double mean, double std) {
  uint64_t base = gen.offset;
  gen.offset += static_cast<uint64_t>(shape_numel(shape));
  return fill_with(shape, opt, [&](int64_t i) { return std::fma(std, philox_normal(gen.seed, base + i), mean); });
}

Tensor uniform(const Shape& shape, Generator& gen, TensorOptions opt, double lo, double hi) {
  uint64_t base = gen.offset;
  gen.offset += static_cast<uint64_t>(shape_numel(shape));
  return fill_with(shape, opt, [&](int64_t i) { return std::fma(hi - lo, static_cast<double>(philox_uniform(gen.seed, base + i)), lo); });
}

Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, TensorOptions opt) {
  REMOE_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  uint64_t base = gen.offset;
  gen.offset += static_cast<uint64_t>(shape_numel(shape));
  uint64_t span = static_cast<uint64_t>(hi - lo);
  return fill_with(shape, opt, [&](int64_t i) {
    Philox4x32 r = philox4x32(base + static_cast<uint64_t>(i), 0, gen.seed);
    uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
    return static_cast<double>(lo + static_cast<int64_t>(bits % span));
  });
}

}  // namespace remoe
