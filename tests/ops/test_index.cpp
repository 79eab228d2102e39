// Embedding and the index ops (ops/index.cpp): forward against naive coordinate loops, gradchecks
// in f64, topk tie-breaking, argsort stability, bincount, masked_select, and the error messages.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

std::vector<double> vals(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }
std::vector<int64_t> ivals(const Tensor& t) { return t.to(DType::i64).to_vector<int64_t>(); }

Tensor rand_index(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed, DType dt = DType::i64) {
  Generator gen(seed);
  return randint(shape, lo, hi, gen, {dt});
}

int64_t flat(const Shape& s, const std::vector<int64_t>& c) {
  int64_t f = 0;
  for (size_t a = 0; a < s.size(); ++a) f = f * s[a] + c[a];
  return f;
}

// Calls f(coords) for every position of shape s in row-major order.
template <class F>
void for_coords(const Shape& s, F f) {
  std::vector<int64_t> c(s.size(), 0);
  for (int64_t n = shape_numel(s), i = 0; i < n; ++i) {
    f(c);
    for (int64_t a = static_cast<int64_t>(s.size()) - 1; a >= 0; --a) {
      if (++c[a] < s[a]) break;
      c[a] = 0;
    }
  }
}

int64_t norm_dim(int64_t dim, size_t rank) { return dim < 0 ? dim + static_cast<int64_t>(rank) : dim; }

std::vector<double> naive_index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = norm_dim(dim, x.shape().size());
  auto xv = vals(x);
  auto iv = ivals(index);
  Shape os = x.shape();
  os[d] = index.numel();
  std::vector<double> out(shape_numel(os));
  for_coords(os, [&](std::vector<int64_t> c) {
    int64_t at = flat(os, c);
    c[d] = iv[c[d]];
    out[at] = xv[flat(x.shape(), c)];
  });
  return out;
}

std::vector<double> naive_index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t d = norm_dim(dim, x.shape().size());
  auto out = vals(x), sv = vals(src);
  auto iv = ivals(index);
  for_coords(src.shape(), [&](std::vector<int64_t> c) {
    double v = sv[flat(src.shape(), c)];
    c[d] = iv[c[d]];
    out[flat(x.shape(), c)] += v;
  });
  return out;
}

std::vector<double> naive_gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = norm_dim(dim, x.shape().size());
  auto xv = vals(x);
  auto iv = ivals(index);
  std::vector<double> out(index.numel());
  for_coords(index.shape(), [&](std::vector<int64_t> c) {
    int64_t at = flat(index.shape(), c);
    c[d] = iv[at];
    out[at] = xv[flat(x.shape(), c)];
  });
  return out;
}

std::vector<double> naive_scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t d = norm_dim(dim, x.shape().size());
  auto out = vals(x), sv = vals(src);
  auto iv = ivals(index);
  for_coords(index.shape(), [&](std::vector<int64_t> c) {
    double v = sv[flat(src.shape(), c)];
    c[d] = iv[flat(index.shape(), c)];
    out[flat(x.shape(), c)] += v;
  });
  return out;
}

// One assertion per comparison, naming the first differing element.
void check_vec_close(const std::vector<double>& a, const std::vector<double>& b, double tol = 1e-12) {
  REQUIRE(a.size() == b.size());
  size_t bad = a.size();
  for (size_t i = 0; i < a.size() && bad == a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= tol * (1 + std::abs(b[i])))) bad = i;
  CHECK_MESSAGE(bad == a.size(), "element ", bad, ": ", (bad < a.size() ? a[bad] : 0.0), " vs ",
                (bad < b.size() ? b[bad] : 0.0));
}

}  // namespace

