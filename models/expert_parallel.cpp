#include "models/expert_parallel.h"

#include <cstdlib>
#include <numeric>

#include "autograd/node.h"
#include "core/error.h"
#include "ops/ops.h"

namespace remoe {

ExpertParallel make_expert_parallel(std::shared_ptr<Communicator> world, int64_t P, int64_t experts) {
  REMOE_CHECK(world != nullptr, "expert parallel: no communicator");
  const int64_t W = world->size();
  REMOE_CHECK(P >= 1 && W % P == 0, "dist.expert_parallel = ", P, ": must divide the ", W, " ranks of the job");
  REMOE_CHECK(experts % P == 0, "dist.expert_parallel = ", P, ": must divide the ", experts,
              " experts of a layer (moe.num_experts × moe.granularity)");
  const int r = world->rank(), p = static_cast<int>(P);
  ExpertParallel ep;
  ep.world = world;
  ep.group = P == W ? world : world->split(/*color=*/r / p, /*key=*/r % p);
  ep.replicas = P == 1 ? world : world->split(/*color=*/r % p, /*key=*/r / p);
  ep.experts = experts;
  return ep;
}

int64_t expert_index(const std::string& name) {
  static const std::string kMarker = "ffn.experts.";
  const size_t at = name.find(kMarker);
  if (at == std::string::npos) return -1;
  return std::strtoll(name.c_str() + at + kMarker.size(), nullptr, 10);
}

namespace {

std::vector<int64_t> row_bytes(const std::vector<int64_t>& rows, int64_t row_size) {
  std::vector<int64_t> bytes(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) bytes[r] = rows[r] * row_size;
  return bytes;
}

int64_t total(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }

// Rows this rank sends to each rank of the group: its routed pairs of the experts that rank holds.
std::vector<int64_t> rows_per_owner(const std::vector<int64_t>& counts, const ExpertParallel& ep) {
  std::vector<int64_t> rows(static_cast<size_t>(ep.size()), 0);
  for (size_t e = 0; e < counts.size(); ++e) rows[static_cast<size_t>(ep.owner(static_cast<int64_t>(e)))] += counts[e];
  return rows;
}

// received[q][e]: rows for local expert e that rank q of the group sends here (its counts of the
// experts this rank holds), exchanged as E/P integers per pair of ranks.
std::vector<std::vector<int64_t>> exchange_counts(const std::vector<int64_t>& counts, const ExpertParallel& ep) {
  const int64_t P = ep.size(), per = ep.per_rank();
  std::vector<int64_t> flat(static_cast<size_t>(P * per));
  ep.group->all_to_all_v(counts.data(), std::vector<int64_t>(static_cast<size_t>(P), per * 8), flat.data(),
                         std::vector<int64_t>(static_cast<size_t>(P), per * 8));
  std::vector<std::vector<int64_t>> received(static_cast<size_t>(P));
  for (int64_t q = 0; q < P; ++q) received[static_cast<size_t>(q)].assign(flat.begin() + q * per, flat.begin() + (q + 1) * per);
  return received;
}

// The rows arrive source-major (rank q's rows, each source's block ordered by expert); the experts
// need them expert-major. order[i] = the received row that goes to expert-major position i.
std::vector<int64_t> expert_major_order(const std::vector<std::vector<int64_t>>& received, std::vector<int64_t>& group_rows) {
  const size_t P = received.size(), per = received.empty() ? 0 : received[0].size();
  std::vector<std::vector<int64_t>> start(P, std::vector<int64_t>(per));
  int64_t at = 0;
  for (size_t q = 0; q < P; ++q)
    for (size_t e = 0; e < per; ++e) start[q][e] = at, at += received[q][e];
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(at));
  group_rows.assign(per, 0);
  for (size_t e = 0; e < per; ++e)
    for (size_t q = 0; q < P; ++q) {
      for (int64_t i = 0; i < received[q][e]; ++i) order.push_back(start[q][e] + i);
      group_rows[e] += received[q][e];
    }
  return order;
}

std::vector<int64_t> inverse(const std::vector<int64_t>& order) {
  std::vector<int64_t> inv(order.size());
  for (size_t i = 0; i < order.size(); ++i) inv[static_cast<size_t>(order[i])] = static_cast<int64_t>(i);
  return inv;
}

Tensor index_tensor(const std::vector<int64_t>& v) { return from_vector(v, {static_cast<int64_t>(v.size())}); }

std::vector<Tensor> local_slice(const std::vector<Tensor>& all, const ExpertParallel& ep) {
  return {all.begin() + ep.first_local(), all.begin() + ep.first_local() + ep.per_rank()};
}

// The experts this rank holds, on the rows it received (expert-major), back in received order.
Tensor run_local_experts(const Tensor& received, const std::vector<std::vector<int64_t>>& counts_in,
                         const ExpertWeights& experts, const ExpertParallel& ep) {
  std::vector<int64_t> group_rows;
  const std::vector<int64_t> order = expert_major_order(counts_in, group_rows);
  Tensor rows = index_select(received, 0, index_tensor(order));
  Tensor y = grouped_swiglu(rows, group_rows, local_slice(experts.gate, ep), local_slice(experts.up, ep),
                            local_slice(experts.down, ep));
  return index_select(y, 0, index_tensor(inverse(order)));
}

}  // namespace

Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows,
                       const std::shared_ptr<Communicator>& comm) {
  REMOE_CHECK(x.dim() == 2, "all_to_all_rows: x must be [N, d], got ", shape_str(x.shape()));
  REMOE_CHECK(static_cast<int64_t>(send_rows.size()) == comm->size() && recv_rows.size() == send_rows.size(),
              "all_to_all_rows: ", send_rows.size(), " send and ", recv_rows.size(), " receive counts for ",
              comm->size(), " ranks");
  REMOE_CHECK(total(send_rows) == x.size(0), "all_to_all_rows: send counts sum to ", total(send_rows), " rows, x has ",
              x.size(0));
  const int64_t d = x.size(1), row_size = d * static_cast<int64_t>(x.element_size());
  Tensor in = contiguous(x);
  Tensor out = empty({total(recv_rows), d}, {x.dtype()});
  comm->all_to_all_v(in.raw_data(), row_bytes(send_rows, row_size), out.raw_data(), row_bytes(recv_rows, row_size));
  return record("all_to_all_rows", out, {x}, [send_rows, recv_rows, comm](const Tensor& g, const std::vector<bool>&) {
    // Always exchanged, needed or not: every rank of the group must take part.
    return std::vector<Tensor>{all_to_all_rows(g, recv_rows, send_rows, comm)};
  });
}

