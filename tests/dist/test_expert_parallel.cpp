// Expert parallelism against the single process (which every rank also computes for itself): the
// all-to-all dispatch (forward and every gradient), and training steps of DP × EP layouts.
#include <cstring>

#include "autograd/node.h"
#include "dist/dist_util.h"
#include "models/data_parallel.h"
#include "models/expert_parallel.h"
#include "models/models.h"
#include "models/expert_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// The expert-group sizes P this job can run with E experts: divisors of the world size.
std::vector<int64_t> group_sizes(int64_t E) {
  std::vector<int64_t> out;
  for (int64_t P = 1; P <= world().size(); ++P)
    if (world().size() % P == 0 && E % P == 0) out.push_back(P);
  return out;
}

// This rank's own routing of T tokens over E experts: token 0 routed nowhere, expert E−1 chosen
// by no token on any rank, the others a random subset of 0..E−2 per token; gates in (0.1, 1).
Routing random_routing(int64_t T, int64_t E, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> token, expert;
  for (int64_t t = 1; t < T; ++t) {
    std::vector<double> u = uniform({E - 1}, gen, {DType::f64}, 0, 1).to_vector<double>();
    for (int64_t e = 0; e < E - 1; ++e)
      if (u[static_cast<size_t>(e)] < 0.5) token.push_back(t), expert.push_back(e);
  }
  const int64_t N = static_cast<int64_t>(token.size());
  return {from_vector(token, {N}), from_vector(expert, {N}), rand_leaf({N}, seed + 1, 0.1, 1.0)};
}

Tensor counts_of(const Routing& r, int64_t E) {
  std::vector<int64_t> c(static_cast<size_t>(E), 0);
  for (int64_t e : r.expert.to_vector<int64_t>()) ++c[static_cast<size_t>(e)];
  return from_vector(c, {E});
}

// The held experts' weights of a trained model against the reference, after gathering.
std::string compare_parameters(const Transformer& a, const Transformer& ref) {
  const NamedTensors pa = a.named_parameters(), pr = ref.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    const std::string why = compare_close(pa[i].second, pr[i].second, 1e-5, 1e-4);
    if (!why.empty()) return pa[i].first + ": " + why;
  }
  return "";
}

}  // namespace

TEST_CASE("expert parallel: the all-to-all dispatch equals the local one, forward and every gradient") {
  const int64_t E = 4, d = 6, f = 5, T = 9;
  for (int64_t P : group_sizes(E)) {
    CAPTURE(P);
    const ExpertParallel ep = make_expert_parallel(world_communicator(), P, E);
    const uint64_t seed = 100 + static_cast<uint64_t>(world().rank());
    ExpertWeights experts = random_experts(E, d, f, 7);  // the same on every rank
    Tensor x = rand_leaf({T, d}, seed);                  // each rank's own tokens
    Routing routing = random_routing(T, E, seed + 10);
    Tensor counts = counts_of(routing, E);
    world().reset_counters();
    Tensor y_ep = moe_dispatch_expert_parallel(x, routing, counts, experts, ep);
    Tensor y_ref = moe_dispatch(x, routing, counts, experts);
    CHECK(compare_close(y_ep, y_ref, 1e-12, 1e-10) == "");

    Tensor w = rand_leaf({T, d}, seed + 20).detach();
    std::vector<Tensor> inputs = {x, routing.gate};
    for (const Tensor& p : expert_params(experts)) inputs.push_back(p);
    std::vector<Tensor> g_ep = grad(sum(mul(y_ep, w)), inputs);
    const int64_t a2a_bytes = world().counters().all_to_all_bytes;  // forward and backward of y_ep
    std::vector<Tensor> g_ref = grad(sum(mul(y_ref, w)), inputs);
    // docs/scaling.md: per layer, the counts (E/P i64 to each other rank), then the rows for other
    // ranks' experts and the rows received from other ranks, each once forward and once backward.
    int64_t rows_out = 0, rows_in = 0;
    const std::vector<int64_t> c = counts.to_vector<int64_t>();
    for (int64_t e = 0; e < E; ++e) {
      if (!ep.holds(e)) rows_out += c[static_cast<size_t>(e)];
      Tensor all = from_vector(std::vector<int64_t>{c[static_cast<size_t>(e)]}, {1});
      ep.group->all_reduce(all, ReduceOp::sum);
      if (ep.holds(e)) rows_in += all.to_vector<int64_t>()[0] - c[static_cast<size_t>(e)];
    }
    CHECK(a2a_bytes == (P - 1) * (E / P) * 8 + 2 * (rows_out + rows_in) * d * 8);
    CHECK(compare_close(g_ep[0], g_ref[0], 1e-12, 1e-10) == "");  // x: this rank's tokens only
    CHECK(compare_close(g_ep[1], g_ref[1], 1e-12, 1e-10) == "");  // the gates
    for (int64_t e = 0; e < E; ++e) {
      CAPTURE(e);
      for (int64_t k = 0; k < 3; ++k) {
        const size_t i = static_cast<size_t>(2 + 3 * e + k);
        // The holder's gradient covers its group's tokens: the sum of the ranks' local ones.
        Tensor expected = g_ref[i].defined() ? contiguous(g_ref[i]) : zeros(inputs[i].shape(), {DType::f64});
        ep.group->all_reduce(expected, ReduceOp::sum);
        if (!ep.holds(e)) continue;
        Tensor got = g_ep[i].defined() ? g_ep[i] : zeros(inputs[i].shape(), {DType::f64});
        CHECK(compare_close(got, expected, 1e-12, 1e-10) == "");
      }
    }
  }
}

