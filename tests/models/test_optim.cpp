#include <algorithm>
#include <cmath>

#include "models/optim.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// torch.optim.AdamW's update written out in plain double arithmetic, one parameter at a time.
struct RefParam {
  std::vector<double> p, m, v;
  int64_t t = 0;
  bool decay = false;
};

void ref_step(RefParam& r, const std::vector<double>& g, const AdamWOptions& o) {
  r.t += 1;
  const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(r.t));
  const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(r.t));
  for (size_t i = 0; i < r.p.size(); ++i) {
    if (r.decay) r.p[i] *= 1 - o.lr * o.weight_decay;
    r.m[i] = o.beta1 * r.m[i] + (1 - o.beta1) * g[i];
    r.v[i] = o.beta2 * r.v[i] + (1 - o.beta2) * g[i] * g[i];
    r.p[i] -= (o.lr / bc1) * r.m[i] / (std::sqrt(r.v[i]) / std::sqrt(bc2) + o.eps);
  }
}

RefParam ref_of(const std::vector<double>& p, bool decay) {
  return {p, std::vector<double>(p.size(), 0.0), std::vector<double>(p.size(), 0.0), 0, decay};
}

std::vector<double> values(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

// |a − b| <= tol · max(1, |b|) elementwise: absolute for values below 1, relative above.
void check_vec(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CAPTURE(a[i]);
    CAPTURE(b[i]);
    CHECK(std::abs(a[i] - b[i]) <= tol * std::max(1.0, std::abs(b[i])));
  }
}

// Grads of the three steps; the 1-D parameter gets none at step 2 (it must be skipped).
const std::vector<std::vector<double>> kGradW = {
    {0.5, -1.0, 0.25, 2.0, -0.125, 0.0}, {-0.3, 0.7, 0.1, -1.5, 0.4, 0.9}, {0.05, -0.2, 0.6, 0.8, -0.9, -0.01}};
const std::vector<std::vector<double>> kGradB = {{1.0, -2.0, 0.5}, {}, {-0.25, 0.75, 3.0}};

template <class T>
void run_adamw_reference(double tol) {
  const DType dt = dtype_of<T>();
  const std::vector<double> w0 = {0.1, -0.2, 0.3, -0.4, 0.5, -0.6}, b0 = {1.0, 0.5, -0.25};
  Tensor W = from_vector<double>(w0, {2, 3}).to(dt).set_requires_grad();
  Tensor b = from_vector<double>(b0, {3}).to(dt).set_requires_grad();
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.1;  // large enough that the decay term shows
  AdamW opt({{"W", W}, {"b", b}}, o);
  CHECK(opt.decays("W"));
  CHECK_FALSE(opt.decays("b"));

  RefParam rw = ref_of(w0, true), rb = ref_of(b0, false);
  for (size_t s = 0; s < 3; ++s) {
    CAPTURE(s);
    opt.zero_grad();
    W.set_grad(from_vector<double>(kGradW[s], {2, 3}).to(dt));
    if (!kGradB[s].empty()) b.set_grad(from_vector<double>(kGradB[s], {3}).to(dt));
    opt.step();
    ref_step(rw, kGradW[s], o);
    if (!kGradB[s].empty()) ref_step(rb, kGradB[s], o);
    check_vec(values(W), rw.p, tol);
    check_vec(values(b), rb.p, tol);
  }
  CHECK(opt.step_count("W") == 3);
  CHECK(opt.step_count("b") == 2);  // skipped at step 2
  NamedTensors st = opt.state_tensors();
  REQUIRE(st.size() == 6);
  CHECK(st[0].first == "W.step");
  CHECK(st[0].second.item() == 3);
  CHECK(st[1].first == "W.exp_avg");
  check_vec(values(st[1].second), rw.m, tol);
  CHECK(st[2].first == "W.exp_avg_sq");
  check_vec(values(st[2].second), rw.v, tol);
  CHECK(st[3].first == "b.step");
  CHECK(st[3].second.item() == 2);
  check_vec(values(st[4].second), rb.m, tol);
  check_vec(values(st[5].second), rb.v, tol);
}

}  // namespace