TEST_CASE("embedding: forward picks rows, repeated ids accumulate in the gradient") {
  Tensor w = rand_leaf({7, 5}, 1);
  for (DType dt : {DType::i64, DType::i32}) {
    Tensor ids = from_vector<int64_t>({3, 0, 3, 6, 6, 6}, {2, 3}).to(dt);
    Tensor e = embedding(w, ids);
    CHECK(e.shape() == Shape{2, 3, 5});
    auto ev = vals(e), wv = vals(w);
    auto iv = ivals(ids);
    for (int64_t t = 0; t < 6; ++t)
      for (int64_t j = 0; j < 5; ++j) CHECK(ev[t * 5 + j] == wv[iv[t] * 5 + j]);
    // sum(embedding) backward: row v of the gradient is (count of v) · ones.
    w.zero_grad();
    sum(e).backward();
    auto gv = vals(w.grad());
    const double count[7] = {1, 0, 0, 2, 0, 0, 3};
    for (int64_t v = 0; v < 7; ++v)
      for (int64_t j = 0; j < 5; ++j) CHECK(gv[v * 5 + j] == count[v]);
    CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return embedding(in[0], ids); }, {w});
  }
  // A 0-d id gives one row; ids of odd shape and many repeats.
  CHECK(embedding(w, from_vector<int64_t>({4}, {})).shape() == Shape{5});
  Tensor w2 = rand_leaf({3, 4}, 2);
  Tensor ids3 = rand_index({2, 3, 5}, 0, 3, 3);
  CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return embedding(in[0], ids3); }, {w2});
}

TEST_CASE("embedding: large backward (parallel index_add) matches a naive loop") {
  const int64_t V = 37, D = 130, N = 2500;  // 325k elements: the parallel path, D split in blocks
  Generator gen(5);
  Tensor w = randn({V, D}, gen, {DType::f64});
  w.set_requires_grad(true);
  Tensor ids = rand_index({N}, 0, V, 6, DType::i32);
  Tensor g = randn({N, D}, gen, {DType::f64});
  embedding(w, ids).backward(g);
  std::vector<double> want(V * D, 0.0);
  auto gv = vals(g);
  auto iv = ivals(ids);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t j = 0; j < D; ++j) want[iv[t] * D + j] += gv[t * D + j];
  check_vec_close(vals(w.grad()), want, 1e-11);
}

TEST_CASE("index_select: forward vs naive on every axis, gradients") {
  Tensor x = rand_leaf({4, 5, 3}, 10);
  const std::vector<std::pair<int64_t, std::vector<int64_t>>> cases = {
      {0, {3, 0, 3, 1, 3}}, {1, {4, 4, 0}}, {-1, {2, 0, 2, 2}}, {2, {1}}, {-3, {}}};
  for (const auto& [dim, iv] : cases) {
    CAPTURE(dim);
    for (DType dt : {DType::i64, DType::i32}) {
      Tensor idx = from_vector<int64_t>(iv, {static_cast<int64_t>(iv.size())}).to(dt);
      Tensor y = index_select(x, dim, idx);
      check_vec_close(vals(y), naive_index_select(x, dim, idx));
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return index_select(in[0], dim, idx); }, {x});
    }
  }
  // A strided (transposed) input, and an integer tensor (a pure copy).
  Tensor t = transpose(x.detach(), 0, 2);  // [3, 5, 4]
  Tensor idx = from_vector<int64_t>({1, 1, 0}, {3});
  check_vec_close(vals(index_select(t, 1, idx)), naive_index_select(contiguous(t), 1, idx));
  Tensor ints = reshape(arange(0, 12, 1, {DType::i64}), {3, 4});
  CHECK(ivals(index_select(ints, 1, from_vector<int64_t>({3, 0}, {2}))) == std::vector<int64_t>{3, 0, 7, 4, 11, 8});
}

