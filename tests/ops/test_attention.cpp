#include <cmath>

#include "ops/cpu/attention.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

struct Cfg {
  int64_t B, T, Hq, Hkv, D;
};
// T = 1, T = 7, T crossing one and two block boundaries (kAttentionBlock = 32); no GQA, GQA 2:1,
// GQA 6:1 (multi-query); odd and even head dims.
const std::vector<Cfg> kCfgs = {
    {1, 1, 1, 1, 5}, {2, 7, 2, 2, 8}, {1, 33, 4, 2, 5}, {2, 33, 6, 1, 8}, {1, 70, 2, 1, 8}, {2, 7, 6, 1, 5},
};

std::string cfg_str(const Cfg& c, bool causal) {
  return "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " Hq=" + std::to_string(c.Hq) +
         " Hkv=" + std::to_string(c.Hkv) + " D=" + std::to_string(c.D) + (causal ? " causal" : " full");
}

// The definition, one output element at a time: o[b,t,h] = Σ_j softmax_j(q·k_j/√D) v_j over j ≤ t
// (causal) or all j, with kv head h / (Hq/Hkv).
std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), Hkv = k.size(2), D = q.size(3), G = Hq / Hkv;
  std::vector<double> qv = q.to(DType::f64).to_vector<double>(), kv = k.to(DType::f64).to_vector<double>(),
                      vv = v.to(DType::f64).to_vector<double>();
  auto at = [&](const std::vector<double>& x, int64_t H, int64_t b, int64_t t, int64_t h, int64_t i) {
    return x[((b * T + t) * H + h) * D + i];
  };
  std::vector<double> out(B * T * Hq * D, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t n = causal ? t + 1 : T;
        std::vector<double> s(n);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          for (int64_t i = 0; i < D; ++i) s[j] += at(qv, Hq, b, t, h, i) * at(kv, Hkv, b, j, h / G, i);
          s[j] /= std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int64_t j = 0; j < n; ++j)
          for (int64_t i = 0; i < D; ++i) out[((b * T + t) * Hq + h) * D + i] += s[j] / sum * at(vv, Hkv, b, j, h / G, i);
      }
  return out;
}

struct QKV {
  Tensor q, k, v;
};
QKV rand_qkv(const Cfg& c, uint64_t seed) {
  return {rand_leaf({c.B, c.T, c.Hq, c.D}, seed), rand_leaf({c.B, c.T, c.Hkv, c.D}, seed + 1),
          rand_leaf({c.B, c.T, c.Hkv, c.D}, seed + 2)};
}

// d(Σ w ∘ f(q, k, v)) / d(q, k, v) for a fixed random w.
std::vector<Tensor> grads_of(const Tensor& out, const std::vector<Tensor>& inputs, uint64_t seed) {
  Generator gen(seed);
  Tensor w = randn(out.shape(), gen, {out.dtype()});
  return grad(sum(mul(out, w)), inputs, Tensor(), /*retain_graph=*/true);  // q, k, v may share a graph
}

}  // namespace

TEST_CASE("attention forward matches the naive definition (f64 and f32)") {
  uint64_t seed = 1;
  for (const Cfg& c : kCfgs)
    for (bool causal : {true, false}) {
      CAPTURE(cfg_str(c, causal));
      QKV x = rand_qkv(c, seed += 3);
      Tensor want = from_vector(naive_attention(x.q, x.k, x.v, causal), {c.B, c.T, c.Hq, c.D});
      Tensor out = attention(x.q, x.k, x.v, causal);
      CHECK(out.shape() == Shape{c.B, c.T, c.Hq, c.D});
      CHECK_CLOSE(out, want, 1e-12, 1e-10);
      Tensor out32 = attention(x.q.to(DType::f32), x.k.to(DType::f32), x.v.to(DType::f32), causal);
      CHECK(out32.dtype() == DType::f32);
      CHECK_CLOSE(out32, want, 1e-5, 1e-4);
    }
}

TEST_CASE("attention: causal row t ignores keys after t; T = 1 returns v") {
  Cfg c{1, 9, 2, 1, 4};
  QKV x = rand_qkv(c, 50);
  Tensor out = attention(x.q, x.k, x.v, true);
  // Changing the last key and value changes only the last query's output.
  Tensor k2 = clone(x.k.detach()), v2 = clone(x.v.detach());
  copy_(slice(k2, 1, 8, 9), full({1, 1, 1, 4}, 3.0, {DType::f64}));
  copy_(slice(v2, 1, 8, 9), full({1, 1, 1, 4}, -2.0, {DType::f64}));
  Tensor out2 = attention(x.q, k2, v2, true);
  CHECK_CLOSE(slice(out2, 1, 0, 8), slice(out, 1, 0, 8), 0.0, 0.0);
  CHECK(compare_close(slice(out2, 1, 8, 9), slice(out, 1, 8, 9), 1e-6, 0) != "");
  // One time step: the only key gets weight 1 for every query head.
  Cfg one{2, 1, 4, 2, 3};
  QKV y = rand_qkv(one, 60);
  for (bool causal : {true, false}) {
    Tensor o = attention(y.q, y.k, y.v, causal);
    CHECK_CLOSE(o, reshape(expand(unsqueeze(y.v, 3), {2, 1, 2, 2, 3}), {2, 1, 4, 3}), 1e-15, 0);
  }
}