TEST_CASE("AdamW: first step is the closed form p(1 - lr*wd) - lr*g/(|g| + eps)") {
  // At t = 1 the bias corrections undo (1 - β): m̂ = g, sqrt(v̂) = |g|.
  Tensor W = from_vector<double>({0.1, -0.2, 0.3, -0.4}, {2, 2}).set_requires_grad();
  Tensor b = from_vector<double>({1.0, 2.0}, {2}).set_requires_grad();
  AdamWOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.5;
  AdamW opt({W, b}, o);
  CHECK(opt.name(0) == "0");
  CHECK(opt.name(1) == "1");
  const std::vector<double> gw = {1.0, -3.0, 1e-9, 0.0}, gb = {-2.0, 4.0};
  W.set_grad(from_vector<double>(gw, {2, 2}));
  b.set_grad(from_vector<double>(gb, {2}));
  opt.step();
  const std::vector<double> w0 = {0.1, -0.2, 0.3, -0.4}, b0 = {1.0, 2.0};
  std::vector<double> ew, eb;
  for (size_t i = 0; i < 4; ++i) ew.push_back(w0[i] * (1 - 0.01 * 0.5) - 0.01 * gw[i] / (std::abs(gw[i]) + 1e-8));
  for (size_t i = 0; i < 2; ++i) eb.push_back(b0[i] - 0.01 * gb[i] / (std::abs(gb[i]) + 1e-8));  // no decay on 1-D
  check_vec(values(W), ew, 1e-12);
  check_vec(values(b), eb, 1e-12);
}

TEST_CASE("AdamW matches PyTorch's formula over 3 steps (f64 and f32)") {
  SUBCASE("f64") { run_adamw_reference<double>(1e-12); }
  SUBCASE("f32") { run_adamw_reference<float>(2e-6); }
}

TEST_CASE("AdamW: decay flag override, gradients from backward, large (threaded) parameter") {
  SUBCASE("set_decay overrides the rank rule") {
    Tensor W = from_vector<double>({1.0, 1.0}, {1, 2}).set_requires_grad();
    Tensor g = from_vector<double>({1.0, 1.0}, {2}).set_requires_grad();
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = 1.0;
    AdamW opt({{"w", W}, {"g", g}}, o);
    opt.set_decay("w", false);
    opt.set_decay("g", true);
    CHECK_FALSE(opt.decays("w"));
    CHECK(opt.decays("g"));
    W.set_grad(zeros({1, 2}, {DType::f64}));  // zero gradient: only the decay can move a value
    g.set_grad(zeros({2}, {DType::f64}));
    opt.step();
    check_vec(values(W), {1.0, 1.0}, 0);
    check_vec(values(g), {0.9, 0.9}, 1e-15);
    CHECK_THROWS_WITH_ALL(opt.set_decay("nope", true), "AdamW::set_decay", "nope");
  }
  SUBCASE("gradient produced by backward") {
    Tensor W = from_vector<double>({0.5, -1.5, 2.0, 0.25}, {2, 2}).set_requires_grad();
    AdamWOptions o;
    o.lr = 0.05;
    AdamW opt({{"W", W}}, o);
    RefParam r = ref_of(values(W), true);
    for (int s = 0; s < 2; ++s) {
      opt.zero_grad();
      std::vector<double> g;
      for (double x : values(W)) g.push_back(2 * x);  // d/dW Σ W² = 2W
      sum(square(W)).backward();
      opt.step();
      ref_step(r, g, o);
      check_vec(values(W), r.p, 1e-12);
    }
    CHECK_FALSE(W.grad_fn());  // the update recorded nothing
  }
  SUBCASE("non-contiguous gradient and a parameter above the threading grain") {
    const int64_t rows = 300, cols = 257;  // 77,100 elements > kParallelGrain
    Generator gen(7);
    Tensor P = randn({rows, cols}, gen, {DType::f32}).set_requires_grad();
    Tensor gt = randn({cols, rows}, gen, {DType::f32});
    AdamWOptions o;
    o.lr = 0.01;
    AdamW opt({{"P", P}}, o);
    RefParam r = ref_of(values(P), true);
    Tensor g = transpose(gt, 0, 1);  // a strided view: the optimizer must read it correctly
    REQUIRE_FALSE(g.is_contiguous());
    P.set_grad(g);
    opt.step();
    ref_step(r, values(g), o);
    CHECK_CLOSE(P, from_vector<double>(r.p, {rows, cols}).to(DType::f32), 1e-6, 1e-5);
  }
}