TEST_CASE("index_add: repeated indices accumulate, every axis, gradients in x and src") {
  const std::vector<std::tuple<Shape, int64_t, std::vector<int64_t>>> cases = {
      {{5, 3}, 0, {1, 4, 1, 1, 0, 4, 2}}, {{3, 7}, 1, {6, 6, 0}}, {{2, 3, 5}, -1, {4, 0, 4}}, {{2, 3, 5}, -2, {2, 2}}};
  uint64_t seed = 20;
  for (const auto& [xs, dim, iv] : cases) {
    CAPTURE(shape_str(xs));
    CAPTURE(dim);
    const int64_t d = norm_dim(dim, xs.size());
    Shape ss = xs;
    ss[d] = static_cast<int64_t>(iv.size());
    Tensor x = rand_leaf(xs, ++seed), src = rand_leaf(ss, ++seed);
    for (DType dt : {DType::i64, DType::i32}) {
      Tensor idx = from_vector<int64_t>(iv, {static_cast<int64_t>(iv.size())}).to(dt);
      check_vec_close(vals(index_add(x, dim, idx, src)), naive_index_add(x, dim, idx, src));
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return index_add(in[0], dim, idx, in[1]); }, {x, src});
    }
  }
  // A large case on the parallel path (outer > 1, blocks of the inner axis), strided src.
  Generator gen(7);
  Tensor x = randn({3, 40, 300}, gen, {DType::f64});
  Tensor src = transpose(randn({3, 300, 500}, gen, {DType::f64}), 1, 2);  // [3, 500, 300], strided
  Tensor idx = rand_index({500}, 0, 40, 8);
  check_vec_close(vals(index_add(x, 1, idx, src)), naive_index_add(x, 1, idx, contiguous(src)), 1e-11);
  // Integer accumulation (counts).
  Tensor cnt = index_add(zeros({4}, {DType::i64}), 0, from_vector<int64_t>({2, 2, 0, 2}, {4}), ones({4}, {DType::i64}));
  CHECK(ivals(cnt) == std::vector<int64_t>{1, 0, 3, 0});
}

TEST_CASE("gather: torch semantics on every axis, index smaller than x, gradients") {
  Tensor x = rand_leaf({4, 5, 3}, 30);
  struct Case {
    int64_t dim;
    Shape index_shape;
    int64_t range;
  };
  const std::vector<Case> cases = {{0, {6, 5, 3}, 4}, {1, {4, 2, 3}, 5}, {-1, {3, 4, 7}, 3}, {2, {1, 1, 1}, 3}, {-2, {2, 9, 2}, 5}};
  uint64_t seed = 31;
  for (const Case& c : cases) {
    CAPTURE(c.dim);
    CAPTURE(shape_str(c.index_shape));
    for (DType dt : {DType::i64, DType::i32}) {
      Tensor idx = rand_index(c.index_shape, 0, c.range, ++seed, dt);
      Tensor y = gather(x, c.dim, idx);
      CHECK(y.shape() == c.index_shape);
      check_vec_close(vals(y), naive_gather(x, c.dim, idx));
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return gather(in[0], c.dim, idx); }, {x});
    }
  }
  // 2-D example from the torch docs: out[i][j] = x[i][index[i][j]] for dim 1.
  Tensor t = from_vector<double>({1, 2, 3, 4}, {2, 2});
  CHECK(vals(gather(t, 1, from_vector<int64_t>({0, 0, 1, 0}, {2, 2}))) == std::vector<double>{1, 1, 4, 3});
  // Strided x and strided index.
  Tensor xt = transpose(x.detach(), 0, 1);  // [5, 4, 3]
  Tensor it = transpose(rand_index({3, 5, 3}, 0, 4, 40), 0, 1);  // [5, 3, 3]
  check_vec_close(vals(gather(xt, 1, it)), naive_gather(contiguous(xt), 1, contiguous(it)));
}

