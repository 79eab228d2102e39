#include <cmath>

#include "models/module.h"
#include "test_util.h"

using namespace remoe;

namespace {

// A toy of the real model's layout: embed, layers.{i}.{attn_norm, attn.{wq, wo}}, norm, head.
struct Attn : Module {
  Tensor wq, wo;
  Attn(int64_t d, int64_t n_layers, Generator& gen) {
    wq = register_parameter("wq", zeros({d, d}));
    wo = register_parameter("wo", zeros({d, d}));
    init_normal(wq, kInitStd, gen);
    init_normal(wo, output_init_std(n_layers), gen);
  }
};

struct Norm : Module {
  Tensor weight;
  explicit Norm(int64_t d) {
    weight = register_parameter("weight", zeros({d}));
    init_ones(weight);
  }
};

struct Block : Module {
  std::shared_ptr<Norm> attn_norm;
  std::shared_ptr<Attn> attn;
  Block(int64_t d, int64_t n_layers, Generator& gen) {
    attn_norm = register_module("attn_norm", std::make_shared<Norm>(d));
    attn = register_module("attn", std::make_shared<Attn>(d, n_layers, gen));
  }
};

struct Toy : Module {
  std::shared_ptr<ModuleList> layers;
  Tensor embed, head;
  Toy(int64_t vocab, int64_t d, int64_t n_layers, Generator& gen) {
    embed = register_parameter("embed", randn({vocab, d}, gen, {}, 0, kInitStd));
    layers = register_module("layers", std::make_shared<ModuleList>());
    for (int64_t i = 0; i < n_layers; ++i) layers->push_back(std::make_shared<Block>(d, n_layers, gen));
    register_module("norm", std::make_shared<Norm>(d));
    // Registered after the children: PyTorch lists a module's own parameters first regardless.
    head = register_parameter("head", randn({d, vocab}, gen, {}, 0, kInitStd));
  }
};

// Sample mean and std of a tensor's elements.
std::pair<double, double> stats(const Tensor& t) {
  std::vector<double> v = t.to(DType::f64).to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, std::sqrt(s / static_cast<double>(v.size() - 1))};
}

}  // namespace

TEST_CASE("Module: dotted names in PyTorch order, counts, lookup") {
  Generator gen(1);
  Toy m(11, 4, 2, gen);
  NamedTensors np = m.named_parameters();
  std::vector<std::string> names;
  for (auto& [n, t] : np) names.push_back(n);
  CHECK(names == std::vector<std::string>{"embed", "head", "layers.0.attn_norm.weight", "layers.0.attn.wq",
                                          "layers.0.attn.wo", "layers.1.attn_norm.weight", "layers.1.attn.wq",
                                          "layers.1.attn.wo", "norm.weight"});
  CHECK(m.num_parameters() == 11 * 4 + 4 * 11 + 2 * (4 + 16 + 16) + 4);
  CHECK(m.parameters().size() == 9);
  for (auto& [n, t] : np) {
    CAPTURE(n);
    CHECK(t.requires_grad());
  }
  // Handles, not copies: the module's tensor is the member.
  CHECK(m.parameter("layers.1.attn.wo").same(m.layers->at<Block>(1)->attn->wo));
  CHECK(m.parameter("embed").same(m.embed));
  CHECK_THROWS_WITH_ALL(m.parameter("layers.2.attn.wq"), "Module::parameter", "layers.2.attn.wq", "norm.weight");
  CHECK(m.named_children().size() == 2);
  CHECK(m.named_children()[0].first == "layers");
  CHECK(m.layers->size() == 2);
  CHECK_THROWS_WITH_ALL(m.layers->at<Norm>(0), "ModuleList::at", "element 0");
  CHECK_THROWS_WITH_ALL((*m.layers)[5], "ModuleList", "index 5");
}

