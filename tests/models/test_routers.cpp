// The router registry and every routing method (docs/routers.md): each dispatching router equals
// the per-token loop (forward and every gradient), a whole layer passes a finite-difference
// check, and each has hand-checked values on a tiny example.
#include <algorithm>
#include <cmath>
#include <set>

#include "ops/gradcheck.h"
#include "core/random.h"
#include "models/router_registry.h"
#include "models/train_step.h"
#include "expert_util.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// The dispatching routers under test, each a function of (logits, token ids).
struct NamedRoute {
  std::string name;
  std::function<RouterOutput(const Tensor& logits, const Tensor& ids)> route;
};

std::vector<NamedRoute> dispatching_routes(int64_t E) {
  return {
      {"topk k=2", [](const Tensor& l, const Tensor&) { return route_topk(l, TopKOptions{2, 0.01, false}); }},
      {"topk k=2 renormalised", [](const Tensor& l, const Tensor&) { return route_topk(l, TopKOptions{2, 0.01, true}); }},
      {"relu", [](const Tensor& l, const Tensor&) { return route_relu(l, 1, true); }},
      {"hash k=2", [E](const Tensor&, const Tensor& ids) { return route_hash(ids, E, 2, DType::f64); }},
      {"expert_choice k=2", [](const Tensor& l, const Tensor&) { return route_expert_choice(l, 2); }},
      {"sparsemixer eval", [](const Tensor& l, const Tensor&) { return route_sparsemixer(l, {1, 0.01, 0.3, false, 7, 0}); }},
      {"sparsemixer train k=2",
       [](const Tensor& l, const Tensor&) { return route_sparsemixer(l, {2, 0.01, 0.3, true, 7, 3}); }},
  };
}

// A whole MoE layer as a function of (x, W_r, experts...): logits = x·W_r, route, dispatch.
Tensor moe_layer(const NamedRoute& r, const std::vector<Tensor>& in, const Tensor& ids, int64_t E) {
  ExpertWeights w;
  for (int64_t e = 0; e < E; ++e) {
    w.gate.push_back(in[2 + 3 * e]);
    w.up.push_back(in[3 + 3 * e]);
    w.down.push_back(in[4 + 3 * e]);
  }
  RouterOutput out = r.route(matmul(in[0], in[1]), ids);
  Tensor y = moe_dispatch(in[0], out.routing, out.counts, w);
  return out.loss.defined() ? add(y, mul(ones_like(y), out.loss)) : y;  // the loss term's gradient too
}

}  // namespace

TEST_CASE("the registry names every router once and rejects unknown names, listing them") {
  std::vector<std::string> names = router_names();
  CHECK(names == std::vector<std::string>{"dense", "topk", "relu", "hash", "expert_choice", "sparsemixer", "lory"});
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  for (const RouterSpec& s : router_registry()) {
    CAPTURE(s.name);
    CHECK(!s.help.empty());
    CHECK(!s.source.empty());
    CHECK(s.make_ffn);
    CHECK(s.active_experts);
    CHECK(s.adaptive_lambda == (s.loss == RouterLoss::regularizer));
    CHECK(!s.label.empty());
    CHECK((s.compared_with.empty() || find_router_spec(s.compared_with) != nullptr));
    CHECK((s.paper_column.empty() || s.paper_column == "Dense" || s.paper_column == "MoE" || s.paper_column == "ReMoE"));
    CHECK(find_router_spec(s.name) == &s);
  }
  CHECK(find_router_spec("switch") == nullptr);
  CHECK(router_spec("relu").compared_with == "topk");  // the report's ReMoE − TopK pairs
  CHECK(!router_spec("dense").expert_parallel);
  CHECK(!router_spec("lory").expert_parallel);
  CHECK_THROWS_WITH_ALL(router_spec("switch"), "moe.router", "'switch'", "dense, topk, relu, hash");
  CHECK(router_spec("relu").adaptive_lambda);
  CHECK(!router_spec("topk").adaptive_lambda);
  CHECK(!router_spec("expert_choice").token_local);
  CHECK(!router_spec("dense").routes_tokens);
}