TEST_CASE("scatter_add: repeated indices accumulate, index smaller than src, gradients in x and src") {
  struct Case {
    Shape x, index, src;
    int64_t dim;
  };
  const std::vector<Case> cases = {
      {{3, 4}, {7, 4}, {7, 4}, 0},
      {{3, 4}, {2, 3}, {3, 5}, 0},        // index smaller than src and x
      {{4, 3}, {4, 9}, {4, 9}, 1},        // many repeats along dim 1
      {{2, 3, 5}, {2, 2, 6}, {2, 3, 7}, -1},
      {{2, 3, 5}, {1, 4, 5}, {2, 4, 5}, -2},
  };
  uint64_t seed = 50;
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.x));
    CAPTURE(shape_str(c.index));
    CAPTURE(c.dim);
    const int64_t d = norm_dim(c.dim, c.x.size());
    Tensor x = rand_leaf(c.x, ++seed), src = rand_leaf(c.src, ++seed);
    for (DType dt : {DType::i64, DType::i32}) {
      Tensor idx = rand_index(c.index, 0, c.x[d], ++seed, dt);
      check_vec_close(vals(scatter_add(x, c.dim, idx, src)), naive_scatter_add(x, c.dim, idx, src));
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return scatter_add(in[0], c.dim, idx, in[1]); }, {x, src});
    }
  }
  // The torch-docs pattern: out[index[i][j]][j] += src[i][j] for dim 0 with every row hitting row 0.
  Tensor out = scatter_add(zeros({2, 3}, {DType::f64}), 0, zeros({4, 3}, {DType::i64}), ones({4, 3}, {DType::f64}));
  CHECK(vals(out) == std::vector<double>{4, 4, 4, 0, 0, 0});
  // Large: the parallel path (rows along the non-indexed axis), strided src, dim 0 and dim 1.
  Generator gen(9);
  Tensor big_src = transpose(randn({24, 3000}, gen, {DType::f64}), 0, 1);  // [3000, 24], strided
  Tensor bx = randn({50, 24}, gen, {DType::f64});
  Tensor bi = rand_index({3000, 24}, 0, 50, 10);
  check_vec_close(vals(scatter_add(bx, 0, bi, big_src)), naive_scatter_add(bx, 0, bi, contiguous(big_src)), 1e-11);
  Tensor bx1 = randn({24, 50}, gen, {DType::f64});
  Tensor bi1 = rand_index({24, 3000}, 0, 50, 11);
  Tensor bs1 = randn({24, 3000}, gen, {DType::f64});
  check_vec_close(vals(scatter_add(bx1, 1, bi1, bs1)), naive_scatter_add(bx1, 1, bi1, bs1), 1e-11);
}