TEST_CASE("Module: zero_grad, train/eval, tied parameters, naming errors") {
  Generator gen(2);
  Toy m(5, 2, 1, gen);
  sum(square(m.embed)).backward();
  CHECK(m.embed.grad().defined());
  m.zero_grad();
  for (auto& [n, t] : m.named_parameters()) CHECK_FALSE(t.grad().defined());

  CHECK(m.is_training());
  m.eval();
  CHECK_FALSE(m.is_training());
  CHECK_FALSE(m.layers->at<Block>(0)->attn->is_training());  // propagates to descendants
  m.train();
  CHECK(m.layers->at<Block>(0)->attn->is_training());

  struct Tied : Module {
    std::shared_ptr<Norm> a, b;
    Tied() {
      a = register_module("a", std::make_shared<Norm>(3));
      b = register_module("b", a);  // the same child twice: one parameter
      register_parameter("w", a->weight);
    }
  } tied;
  NamedTensors np = tied.named_parameters();
  REQUIRE(np.size() == 1);
  CHECK(np[0].first == "w");  // own parameters come first, so the first name met is "w"
  CHECK(tied.num_parameters() == 3);

  Module plain;
  plain.register_parameter("x", zeros({2}));
  CHECK_THROWS_WITH_ALL(plain.register_parameter("x", zeros({2})), "register_parameter", "\"x\"", "already");
  CHECK_THROWS_WITH_ALL(plain.register_module("x", std::make_shared<Module>()), "register_module", "\"x\"");
  CHECK_THROWS_WITH_ALL(plain.register_parameter("a.b", zeros({2})), "register_parameter", "a.b", "'.'");
  CHECK_THROWS_WITH_ALL(plain.register_parameter("", zeros({2})), "register_parameter", "empty");
  CHECK_THROWS_WITH_ALL(plain.register_parameter("i", zeros({2}, {DType::i64})), "register_parameter", "i64");
  Tensor leaf = zeros({2}).set_requires_grad();
  CHECK_THROWS_WITH_ALL(plain.register_parameter("y", mul(leaf, 2.0)), "register_parameter", "\"y\"", "leaf");
}

TEST_CASE("init helpers: N(0, 0.01), output projections 0.01/sqrt(2L), ones; reproducible") {
  const int64_t n_layers = 12;
  Generator gen(42);
  Tensor w = zeros({512, 512});  // 262,144 draws
  init_normal(w, kInitStd, gen);
  auto [mean, std] = stats(w);
  // The sample mean's std is 0.01/512 ≈ 2e-5; the sample std's relative std is 1/sqrt(2n) ≈ 0.14%.
  CHECK(std::abs(mean) < 1e-4);
  CHECK(std == doctest::Approx(0.01).epsilon(0.01));
  CHECK(gen.offset == 512 * 512);  // the draw consumed its numbers from the stream

  Tensor wo = zeros({512, 512}, {DType::f64});
  init_normal(wo, output_init_std(n_layers), gen);
  CHECK(output_init_std(n_layers) == doctest::Approx(0.01 / std::sqrt(24.0)));
  auto [mean_o, std_o] = stats(wo);
  CHECK(std::abs(mean_o) < 1e-4);
  CHECK(std_o == doctest::Approx(0.01 / std::sqrt(24.0)).epsilon(0.01));

  Tensor g = zeros({7});
  init_ones(g);
  CHECK(g.to_vector<float>() == std::vector<float>(7, 1.0f));
  init_zeros(g);
  CHECK(g.to_vector<float>() == std::vector<float>(7, 0.0f));

  // Same seed, same values; init writes into the tensor in place (the handle is kept).
  Generator g1(5), g2(5);
  Tensor a = zeros({3, 4}), b = zeros({3, 4});
  Tensor a_handle = a;
  init_normal(a, 0.01, g1);
  init_normal(b, 0.01, g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  CHECK(a_handle.to_vector<float>() == a.to_vector<float>());
  CHECK(a.to_vector<float>()[0] != 0.0f);
}