TEST_CASE("expert parallel: DP x EP training steps equal the single process") {
  const int64_t B = 4, T = 6, micro = 2, steps = 10;
  for (const char* router : {"topk", "relu", "hash", "sparsemixer"}) {
    for (int64_t P : group_sizes(dp_model(router).num_experts)) {
      CAPTURE(router);
      CAPTURE(P);
      Transformer ref(dp_model(router)), model(dp_model(router));
      const LrSchedule sched{3e-3, 3e-4, 2, steps};
      Trainer ref_trainer(ref, AdamWOptions{}, sched), trainer(model, AdamWOptions{}, sched);
      trainer.set_data_parallel(world_communicator());
      trainer.set_expert_parallel(P);
      for (int64_t s = 0; s < steps; ++s) {
        std::vector<Batch> batches = global_batches(s, micro, B, T);
        StepMetrics a = ref_trainer.step(batches), b = trainer.step(batches);
        CAPTURE(s);
        CHECK(b.lm_loss == doctest::Approx(a.lm_loss).epsilon(1e-5));
        CHECK(b.loss == doctest::Approx(a.loss).epsilon(1e-5));
        CHECK(b.sparsity == a.sparsity);
        CHECK(b.lambda == a.lambda);
        CHECK(b.expert_counts == a.expert_counts);
        CHECK(b.grad_norm == doctest::Approx(a.grad_norm).epsilon(1e-4));
      }
      trainer.gather_experts();
      CHECK(compare_parameters(model, ref) == "");
      CHECK(trainer.controller().lambda() == ref_trainer.controller().lambda());
    }
  }
}

TEST_CASE("expert parallel: a layout that does not fit, or a router without experts, is an error") {
  Transformer model(dp_model("topk"));
  Trainer trainer(model, AdamWOptions{}, LrSchedule{1e-3, 1e-4, 0, 2});
  trainer.set_data_parallel(world_communicator());
  CHECK_THROWS_WITH_ALL(trainer.set_expert_parallel(3), "dist.expert_parallel = 3", "must divide");
  Transformer lory(dp_model("lory"));
  Trainer lory_trainer(lory, AdamWOptions{}, LrSchedule{1e-3, 1e-4, 0, 2});
  CHECK_THROWS_WITH_ALL(lory_trainer.set_expert_parallel(1), "router 'lory'", "no experts");
}

TEST_CASE("expert parallel: all_to_all_rows and the dispatch pass the finite-difference check in x and the gates") {
  // Every rank runs the same gradcheck in lockstep (the same number of forward and backward calls,
  // so the same number of routed pairs on every rank: token t ≥ 1 → expert (t + rank) mod (E − 1),
  // token 0 nowhere, expert E − 1 unused), so the collectives line up. A rank's output depends on its own x and gates only; its experts'
  // weights also feed other ranks' outputs, so they are checked against the group sums above instead.
  const int64_t E = 4, d = 3, f = 4, T = 5;
  for (int64_t P : group_sizes(E)) {
    CAPTURE(P);
    const ExpertParallel ep = make_expert_parallel(world_communicator(), P, E);
    const uint64_t seed = 300 + static_cast<uint64_t>(world().rank());
    const ExpertWeights experts = random_experts(E, d, f, 9);
    std::vector<int64_t> token, expert;
    for (int64_t t = 1; t < T; ++t) token.push_back(t), expert.push_back((t + world().rank()) % (E - 1));
    const Routing routing{from_vector(token, {T - 1}), from_vector(expert, {T - 1}), rand_leaf({T - 1}, seed, 0.1, 1.0)};
    const Tensor counts = counts_of(routing, E);
    Tensor x = rand_leaf({T, d}, seed + 1);
    auto layer = [&](const std::vector<Tensor>& in) {
      return moe_dispatch_expert_parallel(in[0], Routing{routing.token, routing.expert, in[1]}, counts, experts, ep);
    };
    CHECK_GRADCHECK(layer, {x, routing.gate});
  }
}