TEST_CASE("topk: sorted values and indices vs a naive sort, ties to the lower index") {
  // Ties: the lower index wins, for largest and smallest.
  Tensor t = from_vector<double>({1, 3, 3, 2, 3, 0}, {6});
  TopK a = topk(t, 3);
  CHECK(vals(a.values) == std::vector<double>{3, 3, 3});
  CHECK(ivals(a.indices) == std::vector<int64_t>{1, 2, 4});
  CHECK(a.indices.dtype() == DType::i64);
  TopK b = topk(from_vector<double>({2, 1, 1, 0, 0, 5}, {6}), 3, 0, false);
  CHECK(vals(b.values) == std::vector<double>{0, 0, 1});
  CHECK(ivals(b.indices) == std::vector<int64_t>{3, 4, 1});
  // All equal: indices 0..k-1 in order; integer keys.
  TopK c = topk(full({2, 9}, 7.0, {DType::i32}), 4, 1);
  CHECK(ivals(c.indices) == std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3});
  CHECK(ivals(c.values) == std::vector<int64_t>(8, 7));
  // NaN counts as the largest value (as in torch).
  TopK e = topk(from_vector<double>({1, NAN, 2}, {3}), 2);
  CHECK(ivals(e.indices) == std::vector<int64_t>{1, 2});

  // Random inputs against a naive sort, along every axis, largest and smallest.
  Tensor x = rand_leaf({4, 7, 5}, 60);
  auto xv = vals(x);
  for (int64_t dim : {0, 1, -1}) {
    for (bool largest : {true, false}) {
      const int64_t d = norm_dim(dim, 3), n = x.shape()[d], k = std::min<int64_t>(3, n);
      CAPTURE(dim);
      CAPTURE(largest);
      TopK r = topk(x, k, dim, largest);
      Shape os = x.shape();
      os[d] = k;
      CHECK(r.values.shape() == os);
      auto rv = vals(r.values);
      auto ri = ivals(r.indices);
      bool ok = true;
      for_coords(os, [&](std::vector<int64_t> c) {
        if (c[d] != 0) return;
        std::vector<std::pair<double, int64_t>> row;
        for (int64_t i = 0; i < n; ++i) {
          std::vector<int64_t> cc = c;
          cc[d] = i;
          row.push_back({xv[flat(x.shape(), cc)], i});
        }
        std::sort(row.begin(), row.end(), [&](auto p, auto q) { return largest ? p.first > q.first : p.first < q.first; });
        for (int64_t t2 = 0; t2 < k; ++t2) {
          std::vector<int64_t> cc = c;
          cc[d] = t2;
          ok &= rv[flat(os, cc)] == row[t2].first && ri[flat(os, cc)] == row[t2].second;
        }
      });
      CHECK(ok);
      CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return topk(in[0], k, dim, largest).values; }, {x});
    }
  }
  // Both selection paths (insertion for k <= 8, partial_sort above) on integer keys with many ties
  // against a stable sort: equal keys must come out in index order.
  Tensor keys = rand_index({5, 23}, 0, 4, 62);
  auto kv = ivals(keys);
  for (int64_t k : {1, 2, 8, 9, 12, 23}) {
    for (bool largest : {true, false}) {
      CAPTURE(k);
      CAPTURE(largest);
      TopK r = topk(keys, k, 1, largest);
      std::vector<int64_t> want_i, want_v;
      for (int64_t row = 0; row < 5; ++row) {
        std::vector<int64_t> perm(23);
        std::iota(perm.begin(), perm.end(), 0);
        std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
          return largest ? kv[row * 23 + a] > kv[row * 23 + b] : kv[row * 23 + a] < kv[row * 23 + b];
        });
        for (int64_t t2 = 0; t2 < k; ++t2) {
          want_i.push_back(perm[t2]);
          want_v.push_back(kv[row * 23 + perm[t2]]);
        }
      }
      CHECK(ivals(r.indices) == want_i);
      CHECK(ivals(r.values) == want_v);
    }
  }
  Tensor z = rand_leaf({2, 17}, 63);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return topk(in[0], 11, -1, false).values; }, {z});
  // Odd sizes, k = n and k = 0.
  Tensor y = rand_leaf({3, 5}, 61);
  CHECK_GRADCHECK([](const std::vector<Tensor>& in) { return topk(in[0], 5, 1).values; }, {y});
  CHECK(topk(y, 0, 1).values.shape() == Shape{3, 0});
  // Large rows (parallel path) against argsort's order.
  Generator gen(12);
  Tensor big = randn({600, 64}, gen, {DType::f32});
  TopK bt = topk(big, 2, -1);
  Tensor order = argsort(big, -1, true);
  CHECK(ivals(bt.indices) == ivals(slice(order, 1, 0, 2)));
}

TEST_CASE("argsort: stable on integer keys with many duplicates, both directions, any axis") {
  for (DType dt : {DType::i64, DType::i32, DType::f32}) {
    CAPTURE(dtype_name(dt));
    Tensor keys = rand_index({3, 301}, 0, 5, 70).to(dt);  // ~60 copies of each key per row
    auto kv = ivals(keys);
    for (bool desc : {false, true}) {
      CAPTURE(desc);
      Tensor o = argsort(keys, -1, desc);
      CHECK(o.dtype() == DType::i64);
      auto ov = ivals(o);
      for (int64_t r = 0; r < 3; ++r) {
        std::vector<int64_t> want(301);
        std::iota(want.begin(), want.end(), 0);
        std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) {
          return desc ? kv[r * 301 + a] > kv[r * 301 + b] : kv[r * 301 + a] < kv[r * 301 + b];
        });
        CHECK(std::vector<int64_t>(ov.begin() + r * 301, ov.begin() + (r + 1) * 301) == want);
      }
    }
  }
  // Along axis 0 of a [5, 3] integer tensor.
  Tensor k0 = from_vector<int64_t>({2, 0, 1, 1, 0, 1, 2, 0, 0, 1, 0, 1, 0, 0, 1}, {5, 3});
  CHECK(ivals(argsort(k0, 0)) == std::vector<int64_t>{4, 0, 2, 1, 1, 0, 3, 2, 1, 0, 3, 3, 2, 4, 4});
  // NaN last ascending, first descending.
  Tensor kn = from_vector<double>({2, NAN, 1}, {3});
  CHECK(ivals(argsort(kn)) == std::vector<int64_t>{2, 0, 1});
  CHECK(ivals(argsort(kn, 0, true)) == std::vector<int64_t>{1, 0, 2});
}