Tensor moe_dispatch_expert_parallel(const Tensor& x, const Routing& routing, const Tensor& counts,
                                    const ExpertWeights& experts, const ExpertParallel& ep) {
  REMOE_CHECK(x.dim() == 2, "moe_dispatch_expert_parallel: x must be [T, d], got ", shape_str(x.shape()));
  REMOE_CHECK(counts.numel() == experts.size() && experts.size() == ep.experts, "moe_dispatch_expert_parallel: ",
              counts.numel(), " expert counts, ", experts.size(), " experts, ", ep.experts, " in the parallel layout");
  const int64_t T = x.size(0), d = x.size(1);
  // As moe_dispatch: sort the pairs by expert, so each owner's rows are one consecutive block.
  Tensor order = argsort(routing.expert);
  Tensor token_sorted = index_select(routing.token, 0, order);
  Tensor gate_sorted = index_select(routing.gate, 0, order);
  Tensor rows = index_select(x, 0, token_sorted);  // [N, d]

  const std::vector<int64_t> count = counts.to_vector<int64_t>();
  REMOE_CHECK(total(count) == routing.token.numel(), "moe_dispatch_expert_parallel: counts sum to ", total(count),
              " but there are ", routing.token.numel(), " routed pairs");
  const std::vector<int64_t> send = rows_per_owner(count, ep);
  const std::vector<std::vector<int64_t>> counts_in = exchange_counts(count, ep);
  std::vector<int64_t> recv(counts_in.size());
  for (size_t q = 0; q < counts_in.size(); ++q) recv[q] = total(counts_in[q]);

  Tensor received = all_to_all_rows(rows, send, recv, ep.group);
  Tensor outputs = run_local_experts(received, counts_in, experts, ep);
  Tensor back = all_to_all_rows(outputs, recv, send, ep.group);  // [N, d], the pairs' order again
  Tensor weighted = mul(back, reshape(cast(gate_sorted, back.dtype()), {-1, 1}));
  return index_add(zeros({T, d}, {x.dtype()}), 0, token_sorted, weighted);
}

}  // namespace remoe
