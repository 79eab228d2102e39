#include "models/moe_dispatch.h"
#include "expert_util.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// Logits whose ReLU routing has a token with no active expert (row 0) and an expert with no
// token (column E−1), entries kept away from 0 so that finite differences do not cross the kink.
Tensor relu_logits(int64_t T, int64_t E, uint64_t seed) {
  std::vector<double> v = rand_leaf({T, E}, seed, 0.2, 1.0).detach().to_vector<double>();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < E; ++e) {
      double& x = v[static_cast<size_t>(t * E + e)];
      if (t == 0 || e == E - 1 || (t + e) % 3 == 0) x = -x;  // inactive pairs
    }
  return from_vector(v, {T, E}).set_requires_grad();
}

}  // namespace

TEST_CASE("MoE dispatch equals the per-token loop, for every router (forward and gradients)") {
  const int64_t T = 7, d = 5, f = 6, E = 4;
  for (std::string router : {"topk1", "topk2", "relu", "relu_plain"}) {
    CAPTURE(router);
    ExpertWeights w = random_experts(E, d, f, 100);
    Tensor x = rand_leaf({T, d}, 7);
    Tensor logits = router == "topk1" || router == "topk2" ? rand_leaf({T, E}, 8) : relu_logits(T, E, 9);
    auto route = [&](const Tensor& lg) {
      if (router == "topk1") return route_topk(lg, 1, 0.01);
      if (router == "topk2") return route_topk(lg, 2, 0.01);
      return route_relu(lg, 1, router == "relu");
    };
    RouterOutput r = route(logits);
    if (router.rfind("relu", 0) == 0) {
      std::vector<int64_t> counts = r.counts.to_vector<int64_t>();
      CHECK(counts[E - 1] == 0);  // an expert with no token
      std::vector<int64_t> tok = r.routing.token.to_vector<int64_t>();
      CHECK(std::find(tok.begin(), tok.end(), 0) == tok.end());  // a token with no expert
    } else {
      CHECK(r.active_pairs == T * (router == "topk1" ? 1 : 2));
    }
    Tensor y = moe_dispatch(x, r.routing, r.counts, w);
    Tensor y_ref = moe_reference(x, r.routing, w);
    CHECK_CLOSE(y, y_ref, 1e-12, 1e-10);
    if (router.rfind("relu", 0) == 0) CHECK(sum(abs(select(y, 0, 0))).item() == 0);  // only the residual passes

    // Gradients of both against each other, for every input.
    std::vector<Tensor> wrt = expert_params(w);
    wrt.push_back(x);
    wrt.push_back(logits);
    Generator gen(3);
    Tensor proj = randn({T, d}, gen, {DType::f64});
    std::vector<Tensor> g1 = grad(sum(mul(y, proj)), wrt);
    RouterOutput r2 = route(logits);
    std::vector<Tensor> g2 = grad(sum(mul(moe_reference(x, r2.routing, w), proj)), wrt);
    for (size_t i = 0; i < wrt.size(); ++i) {
      CAPTURE(i);
      if (!g1[i].defined()) {
        CHECK(!g2[i].defined());
        continue;
      }
      CHECK_CLOSE(g1[i], g2[i], 1e-12, 1e-10);
    }
  }
}

TEST_CASE("gradcheck of a full MoE layer and of the router losses, each router") {
  const int64_t T = 5, d = 3, f = 4, E = 3;
  ExpertWeights w = random_experts(E, d, f, 200);
  Tensor x = rand_leaf({T, d}, 11);
  Tensor wr = rand_leaf({d, E}, 12);
  for (std::string router : {"topk", "relu"}) {
    CAPTURE(router);
    auto layer = [&](const std::vector<Tensor>& in) {
      Tensor logits = matmul(in[0], in[1]);
      RouterOutput r = router == "topk" ? route_topk(logits, 2, 0.01) : route_relu(logits, 1, true);
      return moe_dispatch(in[0], r.routing, r.counts, w);
    };
    // Inputs chosen away from ReLU/top-k ties: check that no logit is near 0 or near a tie.
    CHECK_GRADCHECK(layer, {x, wr, w.gate[0], w.down[1]});
  }
  // The router losses alone: counts are constants, gradients flow through p (topk) and R (relu).
  Tensor logits = rand_leaf({6, 4}, 13, 0.1, 2.0);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return route_topk(in[0], 1, 0.01).loss; }, {logits});
  Tensor mixed = relu_logits(6, 4, 14);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return route_relu(in[0], 1, true).loss; }, {mixed});
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return route_relu(in[0], 1, false).loss; }, {mixed});
}

TEST_CASE("router loss values match the formulas of docs/routers.md") {
  // ReLU: T=2, E=2, k=1: R = [[1, 0], [2, 3]] -> counts c = [2, 1], f = E/(kT)·c = [2, 1];
  // per-layer penalty = Σ f_e R_te / T = (2·1 + 2·2 + 1·3) / 2 = 4.5; plain L1 = (1+2+3)/2 = 3.
  Tensor lg = from_vector<double>({1, -1, 2, 3}, {2, 2});
  RouterOutput r = route_relu(lg, 1, true);
  CHECK(r.counts.to_vector<int64_t>() == std::vector<int64_t>{2, 1});
  CHECK(r.loss.item() == doctest::Approx(4.5));
  CHECK(route_relu(lg, 1, false).loss.item() == doctest::Approx(3.0));
  CHECK(r.active_pairs == 3);
  // TopK aux: p = softmax rows; aux = coeff·E/(k·T²)·Σ_e P_e·c_e.
  Tensor lt = from_vector<double>({0, 1, 2, 0}, {2, 2});
  RouterOutput t = route_topk(lt, 1, 0.01);
  double p01 = 1 / (1 + std::exp(-1.0)), p10 = 1 / (1 + std::exp(-2.0));
  // token 0 -> expert 1 (p01), token 1 -> expert 0 (p10): c = [1, 1]; P_0 = (1−p01) + p10, P_1 = p01 + (1−p10)
  double expect = 0.01 * 2 / (1 * 4.0) * ((1 - p01 + p10) * 1 + (p01 + 1 - p10) * 1);
  CHECK(t.loss.item() == doctest::Approx(expect));
  CHECK(t.routing.expert.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(t.routing.gate.to_vector<double>()[0] == doctest::Approx(p01));  // not renormalised
}
