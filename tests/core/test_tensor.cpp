#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

TEST_CASE("dtype sizes, names and bf16 rounding") {
  CHECK(dtype_size(DType::f32) == 4);
  CHECK(dtype_size(DType::bf16) == 2);
  CHECK(dtype_size(DType::i64) == 8);
  CHECK(std::string(dtype_name(DType::u8)) == "u8");
  CHECK(static_cast<float>(bf16(1.0f)) == 1.0f);
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
  CHECK(static_cast<float>(bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(static_cast<float>(bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
  CHECK(std::isnan(static_cast<float>(bf16(NAN))));
}

TEST_CASE("factories fill shapes and values") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.strides() == Shape{3, 1});
  CHECK(sum(z).item() == 0);
  CHECK(sum(ones({4, 5}, {DType::f64})).item() == 20);
  CHECK(full({2}, 2.5).to_vector<float>() == std::vector<float>{2.5f, 2.5f});
  CHECK(arange(0, 5).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4});
  CHECK(arange(1, 2, 0.25, {DType::f64}).to_vector<double>() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(scalar_tensor(3).dim() == 0);
  CHECK(scalar_tensor(3).item() == 3);
  CHECK_THROWS_WITH_ALL(zeros({2, -1}), "negative");
  CHECK_THROWS_WITH_ALL(ones({2, 2}).item(), "item", "[2, 2]");
}

TEST_CASE("dtype conversion round-trips and rounds") {
  Tensor x = from_vector<double>({1.5, -2.25, 3.0, 1e10}, {4});
  CHECK(x.to(DType::f32).to(DType::f64).to_vector<double>() == std::vector<double>{1.5, -2.25, 3.0, 1e10});
  CHECK(x.to(DType::i64).to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3, 10000000000});
  CHECK(x.to(DType::bf16).to(DType::f32).to_vector<float>()[1] == -2.25f);
  CHECK(from_vector<int32_t>({7, 300}, {2}).to(DType::u8).to_vector<uint8_t>() == std::vector<uint8_t>{7, 44});
  CHECK_THROWS_WITH_ALL(x.data<float>(), "f64", "f32");
}

TEST_CASE("the counter-based RNG is reproducible and well distributed") {
  Generator a(42), b(42);
  Tensor x = randn({1000}, a), y = randn({1000}, b);
  CHECK(x.to_vector<float>() == y.to_vector<float>());
  CHECK(a.offset == 1000);
  Tensor x2 = randn({1000}, a);  // next draw continues the stream
  CHECK(x2.to_vector<float>() != x.to_vector<float>());
  // The same numbers whatever the split: one draw of 10 == draws of 4 + 6.
  Generator c(7), d(7);
  std::vector<float> whole = randn({10}, c).to_vector<float>();
  std::vector<float> first = randn({4}, d).to_vector<float>(), rest = randn({6}, d).to_vector<float>();
  first.insert(first.end(), rest.begin(), rest.end());
  CHECK(whole == first);
  Generator g(1);
  Tensor big = randn({200000}, g, {DType::f64});
  CHECK(std::abs(mean(big).item()) < 0.01);
  CHECK(std::abs(mean(square(big)).item() - 1.0) < 0.01);
  Tensor u = uniform({100000}, g, {DType::f64}, -1, 3);
  CHECK(std::abs(mean(u).item() - 1.0) < 0.02);
  std::vector<int64_t> ri = randint({1000}, 3, 7, g).to_vector<int64_t>();
  for (int64_t v : ri) CHECK((v >= 3 && v < 7));
}

TEST_CASE("printing shows values, shape and dtype") {
  std::string s = from_vector<float>({1, 2, 3, 4}, {2, 2}).str();
  CHECK(s.find("[[1, 2],") != std::string::npos);
  CHECK(s.find("shape=[2, 2]") != std::string::npos);
  CHECK(s.find("dtype=f32") != std::string::npos);
  CHECK(arange(0, 100).str().find("...") != std::string::npos);
}

TEST_CASE("cuda tensors fail clearly without a CUDA backend") {
  bool have_cuda = true;
  try {
    (void)empty({2}, {DType::f32, Device::cuda()});
  } catch (const Error& e) {
    have_cuda = false;
    CHECK(std::string(e.what()).find("cuda:0") != std::string::npos);
  }
  if (have_cuda) MESSAGE("a CUDA backend is registered; the device error path is not exercised");
}
