// Golden model test: the whole Transformer (dense, TopK MoE, ReMoE) and its training step against a
// from-scratch PyTorch float32 implementation, from tests/golden/model_<ffn>.safetensors written by
// tests/golden/make_golden_model.py (see there for the file layout). From the same initial weights
// and batch we check the loss parts, the expert counts and every parameter's gradient at step 0, and
// then the 10-step AdamW trajectory of Trainer (loss parts, sparsity, λ, lr, grad norm and expert
// counts of every step, the LM loss and the router weights after the last step).
//
// Both sides compute in float32 with different summation orders, so results agree to rounding,
// amplified along the trajectory (Adam normalises small gradient entries). Tolerances are about 5–10×
// the largest errors observed (GCC 12, x86-64; printed with REMOE_GOLDEN_VERBOSE=1), over all kinds:
//   step-0 losses              rel 1e-6                             (observed 1.1e-7)
//   step-0 gradients           |a − b| <= 2e-6·max|b| + 1e-4·|b|    (max|b| over that tensor; with
//                              rtol 1e-4 the observed errors need an atol of 4e-7·max|b|)
//   trajectory losses, λ, lr   rel 5e-6 (observed 4.4e-7);  grad norm rel 3e-5 (observed 2.9e-6);
//                              sparsity and expert counts exact
//   final routers              |a − b| <= 1e-5·max|b| + 1e-4·|b|    (observed max|a − b| 1.4e-6·max|b|)
// Routing decisions (ReLU sign, top-k order) are discontinuous; the generator only keeps data whose
// smallest router margin over the whole trajectory is >= 1e-4 and >= 100× the f32-vs-f64 logit
// drift, so they should not flip here, and the expert counts must match exactly. The ReLU file uses
// λ0 = 0.01 (not the paper's 1e-8, at which λ·L_reg is below f32 resolution and its value and gradient
// would go untested); λ then moves both up and down within the 10 steps.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "core/safetensors.h"
#include "models/train_step.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

constexpr double kLossRtol = 1e-6;
constexpr double kGradAtolOfMax = 2e-6, kGradRtol = 1e-4;
constexpr double kTrajRtol = 5e-6, kGradNormRtol = 3e-5;
constexpr double kRouterAtolOfMax = 1e-5, kRouterRtol = 1e-4;

bool verbose() { return std::getenv("REMOE_GOLDEN_VERBOSE") != nullptr; }

struct GoldenModel {
  std::map<std::string, Tensor> t;
  SafetensorsMetadata meta;
  explicit GoldenModel(const std::string& kind) {
    t = load_safetensors(std::string(REMOE_SOURCE_DIR) + "/tests/golden/model_" + kind + ".safetensors", &meta);
  }
  bool has(const std::string& name) const { return t.count(name) > 0; }
  Tensor at(const std::string& name) const {
    auto it = t.find(name);
    REMOE_CHECK(it != t.end(), "golden model file lacks tensor '", name, "'");
    return it->second;
  }
  double num(const std::string& name) const { return at(name).item(); }
  std::vector<double> vec(const std::string& name) const { return at(name).to(DType::f64).to_vector<double>(); }
  const std::string& str(const std::string& key) const {
    auto it = meta.find(key);
    REMOE_CHECK(it != meta.end(), "golden model metadata lacks '", key, "'");
    return it->second;
  }
  double param(const std::string& key) const { return std::stod(str(key)); }
  int64_t iparam(const std::string& key) const { return std::stoll(str(key)); }
};

ModelConfig config_of(const GoldenModel& g) {
  ModelConfig c;
  c.vocab_size = g.iparam("vocab_size");
  c.d_model = g.iparam("d_model");
  c.n_layers = g.iparam("n_layers");
  c.n_heads = g.iparam("n_heads");
  c.n_kv_heads = g.iparam("n_kv_heads");
  c.rope_base = g.param("rope_base");
  c.norm_eps = g.param("norm_eps");
  c.ffn = g.str("ffn");
  c.num_experts = g.iparam("num_experts");
  c.topk = g.iparam("topk");
  c.ffn_hidden = g.iparam("ffn_hidden");
  c.aux_loss_coeff = g.param("aux_loss_coeff");
  c.l1_load_balanced = true;
  return c;
}

// Overwrites every parameter with the golden initial weights; the file must name exactly our
// parameters, with our shapes.
void load_weights(const Transformer& m, const GoldenModel& g) {
  size_t in_file = 0;
  for (const auto& [name, t] : g.t) in_file += name.rfind("param.", 0) == 0;
  NamedTensors params = m.named_parameters();
  CHECK(in_file == params.size());
  for (const auto& [name, p] : params) {
    CAPTURE(name);
    REQUIRE(g.has("param." + name));
    Tensor w = g.at("param." + name);
    REQUIRE(w.shape() == p.shape());
    copy_(p, w);  // raw copy into the leaf's storage (bf16 -> f32 is exact)
  }
}