TEST_CASE("AdamW: state round-trip continues identically") {
  auto make = [](Tensor& W, Tensor& b) {
    W = from_vector<float>({0.1f, 0.2f, -0.3f, 0.4f}, {2, 2}).set_requires_grad();
    b = from_vector<float>({0.5f, -0.5f}, {2}).set_requires_grad();
  };
  auto grads = [](const Tensor& W, const Tensor& b, float s) {
    W.set_grad(from_vector<float>({s, -2 * s, 0.5f, s * s}, {2, 2}));
    b.set_grad(from_vector<float>({-s, 1.0f}, {2}));
  };
  Tensor W1, b1, W2, b2;
  make(W1, b1);
  AdamWOptions o;
  o.lr = 0.02;
  AdamW a({{"W", W1}, {"b", b1}}, o);
  for (float s : {1.0f, -0.5f}) {
    grads(W1, b1, s);
    a.step();
  }
  // Snapshot (state_tensors returns live handles) and restore into a fresh optimizer over copies.
  NamedTensors saved;
  for (auto& [k, t] : a.state_tensors()) saved.emplace_back(k, t.to(DType::f32));
  make(W2, b2);
  copy_(W2, W1);
  copy_(b2, b1);
  AdamW c({{"W", W2}, {"b", b2}}, o);
  c.load_state(saved);
  CHECK(c.step_count("W") == 2);
  grads(W1, b1, 0.75f);
  grads(W2, b2, 0.75f);
  a.step();
  c.step();
  CHECK(W1.to_vector<float>() == W2.to_vector<float>());
  CHECK(b1.to_vector<float>() == b2.to_vector<float>());

  SUBCASE("bad state is rejected by key and leaves the optimizer unchanged") {
    NamedTensors missing(saved.begin(), saved.end() - 1);
    CHECK_THROWS_WITH_ALL(c.load_state(missing), "AdamW::load_state", "missing", "b.exp_avg_sq");
    NamedTensors extra = saved;
    extra.emplace_back("c.exp_avg", zeros({2}));
    CHECK_THROWS_WITH_ALL(c.load_state(extra), "unknown key", "c.exp_avg");
    NamedTensors wrong = saved;
    wrong[1].second = zeros({4});
    CHECK_THROWS_WITH_ALL(c.load_state(wrong), "W.exp_avg", "[4]", "[2, 2]");
    CHECK(c.step_count("W") == 3);
  }
}

TEST_CASE("AdamW: argument errors") {
  Tensor W = zeros({2, 2}).set_requires_grad();
  AdamWOptions bad;
  bad.beta1 = 1.0;
  CHECK_THROWS_WITH_ALL(AdamW({W}, bad), "AdamW", "beta1");
  CHECK_THROWS_WITH_ALL(AdamW({{"a", W}, {"a", zeros({2})}}), "AdamW", "\"a\"", "twice");
  CHECK_THROWS_WITH_ALL(AdamW({{"a", W}, {"b", W}}), "AdamW", "\"b\"", "another name");
  CHECK_THROWS_WITH_ALL(AdamW({{"i", zeros({2}, {DType::i64})}}), "AdamW", "\"i\"", "i64");
  CHECK_THROWS_WITH_ALL(AdamW({{"t", transpose(zeros({2, 3}), 0, 1)}}), "AdamW", "\"t\"", "[3, 2]", "contiguous");
  AdamW opt({{"W", W}});
  W.set_grad(zeros({3, 2}));
  CHECK_THROWS_WITH_ALL(opt.step(), "AdamW::step", "\"W\"", "[3, 2]", "[2, 2]");
  W.set_grad(zeros({2, 2}, {DType::f64}));
  CHECK_THROWS_WITH_ALL(opt.step(), "AdamW::step", "\"W\"", "f64", "f32");
  CHECK_THROWS_WITH_ALL(opt.set_lr(-1), "set_lr");
}

