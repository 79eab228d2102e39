#include "models/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "autograd/node.h"
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

namespace {

// All-reduces the gradients in buckets of consecutive same-dtype tensors (one call each).
void reduce_in_buckets(const std::vector<Tensor>& grads, Communicator& comm, ReduceOp op, int64_t bucket_elements) {
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
    comm.all_reduce(buffer.data(), n, dt, op);
    off = 0;
    for (size_t g = i; g < j; ++g) {
      std::memcpy(grads[g].raw_data(), buffer.data() + off, static_cast<size_t>(grads[g].numel()) * esize);
      off += static_cast<size_t>(grads[g].numel()) * esize;
    }
    i = j;
  }
}

// The parameters that have a gradient on at least one rank of `comm`: a parameter no rank's
// tokens reached (an expert nobody chose) keeps no gradient, so AdamW skips it as it does in a
// single process; the others count as zeros where they have none.
std::vector<Tensor> used_somewhere(const std::vector<Tensor>& params, Communicator& comm) {
  std::vector<int64_t> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].grad().defined();
  if (comm.size() > 1 && !has.empty()) comm.all_reduce(has.data(), static_cast<int64_t>(has.size()), DType::i64, ReduceOp::max);
  std::vector<Tensor> used;
  for (size_t i = 0; i < params.size(); ++i)
    if (has[i]) used.push_back(params[i]);
  return used;
}

// The parameters this rank updates under expert parallelism: every shared one, and the experts it
// holds; the other experts are never used here (their owners train them).
struct ExpertSplit {
  std::vector<Tensor> shared, held;
};

ExpertSplit split_by_expert(const NamedTensors& params, const ExpertParallel& ep) {
  ExpertSplit s;
  for (const auto& [name, p] : params) {
    const int64_t e = expert_index(name);
    if (e < 0) s.shared.push_back(p);
    else if (ep.holds(e)) s.held.push_back(p);
  }
  return s;
}

}  // namespace

void average_gradients(const std::vector<Tensor>& params, Communicator& dp, int64_t bucket_elements) {
  if (dp.size() == 1) return;
  reduce_in_buckets(dense_gradients(used_somewhere(params, dp)), dp, ReduceOp::mean, bucket_elements);
}

double reduce_and_clip_expert_parallel(const NamedTensors& params, const ExpertParallel& ep, double max_norm,
                                       int64_t bucket_elements) {
  ExpertSplit s = split_by_expert(params, ep);
  s.shared = used_somewhere(s.shared, *ep.world);
  s.held = used_somewhere(s.held, *ep.replicas);
  if (ep.world->size() > 1) reduce_in_buckets(dense_gradients(s.shared), *ep.world, ReduceOp::mean, bucket_elements);
  // An expert's gradient on its holder covers the tokens of its expert group; summed over the
  // replicas holding it, it covers every token; each rank's loss is a mean over its own tokens,
  // so the sum is divided by the world size, as the shared gradients' mean is.
  std::vector<Tensor> held = dense_gradients(s.held);
  if (ep.replicas->size() > 1) reduce_in_buckets(held, *ep.replicas, ReduceOp::sum, bucket_elements);
  const double inv_world = 1.0 / static_cast<double>(ep.world->size());
  {
    NoGradGuard guard;
    for (const Tensor& p : s.held) p.set_grad(mul(p.grad(), inv_world));
  }
  // ‖g‖² = shared part (the same on every rank) + each expert once (summed over its group).
  const double sq = gradient_square_sum(s.shared) + ep.group->all_reduce(gradient_square_sum(s.held), ReduceOp::sum);
  const double norm = std::sqrt(sq);
  clip_gradients_to(s.shared, norm, max_norm);
  clip_gradients_to(s.held, norm, max_norm);
  return norm;
}

void gather_experts(const NamedTensors& params, AdamW& optimizer, const ExpertParallel& ep) {
  if (ep.size() == 1) return;
  for (const auto& [name, p] : params) {
    const int64_t e = expert_index(name);
    if (e >= 0) ep.group->broadcast(p.raw_data(), p.numel() * static_cast<int64_t>(p.element_size()), ep.owner(e));
  }
  // The optimizer state: copies (the moments are live tensors), broadcast, then loaded back.
  NamedTensors state;
  for (const auto& [name, t] : optimizer.state_tensors()) {
    Tensor copy = clone(t).detach();
    const int64_t e = expert_index(name);
    if (e >= 0) ep.group->broadcast(copy.raw_data(), copy.numel() * static_cast<int64_t>(copy.element_size()), ep.owner(e));
    state.emplace_back(name, copy);
  }
  optimizer.load_state(state);
}

}  // namespace remoe