TEST_CASE("bincount: counts, minlength, i32 input, empty input") {
  Tensor x = from_vector<int64_t>({1, 1, 3, 0, 1}, {5});
  CHECK(ivals(bincount(x)) == std::vector<int64_t>{1, 3, 0, 1});
  CHECK(ivals(bincount(x, 6)) == std::vector<int64_t>{1, 3, 0, 1, 0, 0});
  CHECK(ivals(bincount(x, 2)) == std::vector<int64_t>{1, 3, 0, 1});
  CHECK(bincount(x).dtype() == DType::i64);
  CHECK(ivals(bincount(x.to(DType::i32), 5)) == std::vector<int64_t>{1, 3, 0, 1, 0});
  CHECK(ivals(bincount(empty({0}, {DType::i64}), 3)) == std::vector<int64_t>{0, 0, 0});
  CHECK(bincount(empty({0}, {DType::i64})).numel() == 0);
  Tensor r = rand_index({5000}, 0, 9, 80);
  auto rv = ivals(r);
  std::vector<int64_t> want(9, 0);
  for (int64_t v : rv) ++want[v];
  CHECK(ivals(bincount(r, 4)) == want);
}

TEST_CASE("masked_select: full and broadcast masks, forward vs naive, gradients") {
  Tensor x = rand_leaf({3, 4}, 90);
  auto xv = vals(x);
  const std::vector<std::pair<std::vector<uint8_t>, Shape>> masks = {
      {{1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1}, {3, 4}},
      {{0, 1, 1, 0}, {4}},     // broadcast over rows
      {{1, 0, 1}, {3, 1}},     // broadcast over columns
      {{1}, {}},               // everything
      {{0, 0, 0, 0}, {1, 4}},  // nothing
  };
  for (const auto& [mv, ms] : masks) {
    CAPTURE(shape_str(ms));
    Tensor mask = from_vector<uint8_t>(mv, ms);
    std::vector<double> want;
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        uint8_t m = ms.size() == 2 ? mv[(ms[0] == 1 ? 0 : i) * ms[1] + (ms[1] == 1 ? 0 : j)] : ms.empty() ? mv[0] : mv[j];
        if (m) want.push_back(xv[i * 4 + j]);
      }
    Tensor y = masked_select(x, mask);
    CHECK(y.shape() == Shape{static_cast<int64_t>(want.size())});
    CHECK(vals(y) == want);
    CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return masked_select(in[0], mask); }, {x});
  }
  // A mask built from a comparison, on a strided input.
  Tensor t = transpose(x.detach(), 0, 1);
  Tensor sel = masked_select(t, gt(t, 0.0));
  for (double v : vals(sel)) CHECK(v > 0);
  Tensor y3 = rand_leaf({2, 3, 5}, 91);
  Tensor m3 = gt(rand_leaf({3, 1}, 92).detach(), 0.0);
  CHECK_GRADCHECK([&](const std::vector<Tensor>& in) { return masked_select(in[0], m3); }, {y3});
}