TEST_CASE("every dispatching router: dispatch equals the per-token loop, forward and gradients") {
  const int64_t T = 9, d = 5, f = 6, E = 4;
  for (const NamedRoute& r : dispatching_routes(E)) {
    CAPTURE(r.name);
    ExpertWeights w = random_experts(E, d, f, 300);
    Tensor x = rand_leaf({T, d}, 31);
    Tensor logits = rand_leaf({T, E}, 32, -1.0, 1.0);
    Tensor ids = from_vector(std::vector<int64_t>{5, 17, 2, 99, 5, 64, 3, 8, 1000}, {T});
    RouterOutput out = r.route(logits, ids);
    Tensor y = moe_dispatch(x, out.routing, out.counts, w);
    CHECK_CLOSE(y, moe_reference(x, out.routing, w), 1e-12, 1e-10);
    std::vector<Tensor> wrt = expert_params(w);
    wrt.push_back(x);
    wrt.push_back(logits);
    Generator gen(5);
    Tensor proj = randn({T, d}, gen, {DType::f64});
    std::vector<Tensor> g1 = grad(sum(mul(y, proj)), wrt);
    RouterOutput again = r.route(logits, ids);
    std::vector<Tensor> g2 = grad(sum(mul(moe_reference(x, again.routing, w), proj)), wrt);
    for (size_t i = 0; i < wrt.size(); ++i) {
      CAPTURE(i);
      REQUIRE(g1[i].defined() == g2[i].defined());
      if (g1[i].defined()) CHECK_CLOSE(g1[i], g2[i], 1e-12, 1e-10);
    }
  }
}

TEST_CASE("every dispatching router: a whole layer passes the finite-difference check") {
  const int64_t T = 7, d = 4, f = 3, E = 4;
  for (const NamedRoute& r : dispatching_routes(E)) {
    CAPTURE(r.name);
    // In training SparseMixer's backward is its estimator, not the derivative of its forward value
    // π_D·ω (ω = 1/3 for some picks): by design it fails a finite-difference check. Checked by hand below.
    if (r.name.find("sparsemixer train") != std::string::npos) continue;
    std::vector<Tensor> in = {rand_leaf({T, d}, 41, -1.0, 1.0), rand_leaf({d, E}, 42, -1.0, 1.0)};
    for (const Tensor& p : expert_params(random_experts(E, d, f, 500))) in.push_back(p);
    Tensor ids = from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}, {T});
    CHECK_GRADCHECK([&](const std::vector<Tensor>& v) { return moe_layer(r, v, ids, E); }, in);
  }
}

TEST_CASE("hash: fixed assignments, k consecutive experts, gate 1, balanced over the vocabulary") {
  // splitmix64's finaliser of each id, mod 8 (computed independently in Python).
  const std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5, 6, 7, 100, 4095}, expect = {7, 1, 6, 5, 2, 2, 0, 7, 4, 3};
  for (size_t i = 0; i < ids.size(); ++i) CHECK(hash_expert(ids[i], 8) == expect[i]);
  RouterOutput r = route_hash(from_vector(std::vector<int64_t>{0, 1}, {2}), 8, 2, DType::f32);
  CHECK(r.routing.token.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 1});
  CHECK(r.routing.expert.to_vector<int64_t>() == std::vector<int64_t>{7, 0, 1, 2});
  CHECK(r.routing.gate.to_vector<float>() == std::vector<float>{1, 1, 1, 1});
  CHECK(!r.loss.defined());
  std::vector<int64_t> load(8, 0);
  for (int64_t v = 0; v < 8000; ++v) ++load[static_cast<size_t>(hash_expert(v, 8))];
  for (int64_t c : load) CHECK(std::abs(c - 1000) < 100);
}