// Largest |a − b| and largest |a − b| / |b| (over |b| > 1e-3·max|b|), for the report.
struct ErrorStats {
  double abs = 0, rel = 0, normwise = 0;  // normwise: max over tensors of max|a − b| / max|b|
  void add(const Tensor& a, const Tensor& b) {
    std::vector<double> av = a.to(DType::f64).to_vector<double>(), bv = b.to(DType::f64).to_vector<double>();
    double mx = 0;
    for (double v : bv) mx = std::max(mx, std::abs(v));
    double worst = 0;
    for (size_t i = 0; i < av.size(); ++i) {
      double e = std::abs(av[i] - bv[i]);
      worst = std::max(worst, e);
      if (std::abs(bv[i]) > 1e-3 * mx) rel = std::max(rel, e / std::abs(bv[i]));
    }
    abs = std::max(abs, worst);
    if (mx > 0) normwise = std::max(normwise, worst / mx);
  }
  void add(double a, double b) { add(scalar_tensor(a, {DType::f64}), scalar_tensor(b, {DType::f64})); }
};

double max_abs(const Tensor& t) {
  std::vector<double> v = t.to(DType::f64).to_vector<double>();
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

void check_rel(double actual, double expected, double rtol, const std::string& what) {
  CHECK_MESSAGE(std::abs(actual - expected) <= rtol * std::abs(expected) + 1e-12, what, ": ", actual, " vs golden ",
                expected);
}

const char* const kKinds[] = {"dense", "topk", "relu"};

}  // namespace

TEST_CASE("golden model: step-0 loss parts, expert counts and every gradient match PyTorch") {
  for (const std::string kind : kKinds) {
    CAPTURE(kind);
    GoldenModel g(kind);
    Transformer model(config_of(g));
    load_weights(model, g);
    const double lambda0 = g.param("lambda0");

    ForwardOutput out = model.forward(g.at("inputs"));
    LossParts parts = compute_loss(model, out, g.at("targets"), lambda0);
    ErrorStats loss_err, grad_err;
    check_rel(parts.lm, g.num("loss0.lm"), kLossRtol, "lm");
    check_rel(parts.total.item(), g.num("loss0.total"), kLossRtol, "total");
    loss_err.add(parts.lm, g.num("loss0.lm"));
    loss_err.add(parts.total.item(), g.num("loss0.total"));
    if (model.is_moe()) {
      const bool topk = kind == "topk";
      const double router_golden = g.num(topk ? "loss0.aux" : "loss0.reg");
      const double router_ours = topk ? parts.aux : parts.reg;
      CHECK(router_golden > 0);
      check_rel(router_ours, router_golden, kLossRtol, topk ? "aux" : "reg");
      loss_err.add(router_ours, router_golden);
      Tensor counts = g.at("loss0.counts");  // [L, E]
      REQUIRE(out.layers.size() == static_cast<size_t>(counts.size(0)));
      for (size_t l = 0; l < out.layers.size(); ++l) {
        CAPTURE(l);
        CHECK(out.layers[l].counts.to_vector<int64_t>() ==
              reshape(slice(counts, 0, static_cast<int64_t>(l), static_cast<int64_t>(l) + 1), {-1}).to_vector<int64_t>());
      }
    }

    parts.total.backward();
    int64_t checked = 0;
    for (const auto& [name, p] : model.named_parameters()) {
      CAPTURE(name);
      if (!g.has("grad." + name)) {
        // PyTorch gave no gradient: an expert that received no token takes no part in the graph.
        CHECK(name.find(".experts.") != std::string::npos);
        CHECK_FALSE(p.grad().defined());
        continue;
      }
      Tensor want = g.at("grad." + name);
      REQUIRE(p.grad().defined());
      CHECK_CLOSE(p.grad(), want, kGradAtolOfMax * max_abs(want), kGradRtol);
      grad_err.add(p.grad(), want);
      ++checked;
    }
    CHECK(checked > 0);
    if (verbose())
      MESSAGE(kind, " step 0: loss max abs err ", loss_err.abs, " rel ", loss_err.rel, "; grads max abs err ",
              grad_err.abs, " rel ", grad_err.rel, " normwise ", grad_err.normwise, " (", checked, " tensors)");
  }
}