TEST_CASE("clip_grad_norm") {
  SUBCASE("norm over all gradients, scaled by max/(norm + 1e-6) when above") {
    Tensor a = zeros({2}, {DType::f64}).set_requires_grad();
    Tensor b = zeros({1, 1}).set_requires_grad();  // f32 grads mix with f64 ones
    Tensor c = zeros({3}).set_requires_grad();    // no gradient: skipped
    a.set_grad(from_vector<double>({3.0, 4.0}, {2}));
    b.set_grad(from_vector<float>({12.0f}, {1, 1}));
    double n = clip_grad_norm({a, b, c}, 1.0);
    CHECK(n == doctest::Approx(13.0).epsilon(1e-15));
    const double coef = 1.0 / (13.0 + 1e-6);
    check_vec(values(a.grad()), {3 * coef, 4 * coef}, 1e-15);
    check_vec(values(b.grad()), {12 * coef}, 1e-7);
    CHECK_FALSE(c.grad().defined());
    // After clipping the norm is max_norm up to the 1e-6 guard.
    CHECK(clip_grad_norm({a, b, c}, 1.0) == doctest::Approx(1.0).epsilon(1e-6));
  }
  SUBCASE("below max_norm: untouched") {
    Tensor a = zeros({2}, {DType::f64}).set_requires_grad();
    Tensor g = from_vector<double>({0.3, 0.4}, {2});
    a.set_grad(g);
    CHECK(clip_grad_norm({a}, 1.0) == doctest::Approx(0.5));
    CHECK(a.grad().same(g));
    check_vec(values(a.grad()), {0.3, 0.4}, 0);
  }
  SUBCASE("non-finite norm is returned, gradients untouched") {
    Tensor a = zeros({2}).set_requires_grad();
    a.set_grad(from_vector<float>({INFINITY, 1.0f}, {2}));
    CHECK(std::isinf(clip_grad_norm({a}, 1.0)));
    CHECK(a.grad().to_vector<float>()[1] == 1.0f);
    a.set_grad(from_vector<float>({NAN, 1.0f}, {2}));
    CHECK(std::isnan(clip_grad_norm({a}, 1.0)));
    CHECK(a.grad().to_vector<float>()[1] == 1.0f);
  }
  SUBCASE("gradients shared between parameters (add's backward) are scaled once each") {
    Tensor a = from_vector<double>({1.0, 2.0}, {2}).set_requires_grad();
    Tensor b = from_vector<double>({3.0, 4.0}, {2}).set_requires_grad();
    sum(mul(add(a, b), 3.0)).backward();  // both gradients are [3, 3]
    double n = clip_grad_norm({a, b, a}, 1.0);  // a listed twice counts once
    CHECK(n == doctest::Approx(6.0));
    const double coef = 1.0 / (6.0 + 1e-6);
    check_vec(values(a.grad()), {3 * coef, 3 * coef}, 1e-14);
    check_vec(values(b.grad()), {3 * coef, 3 * coef}, 1e-14);
  }
  SUBCASE("large gradient (threaded reduction) in double") {
    const int64_t n = 100003;
    Tensor a = zeros({n}).set_requires_grad();
    a.set_grad(full({n}, 0.1, {DType::f32}));
    const double expect = std::sqrt(static_cast<double>(n)) * static_cast<double>(0.1f);
    CHECK(clip_grad_norm({a}, 1e9) == doctest::Approx(expect).epsilon(1e-12));
  }
  CHECK_THROWS_WITH_ALL(clip_grad_norm({}, 0.0), "clip_grad_norm", "max_norm");
}
