#include "models/data_parallel.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "ops/ops.h"

namespace remoe {

Batch rank_share(const Batch& global, const Communicator& dp) {
  const int64_t B = global.inputs.size(0), N = dp.size(), r = dp.rank();
  if (N == 1) return global;
  REMOE_CHECK(B % N == 0, "data parallel: train.batch_size = ", B, " sequences per micro-batch is not a multiple of the ",
              N, " ranks");
  const int64_t rows = B / N;
  return {contiguous(slice(global.inputs, 0, r * rows, (r + 1) * rows)),
          contiguous(slice(global.targets, 0, r * rows, (r + 1) * rows))};
}

void broadcast_parameters(const std::vector<Tensor>& params, Communicator& dp) {
  if (dp.size() == 1) return;
  for (const Tensor& p : params) {
    REMOE_CHECK(p.is_contiguous(), "broadcast_parameters: a parameter is not contiguous");
    dp.broadcast(p.raw_data(), p.numel() * static_cast<int64_t>(p.element_size()), 0);
  }
}

namespace {

// Every parameter's gradient as a contiguous tensor of its dtype (zeros where it had none).
std::vector<Tensor> dense_gradients(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) g = zeros(p.shape(), {p.dtype()});
    else if (!g.is_contiguous()) g = contiguous(g);
    p.set_grad(g);
    grads.push_back(g);
  }
  return grads;
}

}  // namespace

void average_gradients(const std::vector<Tensor>& params, Communicator& dp, int64_t bucket_elements) {
  if (dp.size() == 1) return;
  std::vector<Tensor> grads = dense_gradients(params);
  // Buckets of consecutive same-dtype gradients, copied into one buffer per all-reduce.
  size_t i = 0;
  while (i < grads.size()) {
    const DType dt = grads[i].dtype();
    const size_t esize = grads[i].element_size();
    size_t j = i;
    int64_t n = 0;
    while (j < grads.size() && grads[j].dtype() == dt && (j == i || n + grads[j].numel() <= bucket_elements))
      n += grads[j++].numel();
    std::vector<char> buffer(static_cast<size_t>(n) * esize);
    size_t off = 0;
    for (size_t g = i; g < j; ++g) {
      std::memcpy(buffer.data() + off, grads[g].raw_data(), static_cast<size_t>(grads[g].numel()) * esize);
      off += static_cast<size_t>(grads[g].numel()) * esize;
    }
    dp.all_reduce(buffer.data(), n, dt, ReduceOp::mean);
    off = 0;
    for (size_t g = i; g < j; ++g) {
      std::memcpy(grads[g].raw_data(), buffer.data() + off, static_cast<size_t>(grads[g].numel()) * esize);
      off += static_cast<size_t>(grads[g].numel()) * esize;
    }
    i = j;
  }
}

}  // namespace remoe
