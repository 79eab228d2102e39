// grouped_swiglu: the fused experts of the MoE layer against the composed version (slices,
// matmuls, swiglu, cat), finite differences, empty groups, and argument errors.
#include "test_util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace remoe;
using namespace remoe::test;

namespace {

struct Experts {
  Tensor x;
  std::vector<Tensor> gate, up, down;
  std::vector<Tensor> all() const {
    std::vector<Tensor> v{x};
    for (const auto* ws : {&gate, &up, &down}) v.insert(v.end(), ws->begin(), ws->end());
    return v;
  }
};

// f64 leaves: x [Σ rows, d] and E experts of width w (weights scaled so activations stay O(1)).
Experts make_experts(const std::vector<int64_t>& rows, int64_t d, int64_t w, uint64_t seed) {
  int64_t n = 0;
  for (int64_t r : rows) n += r;
  Experts ex;
  ex.x = rand_leaf({n, d}, seed);
  for (size_t e = 0; e < rows.size(); ++e) {
    ex.gate.push_back(rand_leaf({d, w}, seed + 10 * e + 1, -0.6, 0.6));
    ex.up.push_back(rand_leaf({d, w}, seed + 10 * e + 2, -0.6, 0.6));
    ex.down.push_back(rand_leaf({w, d}, seed + 10 * e + 3, -0.6, 0.6));
  }
  return ex;
}

// Gradients of Σ r ∘ f for a fixed random r (undefined where an input gets none).
std::vector<Tensor> grads_of(const Tensor& out, const std::vector<Tensor>& inputs, uint64_t seed) {
  for (const Tensor& t : inputs) t.zero_grad();
  Generator gen(seed);
  sum(mul(out, randn(out.shape(), gen, {out.dtype()}))).backward();
  std::vector<Tensor> g;
  for (const Tensor& t : inputs) g.push_back(t.grad());
  return g;
}

// Both lists define the same gradients (undefined where an input gets none), close elementwise.
void check_same_grads(const std::vector<Tensor>& got, const std::vector<Tensor>& want, double atol, double rtol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    REQUIRE(got[i].defined() == want[i].defined());
    if (got[i].defined()) CHECK_CLOSE(got[i], want[i], atol, rtol);
  }
}

// (rows per group, d, w): odd sizes, empty groups first, in the middle and last, one group.
const std::vector<std::tuple<std::vector<int64_t>, int64_t, int64_t>> kCases = {
    {{3, 5, 2}, 4, 6}, {{0, 7, 0, 1}, 5, 3}, {{9}, 3, 7}, {{1, 0, 2, 0}, 2, 2}, {{17, 33, 4}, 16, 24}};

}  // namespace

TEST_CASE("grouped_swiglu: forward and every gradient match the composed version (f64)") {
  uint64_t seed = 10;
  for (const auto& [rows, d, w] : kCases) {
    CAPTURE(rows.size());
    CAPTURE(d);
    Experts ex = make_experts(rows, d, w, seed += 100);
    Tensor fused = grouped_swiglu(ex.x, rows, ex.gate, ex.up, ex.down);
    Tensor ref = composed::grouped_swiglu(ex.x, rows, ex.gate, ex.up, ex.down);
    CHECK_CLOSE(fused, ref, 1e-13, 1e-12);
    check_same_grads(grads_of(fused, ex.all(), seed), grads_of(ref, ex.all(), seed), 1e-12, 1e-10);
  }
}

TEST_CASE("grouped_swiglu: an expert with no rows does no work and gets no gradient") {
  const std::vector<int64_t> rows{0, 4, 0};
  Experts ex = make_experts(rows, 3, 5, 7);
  sum(grouped_swiglu(ex.x, rows, ex.gate, ex.up, ex.down)).backward();
  for (size_t e : {0u, 2u}) {
    CAPTURE(e);
    CHECK_FALSE(ex.gate[e].grad().defined());
    CHECK_FALSE(ex.up[e].grad().defined());
    CHECK_FALSE(ex.down[e].grad().defined());
  }
  CHECK(ex.gate[1].grad().defined());
  CHECK(ex.x.grad().defined());
  // No rows at all: an empty output.
  Experts none = make_experts({0, 0}, 3, 2, 8);
  CHECK(grouped_swiglu(none.x, {0, 0}, none.gate, none.up, none.down).shape() == Shape{0, 3});
}