TEST_CASE("index ops: errors name the op, the value and the range or shapes") {
  Tensor w = zeros({5, 3});
  CHECK_THROWS_WITH_ALL(embedding(w, from_vector<int64_t>({1, 7}, {2})), "embedding", "id 7", "[0, 5)", "V = 5");
  CHECK_THROWS_WITH_ALL(embedding(w, from_vector<int32_t>({-1}, {1})), "embedding", "-1", "[0, 5)");
  CHECK_THROWS_WITH_ALL(embedding(w, zeros({2})), "embedding", "ids", "f32");
  CHECK_THROWS_WITH_ALL(embedding(zeros({5}), from_vector<int64_t>({1}, {1})), "embedding", "[5]");

  Tensor x = zeros({4, 6});
  CHECK_THROWS_WITH_ALL(index_select(x, 1, from_vector<int64_t>({0, 6}, {2})), "index_select", "index 6", "[0, 6)",
                        "[4, 6]");
  CHECK_THROWS_WITH_ALL(index_select(x, 0, zeros({2})), "index_select", "index", "f32");
  CHECK_THROWS_WITH_ALL(index_select(x, 0, from_vector<uint8_t>({0}, {1})), "index_select", "u8");
  CHECK_THROWS_WITH_ALL(index_select(x, 0, zeros({1, 2}, {DType::i64})), "index_select", "[1, 2]", "[4, 6]");
  CHECK_THROWS_WITH_ALL(index_select(x, 2, zeros({1}, {DType::i64})), "index_select");

  CHECK_THROWS_WITH_ALL(gather(x, 0, zeros({2, 7}, {DType::i64})), "gather", "[2, 7]", "[4, 6]");
  CHECK_THROWS_WITH_ALL(gather(x, 0, zeros({2}, {DType::i64})), "gather", "[2]", "[4, 6]");
  CHECK_THROWS_WITH_ALL(gather(x, 0, full({1, 1}, 4, {DType::i32})), "gather", "index 4", "[0, 4)");
  CHECK_THROWS_WITH_ALL(gather(x, -1, full({1, 1}, -2, {DType::i64})), "gather", "-2", "[0, 6)");

  CHECK_THROWS_WITH_ALL(scatter_add(x, 0, zeros({2, 6}, {DType::i64}), zeros({1, 6})), "scatter_add", "[2, 6]", "[1, 6]");
  CHECK_THROWS_WITH_ALL(scatter_add(x, 1, zeros({5, 2}, {DType::i64}), zeros({5, 2})), "scatter_add", "[5, 2]", "[4, 6]");
  CHECK_THROWS_WITH_ALL(scatter_add(x, 0, full({1, 1}, 9, {DType::i64}), zeros({1, 1})), "scatter_add", "index 9",
                        "[0, 4)");
  CHECK_THROWS_WITH_ALL(scatter_add(x, 0, zeros({1, 1}, {DType::i64}), zeros({1, 1}, {DType::f64})), "scatter_add",
                        "f32", "f64");
  CHECK_THROWS_WITH_ALL(scatter_add(x, 0, zeros({1, 1}), zeros({1, 1})), "scatter_add", "index", "f32");

  CHECK_THROWS_WITH_ALL(index_add(x, 0, zeros({3}, {DType::i64}), zeros({2, 6})), "index_add", "[2, 6]", "[3, 6]");
  CHECK_THROWS_WITH_ALL(index_add(x, 1, from_vector<int64_t>({6}, {1}), zeros({4, 1})), "index_add", "index 6",
                        "[0, 6)");
  CHECK_THROWS_WITH_ALL(index_add(x, 0, zeros({1, 1}, {DType::i64}), zeros({1, 6})), "index_add", "1-D", "[1, 1]");

  CHECK_THROWS_WITH_ALL(topk(x, 7, 1), "topk", "k = 7", "[4, 6]");
  CHECK_THROWS_WITH_ALL(topk(x, -1, 0), "topk", "k = -1");
  CHECK_THROWS_WITH_ALL(topk(x, 1, 2), "topk");
  CHECK_THROWS_WITH_ALL(argsort(x, 3), "argsort");

  CHECK_THROWS_WITH_ALL(bincount(from_vector<int64_t>({1, -3, 2}, {3})), "bincount", "-3");
  CHECK_THROWS_WITH_ALL(bincount(zeros({3})), "bincount", "f32");
  CHECK_THROWS_WITH_ALL(bincount(zeros({2, 2}, {DType::i64})), "bincount", "[2, 2]");
  CHECK_THROWS_WITH_ALL(bincount(zeros({2}, {DType::i64}), -1), "bincount", "minlength");

  CHECK_THROWS_WITH_ALL(masked_select(x, zeros({5}, {DType::u8})), "masked_select", "[5]", "[4, 6]");
  CHECK_THROWS_WITH_ALL(masked_select(x, zeros({2, 4, 6}, {DType::u8})), "masked_select", "[2, 4, 6]", "[4, 6]");
  CHECK_THROWS_WITH_ALL(masked_select(x, zeros({4, 6})), "masked_select", "u8", "f32");
}