TEST_CASE("expert choice: each expert takes its C = T·k/E best tokens; a token may get 0..E experts") {
  // 4 tokens, 2 experts, k = 1: C = 2. Scores softmax over each row; token 0 prefers expert 0
  // strongly, token 3 expert 1; tokens 1, 2 are mild.
  Tensor logits = from_vector(std::vector<double>{3, 0, 0.2, 0, 0.1, 0, 0, 2}, {4, 2});
  RouterOutput r = route_expert_choice(logits, 1);
  CHECK(r.counts.to_vector<int64_t>() == std::vector<int64_t>{2, 2});
  CHECK(r.routing.expert.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 1});
  CHECK(r.routing.token.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 3, 2});  // best first
  std::vector<double> p = softmax(logits, -1).to_vector<double>();
  std::vector<double> g = r.routing.gate.to_vector<double>();
  CHECK(g[0] == doctest::Approx(p[0]));
  CHECK(g[2] == doctest::Approx(p[7]));
  // T·k/E below 1 still gives every expert one token.
  CHECK(route_expert_choice(from_vector(std::vector<double>{1, 2, 3, 4}, {1, 4}), 1).active_pairs == 4);
}

TEST_CASE("sparsemixer: near-best candidates, gate π_D·ω, backward of π_D") {
  // Experts 0 and 1 are within 2ε of each other (ε = 0.01); expert 2 is far below: masked.
  Tensor logits = from_vector(std::vector<double>{1.0, 0.995, -1.0}, {1, 3}).set_requires_grad();
  RouterOutput ev = route_sparsemixer(logits, {1, 0.0, 0.01, false, 1, 0});
  CHECK(ev.routing.expert.to_vector<int64_t>() == std::vector<int64_t>{0});
  const double p0 = 1 / (1 + std::exp(0.995 - 1.0));
  CHECK(ev.routing.gate.item() == doctest::Approx(p0));
  std::vector<Tensor> g = grad(sum(ev.routing.gate), {logits});
  std::vector<double> gv = g[0].to_vector<double>();
  CHECK(gv[0] == doctest::Approx(p0 * (1 - p0)));
  CHECK(gv[1] == doctest::Approx(-p0 * (1 - p0)));
  CHECK(gv[2] == 0.0);
  // Training samples among the candidates; a non-argmax pick has ω ∈ {1, 1/3}, the argmax ω = 1.
  int picked_second = 0, thirds = 0;
  for (uint64_t stream = 0; stream < 400; ++stream) {
    RouterOutput tr = route_sparsemixer(logits, {1, 0.0, 0.01, true, 1, stream});
    const int64_t e = tr.routing.expert.to_vector<int64_t>()[0];
    const double gate = tr.routing.gate.item(), pi = e == 0 ? p0 : 1 - p0;
    REQUIRE(e != 2);
    if (e == 1) ++picked_second;
    if (e == 1 && std::abs(gate - pi / 3) < 1e-12) ++thirds;
    CHECK((std::abs(gate - pi) < 1e-12 || (e == 1 && std::abs(gate - pi / 3) < 1e-12)));
  }
  CHECK(picked_second > 150);  // Gumbel-max over two near-equal scores: about half
  CHECK(picked_second < 250);
  CHECK(std::abs(thirds - 0.75 * picked_second) < 0.15 * picked_second);
}

TEST_CASE("topk: renormalised gates sum to 1; k = 1 renormalised gives gate 1; no LB loss with coeff 0") {
  Tensor logits = rand_leaf({6, 4}, 71, -1.0, 1.0);
  RouterOutput r = route_topk(logits, TopKOptions{2, 0.01, true});
  CHECK_CLOSE(sum(reshape(r.routing.gate, {6, 2}), {1}), ones({6}, {DType::f64}), 1e-12, 1e-12);
  CHECK_CLOSE(route_topk(logits, TopKOptions{1, 0.01, true}).routing.gate, ones({6}, {DType::f64}), 0, 0);
  RouterOutput plain = route_topk(logits, TopKOptions{1, 0.01, false});
  CHECK(plain.routing.gate.to_vector<double>()[0] < 1.0);  // the paper's gate is the probability p
  CHECK(route_topk(logits, TopKOptions{1, 0.0, false}).loss.item() == 0.0);
}