TEST_CASE("golden model: 10 AdamW steps of Trainer (losses, sparsity, λ, counts) match PyTorch") {
  for (const std::string kind : kKinds) {
    CAPTURE(kind);
    GoldenModel g(kind);
    Transformer model(config_of(g));
    load_weights(model, g);
    AdamWOptions opt;
    opt.beta1 = g.param("beta1");
    opt.beta2 = g.param("beta2");
    opt.eps = g.param("eps");
    opt.weight_decay = g.param("weight_decay");
    LrSchedule sched;
    sched.peak_lr = g.param("peak_lr");
    sched.min_lr = g.param("min_lr");
    sched.warmup_steps = g.iparam("warmup_steps");
    sched.total_steps = g.iparam("total_steps");
    Trainer trainer(model, opt, sched, g.param("clip_norm"), g.param("lambda0"), g.param("alpha"));

    const Batch batch{g.at("inputs"), g.at("targets")};
    const int64_t steps = g.iparam("steps");
    const std::vector<double> loss = g.vec("traj.loss"), lm = g.vec("traj.lm_loss"), aux = g.vec("traj.aux_loss"),
                              reg = g.vec("traj.reg_loss"), sparsity = g.vec("traj.sparsity"),
                              lambda = g.vec("traj.lambda"), lr = g.vec("traj.lr"), gnorm = g.vec("traj.grad_norm");
    REQUIRE(loss.size() == static_cast<size_t>(steps));
    ErrorStats loss_err, lambda_err, gnorm_err, router_err;
    int lambda_up = 0, lambda_down = 0;
    for (int64_t s = 0; s < steps; ++s) {
      CAPTURE(s);
      StepMetrics m = trainer.step({batch});
      CHECK(m.step == s);
      check_rel(m.loss, loss[s], kTrajRtol, "loss");
      check_rel(m.lm_loss, lm[s], kTrajRtol, "lm_loss");
      check_rel(m.aux_loss, aux[s], kTrajRtol, "aux_loss");
      check_rel(m.reg_loss, reg[s], kTrajRtol, "reg_loss");
      check_rel(m.lambda, lambda[s], kTrajRtol, "lambda");
      check_rel(m.lr, lr[s], kTrajRtol, "lr");
      check_rel(m.grad_norm, gnorm[s], kGradNormRtol, "grad_norm");
      CHECK(m.sparsity == sparsity[s]);  // a ratio of equal integer counts: bitwise equal
      loss_err.add(m.loss, loss[s]);
      loss_err.add(m.lm_loss, lm[s]);
      loss_err.add(m.aux_loss + m.reg_loss, aux[s] + reg[s]);
      lambda_err.add(m.lambda, lambda[s]);
      gnorm_err.add(m.grad_norm, gnorm[s]);
      if (s > 0) {
        lambda_up += lambda[s] > lambda[s - 1];
        lambda_down += lambda[s] < lambda[s - 1];
      }
      if (model.is_moe()) {
        Tensor counts = g.at("traj.counts");  // [steps, L, E]
        REQUIRE(m.expert_counts.size() == static_cast<size_t>(counts.size(1)));
        for (size_t l = 0; l < m.expert_counts.size(); ++l) {
          Tensor want = reshape(slice(slice(counts, 0, s, s + 1), 1, static_cast<int64_t>(l), static_cast<int64_t>(l) + 1), {-1});
          CHECK(m.expert_counts[l] == want.to_vector<int64_t>());
        }
      }
    }
    if (kind == "relu") {
      // The data was chosen so that the controller really works: λ moves both ways.
      CHECK(lambda_up > 0);
      CHECK(lambda_down > 0);
    }

    // After the last step: the LM loss at the trained weights, and the routers themselves.
    ForwardOutput out = model.forward(batch.inputs);
    const double final_lm = compute_loss(model, out, batch.targets, 0.0).lm;
    check_rel(final_lm, g.num("final.lm_loss"), kTrajRtol, "final lm_loss");
    CHECK(final_lm < lm[0]);  // it trained
    loss_err.add(final_lm, g.num("final.lm_loss"));
    for (int64_t l = 0; model.is_moe() && l < model.config().n_layers; ++l) {
      const std::string name = "layers." + std::to_string(l) + ".ffn.router";
      CAPTURE(name);
      Tensor want = g.at("final." + name);
      CHECK_CLOSE(model.parameter(name), want, kRouterAtolOfMax * max_abs(want), kRouterRtol);
      router_err.add(model.parameter(name), want);
    }
    if (verbose())
      MESSAGE(kind, " trajectory: losses max rel err ", loss_err.rel, ", lambda rel ", lambda_err.rel,
              ", grad norm rel ", gnorm_err.rel, ", final routers max abs err ", router_err.abs, " rel ",
              router_err.rel, " normwise ", router_err.normwise, "; lambda up ", lambda_up, "x down ", lambda_down, "x");
  }
}
