// RMSNorm, RoPE and composed SwiGLU: fused kernels against naive loops, against their composed
// versions, gradchecks, and argument errors.
#include <cmath>

#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// y[r, i] = x[r, i] / sqrt(mean_i x[r, i]² + eps) · w[i], in plain loops.
std::vector<double> naive_rms_norm(const Tensor& x, const Tensor& w, double eps) {
  std::vector<double> xv = x.to(DType::f64).to_vector<double>(), wv = w.to(DType::f64).to_vector<double>();
  const size_t D = wv.size(), rows = xv.size() / D;
  std::vector<double> y(xv.size());
  for (size_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (size_t i = 0; i < D; ++i) ss += xv[r * D + i] * xv[r * D + i];
    double rs = 1 / std::sqrt(ss / double(D) + eps);
    for (size_t i = 0; i < D; ++i) y[r * D + i] = xv[r * D + i] * rs * wv[i];
  }
  return y;
}

// The rotation of every (x[..., i], x[..., i + D/2]) by (pos_offset + t)·base^(−2i/D), in loops.
std::vector<double> naive_rope(const Tensor& x, double base, int64_t pos_offset) {
  std::vector<double> xv = x.to(DType::f64).to_vector<double>(), y(xv.size());
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          double a = double(pos_offset + t) * std::pow(base, -2.0 * double(i) / double(D));
          size_t o = size_t(((b * T + t) * H + h) * D + i);
          double x1 = xv[o], x2 = xv[o + size_t(half)];
          y[o] = x1 * std::cos(a) - x2 * std::sin(a);
          y[o + size_t(half)] = x2 * std::cos(a) + x1 * std::sin(a);
        }
  return y;
}

Tensor vec_tensor(const std::vector<double>& v, const Shape& s) { return from_vector(v, s); }

// Gradients of sum(f(inputs) · r) for a fixed random r, for every input that requires grad.
template <class F>
std::vector<Tensor> grads_of(F f, const std::vector<Tensor>& inputs, uint64_t seed) {
  Tensor y = f(inputs);
  Generator gen(seed);
  Tensor r = randn(y.shape(), gen, {y.dtype()});
  return remoe::grad(sum(mul(y, r)), inputs);
}

}  // namespace

// ---------------- RMSNorm ----------------

TEST_CASE("rms_norm matches a naive loop (f64 and f32), and composed::rms_norm") {
  const std::vector<Shape> shapes = {{5}, {3, 7}, {2, 3, 5}, {1, 1, 13}, {4, 1}};
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    CAPTURE(shape_str(s));
    Tensor x = rand_leaf(s, ++seed), w = rand_leaf({s.back()}, ++seed);
    Tensor expect = vec_tensor(naive_rms_norm(x, w, 1e-5), s);
    CHECK_CLOSE(rms_norm(x, w, 1e-5), expect, 1e-13, 1e-12);
    CHECK_CLOSE(composed::rms_norm(x, w, 1e-5), expect, 1e-13, 1e-12);
    Tensor y32 = rms_norm(x.to(DType::f32), w.to(DType::f32), 1e-5);
    CHECK(y32.dtype() == DType::f32);
    CHECK_CLOSE(y32, expect, 1e-5, 1e-5);
  }
  // eps matters when the row is small.
  Tensor x = full({2, 4}, 1e-3, {DType::f64}), w = ones({4}, {DType::f64});
  CHECK_CLOSE(rms_norm(x, w, 1e-6), vec_tensor(naive_rms_norm(x, w, 1e-6), {2, 4}), 1e-14, 1e-12);
  CHECK(rms_norm(x, w, 1e-6).to_vector<double>()[0] == doctest::Approx(1e-3 / std::sqrt(1e-6 + 1e-6)));
}

TEST_CASE("rms_norm gradients: gradcheck, and fused backward equals the composed one") {
  const std::vector<Shape> shapes = {{6}, {3, 7}, {2, 3, 5}, {5, 1}};
  uint64_t seed = 20;
  for (const Shape& s : shapes) {
    CAPTURE(shape_str(s));
    Tensor x = rand_leaf(s, ++seed), w = rand_leaf({s.back()}, ++seed);
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 1e-5); }, {x, w});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return composed::rms_norm(in[0], in[1], 1e-5); }, {x, w});
    auto gf = grads_of([](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 0.1); }, {x, w}, 7);
    auto gc = grads_of([](const std::vector<Tensor>& in) { return composed::rms_norm(in[0], in[1], 0.1); }, {x, w}, 7);
    CHECK_CLOSE(gf[0], gc[0], 1e-12, 1e-10);
    CHECK_CLOSE(gf[1], gc[1], 1e-12, 1e-10);
  }
  // Only x needs a gradient (a frozen weight): the weight gradient is skipped.
  Tensor x = rand_leaf({3, 4}, 90);
  Tensor w = rand_leaf({4}, 91).detach();
  CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return rms_norm(in[0], w); }, {x});
  // A non-contiguous x (transposed view) gives the same values and gradient as its copy.
  Tensor xt = rand_leaf({5, 3}, 92), wt = rand_leaf({5}, 93);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return rms_norm(transpose(in[0], 0, 1), in[1]); }, {xt, wt});
}