TEST_CASE("grouped_swiglu gradcheck (f64)") {
  uint64_t seed = 900;
  for (const auto& [rows, d, w] : {std::tuple<std::vector<int64_t>, int64_t, int64_t>{{2, 0, 3}, 3, 4},
                                   {{1, 4}, 2, 5}}) {
    const std::vector<int64_t> r = rows;
    Experts ex = make_experts(r, d, w, seed += 50);
    const size_t E = r.size();
    CHECK_GRADCHECK(
        [r, E](const std::vector<Tensor>& in) {
          std::vector<Tensor> g(in.begin() + 1, in.begin() + 1 + E), u(in.begin() + 1 + E, in.begin() + 1 + 2 * E),
              dn(in.begin() + 1 + 2 * E, in.end());
          return grouped_swiglu(in[0], r, g, u, dn);
        },
        ex.all());
  }
}

TEST_CASE("grouped_swiglu: experts spread over threads, split into parts, or run one by one give the same result") {
  // With several threads the groups are spread over them, and a group holding more than a thread's
  // share of the rows is cut into parts (token rows for x·W, weight rows for the weight gradients);
  // with one thread they run one after the other. All must compute the same thing. Odd d and w:
  // the parts are uneven.
  for (const std::vector<int64_t>& rows : {std::vector<int64_t>{6, 5, 7, 0, 6}, std::vector<int64_t>{30, 2, 1},
                                           std::vector<int64_t>{0, 41}}) {
    CAPTURE(rows.size());
    Experts ex = make_experts(rows, 7, 11, 31);
#ifdef _OPENMP
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    Tensor y_one = grouped_swiglu(ex.x, rows, ex.gate, ex.up, ex.down);
    std::vector<Tensor> g_one = grads_of(y_one, ex.all(), 5);
    for (int threads : {2, 3, 4}) {
      CAPTURE(threads);
#ifdef _OPENMP
      omp_set_num_threads(threads);
#endif
      Tensor y_many = grouped_swiglu(ex.x, rows, ex.gate, ex.up, ex.down);
      std::vector<Tensor> g_many = grads_of(y_many, ex.all(), 5);
      CHECK_CLOSE(y_many, y_one, 1e-13, 1e-12);
      check_same_grads(g_many, g_one, 1e-12, 1e-11);
    }
#ifdef _OPENMP
    omp_set_num_threads(before);
#endif
  }
}

TEST_CASE("grouped_swiglu f32 is close to f64") {
  const std::vector<int64_t> rows{40, 0, 25};
  Experts ex = make_experts(rows, 32, 48, 77);
  auto f32 = [](const std::vector<Tensor>& ts) {
    std::vector<Tensor> out;
    for (const Tensor& t : ts) out.push_back(t.detach().to(DType::f32));
    return out;
  };
  Tensor y64 = grouped_swiglu(ex.x, rows, ex.gate, ex.up, ex.down);
  Tensor y32 = grouped_swiglu(ex.x.detach().to(DType::f32), rows, f32(ex.gate), f32(ex.up), f32(ex.down));
  CHECK(y32.dtype() == DType::f32);
  CHECK_CLOSE(y32, y64, 1e-4, 1e-4);
}

TEST_CASE("grouped_swiglu: argument errors name the op, the expert and the shapes") {
  Experts ex = make_experts({2, 3}, 4, 6, 3);
  CHECK_THROWS_WITH_ALL(grouped_swiglu(ex.x, {2, 2}, ex.gate, ex.up, ex.down), "grouped_swiglu", "4 rows",
                        "[5, 4]");
  CHECK_THROWS_WITH_ALL(grouped_swiglu(ex.x, {2, 3, 0}, ex.gate, ex.up, ex.down), "grouped_swiglu", "3 groups");
  std::vector<Tensor> bad_down = ex.down;
  bad_down[1] = zeros({6, 5}, {DType::f64});
  CHECK_THROWS_WITH_ALL(grouped_swiglu(ex.x, {2, 3}, ex.gate, ex.up, bad_down), "grouped_swiglu", "expert 1",
                        "[6, 5]", "[5, 4]");
  CHECK_THROWS_WITH_ALL(grouped_swiglu(reshape(ex.x, {-1}), {2, 3}, ex.gate, ex.up, ex.down), "grouped_swiglu",
                        "[N, d]", "[20]");
  std::vector<Tensor> f32_up{ex.up[0].detach().to(DType::f32), ex.up[1].detach().to(DType::f32)};
  CHECK_THROWS_WITH_ALL(grouped_swiglu(ex.x, {2, 3}, ex.gate, f32_up, ex.down), "grouped_swiglu", "dtypes differ");
}