TEST_CASE("attention: fused forward and gradients match the composed version") {
  uint64_t seed = 100;
  for (const Cfg& c : kCfgs)
    for (bool causal : {true, false}) {
      CAPTURE(cfg_str(c, causal));
      QKV x = rand_qkv(c, seed += 3);
      Tensor fused = attention(x.q, x.k, x.v, causal), ref = composed::attention(x.q, x.k, x.v, causal);
      CHECK_CLOSE(fused, ref, 1e-12, 1e-10);
      std::vector<Tensor> gf = grads_of(fused, {x.q, x.k, x.v}, seed), gr = grads_of(ref, {x.q, x.k, x.v}, seed);
      for (size_t i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK_CLOSE(gf[i], gr[i], 1e-11, 1e-9);
      }
    }
}

TEST_CASE("attention f32: forward and gradients close to f64") {
  for (bool causal : {true, false}) {
    Cfg c{2, 40, 4, 2, 8};
    QKV x = rand_qkv(c, 200);
    Tensor q = x.q.to(DType::f32).set_requires_grad(), k = x.k.to(DType::f32).set_requires_grad(),
           v = x.v.to(DType::f32).set_requires_grad();
    std::vector<Tensor> g64 = grads_of(attention(x.q, x.k, x.v, causal), {x.q, x.k, x.v}, 7);
    Tensor out32 = attention(q, k, v, causal);
    CHECK_CLOSE(out32, attention(x.q, x.k, x.v, causal), 1e-5, 1e-4);
    std::vector<Tensor> g32 = grads_of(out32, {q, k, v}, 7);
    for (size_t i = 0; i < 3; ++i) {
      CHECK(g32[i].dtype() == DType::f32);
      CHECK_CLOSE(g32[i], g64[i], 1e-4, 1e-3);
    }
  }
}

TEST_CASE("attention backward: fused and split schedules agree, and partial requests match") {
  using cpu::AttentionBackwardSchedule;
  for (bool causal : {true, false})
    for (const Cfg& c : {Cfg{2, 33, 4, 2, 5}, Cfg{1, 70, 3, 1, 8}}) {
      CAPTURE(cfg_str(c, causal));
      QKV x = rand_qkv(c, 300);
      Tensor q = x.q.detach(), k = x.k.detach(), v = x.v.detach();
      const double scale = 1 / std::sqrt(double(c.D));
      Tensor out = empty(q.shape(), {DType::f64}), lse = empty({c.B, c.Hq, c.T}, {DType::f64});
      cpu::attention_forward(q, k, v, causal, scale, out, lse);
      Generator gen(9);
      Tensor dout = randn(out.shape(), gen, {DType::f64});
      auto run = [&](AttentionBackwardSchedule s, bool want_q, bool want_kv) {
        std::vector<Tensor> g = {want_q ? zeros(q.shape(), {DType::f64}) : Tensor(),
                                 want_kv ? zeros(k.shape(), {DType::f64}) : Tensor(),
                                 want_kv ? zeros(v.shape(), {DType::f64}) : Tensor()};
        cpu::attention_backward(q, k, v, out, lse, dout, causal, scale, g[0], g[1], g[2], s);
        return g;
      };
      std::vector<Tensor> fused = run(AttentionBackwardSchedule::fused, true, true);
      std::vector<Tensor> split = run(AttentionBackwardSchedule::split, true, true);
      std::vector<Tensor> only_q = run(AttentionBackwardSchedule::automatic, true, false);
      std::vector<Tensor> only_kv = run(AttentionBackwardSchedule::automatic, false, true);
      std::vector<Tensor> ref = grad(sum(mul(composed::attention(x.q, x.k, x.v, causal), dout)), {x.q, x.k, x.v});
      for (size_t i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK_CLOSE(fused[i], ref[i], 1e-11, 1e-9);
        CHECK_CLOSE(split[i], ref[i], 1e-11, 1e-9);
      }
      CHECK_CLOSE(only_q[0], ref[0], 1e-11, 1e-9);
      CHECK_CLOSE(only_kv[1], ref[1], 1e-11, 1e-9);
      CHECK_CLOSE(only_kv[2], ref[2], 1e-11, 1e-9);
    }
}