TEST_CASE("topk warm-up: k = topk_warmup_k before topk_warmup_steps, k after, k at evaluation") {
  ModelConfig c;
  c.d_model = 8;
  c.ffn = "topk";
  c.num_experts = 8;
  c.topk = 1;
  c.topk_warmup_k = 6;
  c.topk_warmup_steps = 5;
  c.ffn_hidden = 8;
  Generator gen(1);
  std::shared_ptr<FFN> ffn = router_spec("topk").make_ffn(c, gen);
  Tensor x = rand_leaf({10, 8}, 3).to(DType::f32);
  auto pairs_at = [&](int64_t step) {
    std::optional<RouterOutput> r;
    RouteContext ctx{zeros({10}, {DType::i64}), 1, 10, step, 0, 0};
    ffn->forward(x, ctx, &r);
    return r->active_pairs;
  };
  CHECK(pairs_at(0) == 60);
  CHECK(pairs_at(4) == 60);
  CHECK(pairs_at(5) == 10);
  CHECK(pairs_at(RouteContext::kEvaluation) == 10);
}

TEST_CASE("lory: merged weights per segment, routed from the previous segment, causal") {
  const int64_t B = 2, T = 5, d = 3, w = 4, E = 3, S = 2;  // segments [0,2) [2,4) [4,5)
  LoryWeights lw{rand_leaf({d, E}, 81, -1.0, 1.0), rand_leaf({E, d, w}, 82), rand_leaf({E, d, w}, 83),
                 rand_leaf({E, w, d}, 84)};
  Tensor x = rand_leaf({B * T, d}, 85, -1.0, 1.0);
  Tensor y = lory_mix(x, lw, B, T, S);
  // Reference: explicit Σ_e p_e θ_e per (sequence, segment), then the SwiGLU per token.
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> p(E, 1.0 / E);
    for (int64_t start = 0; start < T; start += S) {
      auto merged = [&](const Tensor& t) {
        Tensor m = zeros({t.size(1), t.size(2)}, {DType::f64});
        for (int64_t e = 0; e < E; ++e) m = add(m, mul(select(t, 0, e), p[static_cast<size_t>(e)]));
        return m;
      };
      const int64_t end = std::min(T, start + S);
      Tensor xs = slice(x, 0, b * T + start, b * T + end);
      Tensor ys = matmul(swiglu(matmul(xs, merged(lw.gate)), matmul(xs, merged(lw.up))), merged(lw.down));
      CHECK_CLOSE(slice(y, 0, b * T + start, b * T + end), ys, 1e-12, 1e-10);
      p = softmax(matmul(mean(xs, {0}, true), lw.router), -1).to_vector<double>();
    }
  }
  // Causal: changing token 3 of sequence 0 changes only its own row and the rows of later segments.
  std::vector<double> xv = x.detach().to_vector<double>();
  xv[3 * d] += 0.5;
  Tensor y2 = lory_mix(from_vector(xv, {B * T, d}), lw, B, T, S);
  for (int64_t row = 0; row < B * T; ++row) {
    CAPTURE(row);
    const bool changed = sum(abs(sub(select(y, 0, row), select(y2, 0, row)))).item() > 0;
    CHECK(changed == (row == 3 || row == 4));
  }
  CHECK_GRADCHECK([&](const std::vector<Tensor>& v) { return lory_mix(v[0], {v[1], v[2], v[3], v[4]}, B, T, S); },
                  {x, lw.router, lw.gate, lw.up, lw.down});
}

TEST_CASE("ReMoE: L_reg is the mean over layers (Eq. 10) or their sum (moe.l1_sum_over_layers)") {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.n_layers = 3;
  c.ffn = "relu";
  c.num_experts = 4;
  c.ffn_hidden = 16;
  Transformer mean_model(c);
  c.l1_sum_over_layers = true;
  Transformer sum_model(c);  // same seed: same weights
  Generator gen(2);
  Tensor tokens = randint({2, 6}, 0, 32, gen);
  LossParts a = compute_loss(mean_model, mean_model.forward(tokens), tokens, 1.0);
  LossParts b = compute_loss(sum_model, sum_model.forward(tokens), tokens, 1.0);
  CHECK(b.reg == doctest::Approx(3 * a.reg));
  CHECK(a.reg > 0);
}