TEST_CASE("rms_norm on the multi-threaded path (many rows) agrees with composed, f64 and f32") {
  // 300 x 128 = 38400 elements >= kParallelGrain: rows run in parallel, gw sums per-thread partials.
  Tensor x = rand_leaf({3, 100, 128}, 31), w = rand_leaf({128}, 32);
  auto gf = grads_of([](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1]); }, {x, w}, 5);
  auto gc = grads_of([](const std::vector<Tensor>& in) { return composed::rms_norm(in[0], in[1]); }, {x, w}, 5);
  CHECK_CLOSE(rms_norm(x, w), composed::rms_norm(x, w), 1e-12, 1e-10);
  CHECK_CLOSE(gf[0], gc[0], 1e-11, 1e-9);
  CHECK_CLOSE(gf[1], gc[1], 1e-10, 1e-9);
  Tensor x32 = x.detach().to(DType::f32).set_requires_grad(), w32 = w.detach().to(DType::f32).set_requires_grad();
  auto g32 = grads_of([](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1]); }, {x32, w32}, 5);
  CHECK(g32[1].dtype() == DType::f32);
  CHECK_CLOSE(g32[0], gc[0], 1e-4, 1e-4);
  CHECK_CLOSE(g32[1], gc[1], 1e-3, 1e-4);
}

TEST_CASE("rms_norm argument errors name the op and the shapes") {
  Tensor x = zeros({2, 3}, {DType::f64});
  CHECK_THROWS_WITH_ALL(rms_norm(x, zeros({4}, {DType::f64})), "rms_norm", "[4]", "[2, 3]");
  CHECK_THROWS_WITH_ALL(rms_norm(x, zeros({1, 3}, {DType::f64})), "rms_norm", "[1, 3]", "[2, 3]");
  CHECK_THROWS_WITH_ALL(rms_norm(x, zeros({3}, {DType::f32})), "rms_norm", "f64", "f32");
  CHECK_THROWS_WITH_ALL(rms_norm(scalar_tensor(1.0, {DType::f64}), zeros({1}, {DType::f64})), "rms_norm", "[]");
  CHECK_THROWS_WITH_ALL(rms_norm(zeros({2, 3}, {DType::i64}), zeros({3}, {DType::i64})), "rms_norm", "i64");
  CHECK_THROWS_WITH_ALL(rms_norm(x, zeros({3}, {DType::f64}), -1.0), "rms_norm", "eps");
  CHECK_THROWS_WITH_ALL(composed::rms_norm(x, zeros({4}, {DType::f64})), "composed::rms_norm", "[4]", "[2, 3]");
}

// ---------------- RoPE ----------------

TEST_CASE("rope matches a naive loop and composed::rope, for several bases and offsets") {
  const std::vector<Shape> shapes = {{1, 1, 1, 2}, {2, 5, 3, 8}, {1, 7, 2, 6}, {3, 4, 1, 10}};
  uint64_t seed = 40;
  for (const Shape& s : shapes)
    for (double base : {10000.0, 1e6, 10.0})
      for (int64_t off : {0, 3, 1000}) {
        CAPTURE(shape_str(s));
        CAPTURE(base);
        CAPTURE(off);
        Tensor x = rand_leaf(s, ++seed);
        Tensor expect = vec_tensor(naive_rope(x, base, off), s);
        CHECK_CLOSE(rope(x, base, off), expect, 1e-13, 1e-12);
        CHECK_CLOSE(composed::rope(x, base, off), expect, 1e-13, 1e-12);
        CHECK_CLOSE(rope(x.to(DType::f32), base, off), expect, 1e-5, 1e-5);
      }
  // Position 0 is the identity; the rotation preserves the norm of every pair.
  Tensor x = rand_leaf({2, 1, 3, 8}, 50);
  CHECK_CLOSE(rope(x), x, 0, 0);
  Tensor y = rope(rand_leaf({2, 6, 3, 8}, 51).detach(), 500.0, 2);
  Tensor x2 = rand_leaf({2, 6, 3, 8}, 51).detach();
  auto pair_norm = [](const Tensor& t) {
    return add(square(slice(t, 3, 0, 4)), square(slice(t, 3, 4, 8)));
  };
  CHECK_CLOSE(pair_norm(y), pair_norm(x2), 1e-12, 1e-12);
}

TEST_CASE("rope with pos_offset equals the tail of rope over the longer sequence") {
  Tensor x = rand_leaf({2, 9, 2, 6}, 60).detach();
  Tensor full_seq = rope(x, 1e4, 0);
  Tensor tail = rope(contiguous(slice(x, 1, 4, 9)), 1e4, 4);
  CHECK_CLOSE(tail, slice(full_seq, 1, 4, 9), 1e-13, 1e-12);
}