TEST_CASE("attention reads strided views (slices of a fused QKV, permuted heads)") {
  for (bool causal : {true, false}) {
    // A fused projection [B, T, (Hq + 2·Hkv)·D] cut into q, k, v along the head axis.
    const int64_t B = 2, T = 35, Hq = 4, Hkv = 2, D = 5;
    Tensor qkv = rand_leaf({B, T, (Hq + 2 * Hkv) * D}, 400);
    auto split = [&](const Tensor& base) {
      Tensor heads = reshape(base, {B, T, Hq + 2 * Hkv, D});
      return QKV{slice(heads, 2, 0, Hq), slice(heads, 2, Hq, Hq + Hkv), slice(heads, 2, Hq + Hkv, Hq + 2 * Hkv)};
    };
    QKV x = split(qkv);
    CHECK(!x.q.is_contiguous());
    Tensor fused = attention(x.q, x.k, x.v, causal), ref = composed::attention(x.q, x.k, x.v, causal);
    CHECK_CLOSE(fused, ref, 1e-12, 1e-10);
    CHECK_CLOSE(fused, from_vector(naive_attention(x.q, x.k, x.v, causal), fused.shape()), 1e-12, 1e-10);
    CHECK_CLOSE(grads_of(fused, {qkv}, 5)[0], grads_of(ref, {qkv}, 5)[0], 1e-11, 1e-9);

    // Head dim not the innermost axis (stride ≠ 1): the op copies it first.
    Tensor qt = rand_leaf({B, T, D, Hq}, 410), kt = rand_leaf({B, T, D, Hkv}, 411), vt = rand_leaf({B, T, D, Hkv}, 412);
    Tensor q = permute(qt, {0, 1, 3, 2}), k = permute(kt, {0, 1, 3, 2}), v = permute(vt, {0, 1, 3, 2});
    Tensor f2 = attention(q, k, v, causal), r2 = composed::attention(q, k, v, causal);
    CHECK_CLOSE(f2, r2, 1e-12, 1e-10);
    std::vector<Tensor> gf = grads_of(f2, {qt, kt, vt}, 6), gr = grads_of(r2, {qt, kt, vt}, 6);
    for (size_t i = 0; i < 3; ++i) CHECK_CLOSE(gf[i], gr[i], 1e-11, 1e-9);
  }
}

TEST_CASE("attention gradcheck (f64)") {
  uint64_t seed = 500;
  for (const Cfg& c : {Cfg{1, 5, 2, 1, 3}, Cfg{2, 4, 2, 2, 5}, Cfg{1, 34, 2, 1, 3}, Cfg{1, 3, 3, 1, 2}})
    for (bool causal : {true, false}) {
      CAPTURE(cfg_str(c, causal));
      QKV x = rand_qkv(c, seed += 3);
      CHECK_GRADCHECK([causal](const std::vector<Tensor>& in) { return attention(in[0], in[1], in[2], causal); },
                      {x.q, x.k, x.v});
    }
}

TEST_CASE("attention: only the inputs that need a gradient get one") {
  Cfg c{1, 6, 2, 1, 4};
  QKV x = rand_qkv(c, 600);
  Tensor k = x.k.detach();
  std::vector<Tensor> g = grad(sum(attention(x.q, k, x.v, true)), {x.q, x.v});
  std::vector<Tensor> ref = grad(sum(composed::attention(x.q, k, x.v, true)), {x.q, x.v});
  CHECK_CLOSE(g[0], ref[0], 1e-12, 1e-10);
  CHECK_CLOSE(g[1], ref[1], 1e-12, 1e-10);
}

TEST_CASE("attention argument errors name the op and the shapes") {
  Tensor q = zeros({2, 5, 4, 8}), k = zeros({2, 5, 2, 8}), v = zeros({2, 5, 2, 8});
  CHECK_THROWS_WITH_ALL(attention(zeros({5, 4, 8}), k, v), "attention", "rank 4", "[5, 4, 8]", "[2, 5, 2, 8]");
  CHECK_THROWS_WITH_ALL(attention(q, zeros({2, 5, 2, 6}), zeros({2, 5, 2, 6})), "attention", "head dim",
                        "[2, 5, 4, 8]", "[2, 5, 2, 6]");
  CHECK_THROWS_WITH_ALL(attention(q, zeros({2, 5, 3, 8}), zeros({2, 5, 3, 8})), "attention", "multiple",
                        "Hkv = 3", "[2, 5, 4, 8]", "[2, 5, 3, 8]");
  CHECK_THROWS_WITH_ALL(attention(q, zeros({1, 5, 2, 8}), zeros({1, 5, 2, 8})), "attention", "batch or time",
                        "[2, 5, 4, 8]", "[1, 5, 2, 8]");
  CHECK_THROWS_WITH_ALL(attention(q, zeros({2, 6, 2, 8}), zeros({2, 6, 2, 8})), "attention", "batch or time",
                        "[2, 6, 2, 8]");
  CHECK_THROWS_WITH_ALL(attention(q, k, zeros({2, 5, 1, 8})), "attention", "k and v", "[2, 5, 2, 8]", "[2, 5, 1, 8]");
  CHECK_THROWS_WITH_ALL(attention(q, k, v.to(DType::f64)), "attention", "dtypes differ", "f32", "f64");
  CHECK_THROWS_WITH_ALL(attention(q.to(DType::bf16), k.to(DType::bf16), v.to(DType::bf16)), "attention", "bf16",
                        "[2, 5, 4, 8]");
  CHECK_THROWS_WITH_ALL(composed::attention(q, zeros({2, 5, 3, 8}), zeros({2, 5, 3, 8})), "attention", "multiple",
                        "[2, 5, 3, 8]");
}
