// Golden tests: remoe's fused and composed transformer ops against PyTorch (float64), from the
// files tests/golden/make_golden.py writes. Each file holds the inputs, a fixed random upstream
// gradient gy, the output y and the input gradients (d sum(y·gy) / d input).
#include <map>
#include <string>

#include "core/safetensors.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

constexpr double kAtol = 1e-10, kRtol = 1e-10;

struct Golden {
  std::map<std::string, Tensor> t;
  SafetensorsMetadata meta;
  explicit Golden(const std::string& file) {
    t = load_safetensors(std::string(REMOE_SOURCE_DIR) + "/tests/golden/" + file, &meta);
  }
  Tensor at(const std::string& name) const {
    auto it = t.find(name);
    REMOE_CHECK(it != t.end(), "golden file lacks tensor '", name, "'");
    return it->second;
  }
  // A fresh f64 leaf holding the named input (so that each run gets its own .grad-free graph).
  Tensor leaf(const std::string& name) const { return clone(at(name)).set_requires_grad(); }
  double param(const std::string& key) const {
    auto it = meta.find(key);
    REMOE_CHECK(it != meta.end(), "golden metadata lacks '", key, "'");
    return std::stod(it->second);
  }
};

// Runs f on the inputs, checks y against `prefix`y and each input's gradient (with upstream
// `prefix`gy) against `prefix`g<input name>.
template <class F>
void check_against(const Golden& g, const std::string& prefix, const std::vector<std::string>& input_names, F f) {
  std::vector<Tensor> inputs;
  for (const std::string& n : input_names) inputs.push_back(g.leaf(n));
  Tensor y = f(inputs);
  CHECK(y.dtype() == DType::f64);
  CHECK_CLOSE(y, g.at(prefix + "y"), kAtol, kRtol);
  std::vector<Tensor> grads = remoe::grad(y, inputs, g.at(prefix + "gy"));
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(input_names[i]);
    REQUIRE(grads[i].defined());
    CHECK_CLOSE(grads[i], g.at(prefix + "g" + input_names[i]), kAtol, kRtol);
  }
}

}  // namespace

TEST_CASE("golden: rms_norm (fused and composed) matches PyTorch") {
  Golden g("rms_norm.safetensors");
  const double eps = g.param("eps");
  CHECK(eps == 1e-5);
  for (const char* c : {"big", "small"}) {
    CAPTURE(c);
    const std::string p = std::string(c) + ".";
    // The inputs are named "<case>.x" and "<case>.w", the gradients "<case>.gx", "<case>.gw".
    auto run = [&](auto op) {
      std::vector<Tensor> in = {g.leaf(p + "x"), g.leaf(p + "w")};
      Tensor y = op(in[0], in[1], eps);
      CHECK_CLOSE(y, g.at(p + "y"), kAtol, kRtol);
      std::vector<Tensor> gr = remoe::grad(y, in, g.at(p + "gy"));
      CHECK_CLOSE(gr[0], g.at(p + "gx"), kAtol, kRtol);
      CHECK_CLOSE(gr[1], g.at(p + "gw"), kAtol, kRtol);
    };
    run([](const Tensor& x, const Tensor& w, double e) { return rms_norm(x, w, e); });
    run([](const Tensor& x, const Tensor& w, double e) { return composed::rms_norm(x, w, e); });
  }
}

TEST_CASE("golden: rope (fused and composed) matches PyTorch's rotate_half RoPE") {
  Golden g("rope.safetensors");
  for (const char* c : {"base1e4", "base1e6", "base1e6_off3"}) {
    CAPTURE(c);
    const std::string p = std::string(c) + ".";
    const double base = g.param(p + "base");
    const int64_t off = static_cast<int64_t>(g.param(p + "pos_offset"));
    for (bool fused : {true, false}) {
      CAPTURE(fused);
      Tensor x = g.leaf("x");
      Tensor y = fused ? rope(x, base, off) : composed::rope(x, base, off);
      CHECK_CLOSE(y, g.at(p + "y"), kAtol, kRtol);
      CHECK_CLOSE(remoe::grad(y, {x}, g.at(p + "gy"))[0], g.at(p + "gx"), kAtol, kRtol);
    }
  }
}

TEST_CASE("golden: GQA attention (fused and composed, causal and full) matches PyTorch") {
  Golden g("attention.safetensors");
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    const std::string p = causal ? "causal." : "full.";
    check_against(g, p, {"q", "k", "v"}, [&](const std::vector<Tensor>& in) {
      return attention(in[0], in[1], in[2], causal);
    });
    check_against(g, p, {"q", "k", "v"}, [&](const std::vector<Tensor>& in) {
      return composed::attention(in[0], in[1], in[2], causal);
    });
  }
}

TEST_CASE("golden: cross_entropy with ignored rows (fused and composed) matches PyTorch") {
  Golden g("cross_entropy.safetensors");
  const auto ignore = static_cast<int64_t>(g.param("ignore_index"));
  Tensor targets = g.at("targets");
  CHECK(targets.dtype() == DType::i64);
  // Some rows are ignored: the golden file must exercise the ignore path.
  CHECK(sum(cast(eq(targets, double(ignore)), DType::f64)).item() > 0);
  check_against(g, "", {"logits"}, [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], targets, ignore); });
  check_against(g, "", {"logits"},
                [&](const std::vector<Tensor>& in) { return composed::cross_entropy(in[0], targets, ignore); });
}

TEST_CASE("golden: SwiGLU FFN down(silu(x·Wg) ⊙ (x·Wu)) (fused and composed swiglu) matches PyTorch") {
  Golden g("swiglu_ffn.safetensors");
  check_against(g, "", {"x", "wg", "wu", "wd"}, [](const std::vector<Tensor>& in) {
    return matmul(swiglu(matmul(in[0], in[1]), matmul(in[0], in[2])), in[3]);
  });
  check_against(g, "", {"x", "wg", "wu", "wd"}, [](const std::vector<Tensor>& in) {
    return matmul(composed::swiglu(matmul(in[0], in[1]), matmul(in[0], in[2])), in[3]);
  });
}