TEST_CASE("granularity G: E·G experts of width d_ffn/G, k·G active, the ReMoE target unchanged") {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.n_layers = 2;
  c.ffn = "topk";
  c.num_experts = 4;
  c.topk = 1;
  c.granularity = 2;
  c.ffn_hidden = 32;
  Transformer topk_model(c);
  CHECK(topk_model.parameter("layers.0.ffn.router").shape() == Shape{16, 8});
  CHECK(topk_model.parameter("layers.1.ffn.experts.7.w_gate").shape() == Shape{16, 16});
  Generator gen(4);
  Tensor tokens = randint({2, 5}, 0, 32, gen);
  ForwardOutput out = topk_model.forward(tokens);
  REQUIRE(out.layers.size() == 2);
  CHECK(out.layers[0].active_pairs == 10 * 2);  // k·G = 2 experts per token
  CHECK(out.layers[0].experts == 8);
  c.ffn = "relu";
  Transformer relu_model(c);
  Trainer trainer(relu_model, AdamWOptions{}, LrSchedule{1e-3, 1e-4, 0, 10});
  CHECK(trainer.controller().target() == doctest::Approx(0.75));  // 1 − k·G/(E·G) = 1 − k/E
}

TEST_CASE("dense×M: one SwiGLU M times wider, the same total parameters as E = M experts") {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.n_layers = 2;
  c.ffn = "dense";
  c.ffn_hidden = 32;
  c.dense_multiplier = 8;
  Transformer wide(c);
  CHECK(wide.parameter("layers.0.ffn.mlp.w_up").shape() == Shape{16, 256});
  c.ffn = "topk";
  c.num_experts = 8;
  Transformer moe(c);
  // Same FFN parameters: 8 experts of width 32 vs one of width 256; the MoE adds its routers.
  CHECK(moe.num_parameters() - wide.num_parameters() == 2 * 16 * 8);
  Generator gen(5);
  CHECK(wide.forward(randint({1, 4}, 0, 32, gen)).layers.empty());
}

TEST_CASE("gradient accumulation over micro-batches equals one step on the whole batch (dense, hash)") {
  for (const std::string router : {"dense", "hash"}) {
    CAPTURE(router);
    ModelConfig c;
    c.vocab_size = 32;
    c.d_model = 16;
    c.n_layers = 2;
    c.ffn = router;
    c.num_experts = 4;
    c.ffn_hidden = 32;
    Generator gen(6);
    Tensor seq = randint({4, 7}, 0, 32, gen);
    Batch whole{contiguous(slice(seq, 1, 0, 6)), contiguous(slice(seq, 1, 1, 7))};
    auto half = [&](int64_t i) {
      return Batch{contiguous(slice(whole.inputs, 0, 2 * i, 2 * i + 2)), contiguous(slice(whole.targets, 0, 2 * i, 2 * i + 2))};
    };
    Transformer a(c), b(c);
    Trainer ta(a, AdamWOptions{}, LrSchedule{1e-2, 1e-3, 0, 10}), tb(b, AdamWOptions{}, LrSchedule{1e-2, 1e-3, 0, 10});
    StepMetrics ma = ta.step({whole});
    StepMetrics mb = tb.step({half(0), half(1)});
    CHECK(ma.lm_loss == doctest::Approx(mb.lm_loss).epsilon(1e-5));
    CHECK(ma.grad_norm == doctest::Approx(mb.grad_norm).epsilon(1e-4));
    // The gradients the step applied (kept on the parameters until the next step): Adam's first
    // update is about lr·sign(g), which would amplify rounding of near-zero entries.
    NamedTensors pa = a.named_parameters(), pb = b.named_parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      CAPTURE(pa[i].first);
      CHECK_CLOSE(pa[i].second.grad(), pb[i].second.grad(), 1e-7, 1e-4);
    }
  }
}
