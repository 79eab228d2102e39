#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

TEST_CASE("views share storage and have the right strides") {
  Tensor x = arange(0, 24).to(DType::f64);
  Tensor r = reshape(x, {2, 3, 4});
  CHECK(r.storage() == x.storage());
  CHECK(r.strides() == Shape{12, 4, 1});
  Tensor t = transpose(r, 0, 2);  // [4, 3, 2]
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.strides() == Shape{1, 4, 12});
  CHECK(!t.is_contiguous());
  CHECK(t.storage() == x.storage());
  // element t[i][j][k] == r[k][j][i] == 12k + 4j + i
  std::vector<double> tv = contiguous(t).to_vector<double>();
  CHECK(tv[(1 * 3 + 2) * 2 + 1] == 12 * 1 + 4 * 2 + 1);
  Tensor s = slice(r, 2, 1, 4, 2);  // columns 1, 3
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.offset() == 1);
  CHECK(contiguous(s).to_vector<double>()[1] == 3);
  Tensor e = expand(reshape(arange(0, 3), {3, 1}), {2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(contiguous(e).to_vector<float>()[5] == 1);
  CHECK(select(r, 1, -1).shape() == Shape{2, 4});
  CHECK(select(r, 1, -1).to_vector<double>()[0] == 8);
  CHECK(unsqueeze(x, 0).shape() == Shape{1, 24});
  CHECK(squeeze(unsqueeze(x, 1), 1).shape() == Shape{24});
  CHECK(flatten(r, 1).shape() == Shape{2, 12});
  CHECK(reshape(r, {-1, 6}).shape() == Shape{4, 6});
}

TEST_CASE("reshape views when it can and copies when it must") {
  Tensor r = reshape(arange(0, 24), {2, 3, 4});
  Tensor p = permute(r, {1, 0, 2});  // [3, 2, 4], rows of 4 still contiguous
  Tensor v = reshape(p, {3, 2, 2, 2});  // splits the last axis: a view
  CHECK(v.storage() == r.storage());
  Tensor m = reshape(p, {6, 4});  // merges non-adjacent axes: a copy
  CHECK(m.storage() != r.storage());
  CHECK(m.to_vector<float>() == contiguous(p).to_vector<float>());
}

TEST_CASE("cat and stack") {
  Tensor a = reshape(arange(0, 6), {2, 3}), b = reshape(arange(6, 10), {2, 2});
  Tensor c = cat({a, b}, 1);
  CHECK(c.shape() == Shape{2, 5});
  CHECK(c.to_vector<float>() == std::vector<float>{0, 1, 2, 6, 7, 3, 4, 5, 8, 9});
  Tensor s = stack({a, a}, 0);
  CHECK(s.shape() == Shape{2, 2, 3});
  CHECK_THROWS_WITH_ALL(cat({a, b}, 0), "cat", "[2, 3]", "[2, 2]");
}

TEST_CASE("view errors name the op and the shapes") {
  Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_ALL(reshape(x, {4, 2}), "reshape", "[2, 3]", "[4, 2]");
  CHECK_THROWS_WITH_ALL(expand(x, {2, 4}), "expand", "[2, 3]", "[2, 4]");
  CHECK_THROWS_WITH_ALL(permute(x, {0, 0}), "permute");
  CHECK_THROWS_WITH_ALL(squeeze(x, 0), "squeeze");
  CHECK_THROWS_WITH_ALL(slice(x, 5, 0, 1), "slice", "axis 5");
  CHECK_THROWS_WITH_ALL(make_view(x, {3, 3}, {3, 1}, 0), "make_view", "exceeds");
}