TEST_CASE("rope gradients: gradcheck, fused equals composed, backward is the inverse rotation") {
  const std::vector<Shape> shapes = {{1, 3, 1, 2}, {2, 5, 3, 8}, {1, 4, 2, 6}};
  uint64_t seed = 70;
  for (const Shape& s : shapes) {
    CAPTURE(shape_str(s));
    Tensor x = rand_leaf(s, ++seed);
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return rope(in[0], 1e4, 2); }, {x});
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return composed::rope(in[0], 1e4, 2); }, {x});
    auto gf = grads_of([](const std::vector<Tensor>& in) { return rope(in[0], 1e6, 5); }, {x}, 9);
    auto gc = grads_of([](const std::vector<Tensor>& in) { return composed::rope(in[0], 1e6, 5); }, {x}, 9);
    CHECK_CLOSE(gf[0], gc[0], 1e-13, 1e-12);
  }
  // The gradient of sum(rope(x)·r) is r rotated back, so rope(gradient) is r again.
  Tensor x = rand_leaf({2, 4, 3, 8}, 80);
  Generator gen(3);
  Tensor r = randn(x.shape(), gen, {DType::f64});
  Tensor gx = remoe::grad(sum(mul(rope(x, 100.0, 1), r)), {x})[0];
  CHECK_CLOSE(rope(gx, 100.0, 1), r, 1e-13, 1e-12);
  // Non-contiguous input: a permuted view [B, T, H, D].
  Tensor xp = rand_leaf({2, 3, 4, 6}, 81);  // read as [B, H, T, D] and permuted
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return rope(permute(in[0], {0, 2, 1, 3})); }, {xp});
  CHECK_CLOSE(rope(permute(xp, {0, 2, 1, 3})), composed::rope(permute(xp, {0, 2, 1, 3})), 1e-13, 1e-12);
}

TEST_CASE("rope on the multi-threaded path agrees with composed, f64 and f32") {
  Tensor x = rand_leaf({2, 64, 4, 64}, 90);  // 32768 elements: rows run in parallel
  CHECK_CLOSE(rope(x, 1e4, 7), composed::rope(x, 1e4, 7), 1e-12, 1e-12);
  auto gf = grads_of([](const std::vector<Tensor>& in) { return rope(in[0], 1e4, 7); }, {x}, 4);
  auto gc = grads_of([](const std::vector<Tensor>& in) { return composed::rope(in[0], 1e4, 7); }, {x}, 4);
  CHECK_CLOSE(gf[0], gc[0], 1e-12, 1e-12);
  Tensor x32 = x.detach().to(DType::f32);
  CHECK_CLOSE(rope(x32, 1e4, 7), composed::rope(x32, 1e4, 7), 1e-5, 1e-5);
  CHECK_CLOSE(rope(x32, 1e4, 7), rope(x, 1e4, 7), 1e-5, 1e-5);
}

TEST_CASE("rope argument errors name the op and the shape") {
  CHECK_THROWS_WITH_ALL(rope(zeros({2, 3, 4}, {DType::f64})), "rope", "[B, T, H, D]", "[2, 3, 4]");
  CHECK_THROWS_WITH_ALL(rope(zeros({1, 2, 3, 5}, {DType::f64})), "rope", "even", "[1, 2, 3, 5]");
  CHECK_THROWS_WITH_ALL(rope(zeros({1, 2, 3, 4}, {DType::i32})), "rope", "i32");
  CHECK_THROWS_WITH_ALL(rope(zeros({1, 2, 3, 4}, {DType::f64}), -1.0), "rope", "base");
  CHECK_THROWS_WITH_ALL(composed::rope(zeros({1, 2, 3, 7}, {DType::f64})), "composed::rope", "even", "[1, 2, 3, 7]");
}

// ---------------- composed SwiGLU ----------------

TEST_CASE("composed::swiglu equals the fused swiglu, values and gradients") {
  const std::vector<Shape> shapes = {{7}, {3, 5}, {2, 3, 4}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    CAPTURE(shape_str(s));
    Tensor g = rand_leaf(s, ++seed), u = rand_leaf(s, ++seed);
    std::vector<double> gv = g.to_vector<double>(), uv = u.to_vector<double>(), expect(gv.size());
    for (size_t i = 0; i < gv.size(); ++i) expect[i] = gv[i] / (1 + std::exp(-gv[i])) * uv[i];
    CHECK_CLOSE(composed::swiglu(g, u), vec_tensor(expect, s), 1e-14, 1e-13);
    CHECK_CLOSE(composed::swiglu(g, u), swiglu(g, u), 1e-14, 1e-13);
    CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return composed::swiglu(in[0], in[1]); }, {g, u});
    auto gf = grads_of([](const std::vector<Tensor>& in) { return swiglu(in[0], in[1]); }, {g, u}, 3);
    auto gc = grads_of([](const std::vector<Tensor>& in) { return composed::swiglu(in[0], in[1]); }, {g, u}, 3);
    CHECK_CLOSE(gf[0], gc[0], 1e-14, 1e-12);
    CHECK_CLOSE(gf[1], gc[1], 1e-14, 1e-12);
  }
}
