#include "models/optim.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "autograd/node.h"
#include "core/strided.h"
#include "ops/common.h"
#include "ops/ops.h"

namespace remoe {
namespace {

void check_options(const AdamWOptions& o) {
  // The ranges torch.optim.AdamW accepts.
  REMOE_CHECK(o.lr >= 0, "AdamW: lr must be >= 0, got ", o.lr);
  REMOE_CHECK(o.beta1 >= 0 && o.beta1 < 1, "AdamW: beta1 must be in [0, 1), got ", o.beta1);
  REMOE_CHECK(o.beta2 >= 0 && o.beta2 < 1, "AdamW: beta2 must be in [0, 1), got ", o.beta2);
  REMOE_CHECK(o.eps >= 0, "AdamW: eps must be >= 0, got ", o.eps);
  REMOE_CHECK(o.weight_decay >= 0, "AdamW: weight_decay must be >= 0, got ", o.weight_decay);
}

// The scalar factors of one update, computed once per parameter in double.
struct AdamWScalars {
  double decay_factor;  // 1 − lr·wd, or 1 without decay
  double one_minus_beta1, beta2, one_minus_beta2;
  double step_size;       // lr / (1 − β1^t)
  double bias2_sqrt;      // sqrt(1 − β2^t)
  double eps;
};

// GCC 12 with -march=native (AVX-512) reports a false -Wmaybe-uninitialized inside its own
// avx512fintrin.h where Eigen's vectorised sqrt is inlined into the kernel below; it is silenced
// for this kernel only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The fused update over n contiguous elements. Memory-bound: one pass reading p, g, m, v and
// writing p, m, v. The elements go in chunks small enough to stay in L1 while the four Eigen
// statements below touch them (so the pass is fused in effect), with Eigen's vectorised sqrt: a
// plain loop over std::sqrt does not vectorise under errno semantics. Chunks are independent, so
// large parameters are split over threads.
template <class T>
void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, const AdamWScalars& s) {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  const T decay = static_cast<T>(s.decay_factor), omb1 = static_cast<T>(s.one_minus_beta1);
  const T b2 = static_cast<T>(s.beta2), omb2 = static_cast<T>(s.one_minus_beta2);
  const T step_size = static_cast<T>(s.step_size), bias2_sqrt = static_cast<T>(s.bias2_sqrt);
  const T eps = static_cast<T>(s.eps);
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (n >= kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
    Eigen::Map<Arr> P(p + i0, len), M(m + i0, len), V(v + i0, len);
    Eigen::Map<const Arr> G(g + i0, len);
    M += omb1 * (G - M);                   // lerp(m, g, 1 − β1)
    V = b2 * V + omb2 * G.square();
    P *= decay;                            // decoupled weight decay, before the Adam step
    P -= (step_size * M) / (V.sqrt() / bias2_sqrt + eps);  // addcdiv's order: value·m / denom
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Σ x² over the elements of a gradient, accumulated in double.
double sum_squares(const Tensor& grad) {
  require_cpu("clip_grad_norm", grad.device());
  Tensor g = contiguous_data(grad);
  const int64_t n = g.numel();
  return dispatch_float(g.dtype(), "clip_grad_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* d = g.data<T>();
    double acc = 0;
#pragma omp parallel for simd reduction(+ : acc) if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(d[i]) * static_cast<double>(d[i]);
    return acc;
  });
}

}  // namespace

AdamW::AdamW(NamedTensors params, AdamWOptions options) : options_(options) {
  check_options(options_);
  std::unordered_set<std::string> names;
  std::unordered_set<const TensorImpl*> tensors;
  for (auto& [name, p] : params) {
    REMOE_CHECK(p.defined(), "AdamW: parameter \"", name, "\" is undefined");
    REMOE_CHECK(names.insert(name).second, "AdamW: parameter name \"", name, "\" appears twice");
    REMOE_CHECK(tensors.insert(p.impl_ptr().get()).second, "AdamW: parameter \"", name,
                "\" is a tensor already listed under another name");
    REMOE_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, "AdamW: parameter \"", name, "\" ",
                shape_str(p.shape()), " has dtype ", dtype_name(p.dtype()), "; f32 and f64 are supported");
    REMOE_CHECK(p.is_contiguous(), "AdamW: parameter \"", name, "\" ", shape_str(p.shape()),
                " is not contiguous; the update writes its storage in place");
    REMOE_CHECK(p.is_leaf(), "AdamW: parameter \"", name, "\" is not a leaf (it has a grad_fn)");
    Slot s;
    s.name = name;
    s.param = p;
    s.decay = p.dim() >= 2;
    s.exp_avg = zeros(p.shape(), {p.dtype(), p.device()});
    s.exp_avg_sq = zeros(p.shape(), {p.dtype(), p.device()});
    slots_.push_back(std::move(s));
  }
}

namespace {
NamedTensors number_params(const std::vector<Tensor>& params) {
  NamedTensors named;
  for (size_t i = 0; i < params.size(); ++i) named.emplace_back(std::to_string(i), params[i]);
  return named;
}
}  // namespace

AdamW::AdamW(const std::vector<Tensor>& params, AdamWOptions options) : AdamW(number_params(params), options) {}

void AdamW::set_lr(double lr) {
  REMOE_CHECK(lr >= 0, "AdamW::set_lr: lr must be >= 0, got ", lr);
  options_.lr = lr;
}

void AdamW::step() {
  NoGradGuard guard;  // raw-data updates; nothing here may enter a graph
  for (Slot& s : slots_) {
    Tensor grad = s.param.grad();
    if (!grad.defined()) continue;
    REMOE_CHECK(grad.shape() == s.param.shape(), "AdamW::step: gradient of \"", s.name, "\" has shape ",
                shape_str(grad.shape()), ", the parameter ", shape_str(s.param.shape()));
    REMOE_CHECK(grad.dtype() == s.param.dtype(), "AdamW::step: gradient of \"", s.name, "\" ",
                shape_str(grad.shape()), " has dtype ", dtype_name(grad.dtype()), ", the parameter ",
                dtype_name(s.param.dtype()));
    require_cpu("AdamW::step", s.param.device());
    require_cpu("AdamW::step", grad.device());
    Tensor g = contiguous_data(grad);

    s.step += 1;
    const double t = static_cast<double>(s.step);
    AdamWScalars sc;
    sc.decay_factor = s.decay ? 1.0 - options_.lr * options_.weight_decay : 1.0;
    sc.one_minus_beta1 = 1.0 - options_.beta1;
    sc.beta2 = options_.beta2;
    sc.one_minus_beta2 = 1.0 - options_.beta2;
    sc.step_size = options_.lr / (1.0 - std::pow(options_.beta1, t));
    sc.bias2_sqrt = std::sqrt(1.0 - std::pow(options_.beta2, t));
    sc.eps = options_.eps;
    dispatch_float(s.param.dtype(), "AdamW::step", [&](auto tag) {
      using T = typename decltype(tag)::type;
      adamw_kernel<T>(s.param.data<T>(), g.data<T>(), s.exp_avg.data<T>(), s.exp_avg_sq.data<T>(), s.param.numel(),
                      sc);
    });
  }
}

void AdamW::zero_grad() {
  for (const Slot& s : slots_) s.param.zero_grad();
}

AdamW::Slot& AdamW::slot(const std::string& name, const char* op) {
  return const_cast<Slot&>(static_cast<const AdamW*>(this)->slot(name, op));
}

const AdamW::Slot& AdamW::slot(const std::string& name, const char* op) const {
  for (const Slot& s : slots_)
    if (s.name == name) return s;
  fail(op, ": no parameter named \"", name, "\"");
}

const std::string& AdamW::name(size_t i) const {
  REMOE_CHECK(i < slots_.size(), "AdamW::name: index ", i, " out of range for ", slots_.size(), " parameters");
  return slots_[i].name;
}

bool AdamW::decays(const std::string& name) const { return slot(name, "AdamW::decays").decay; }
void AdamW::set_decay(const std::string& name, bool on) { slot(name, "AdamW::set_decay").decay = on; }
int64_t AdamW::step_count(const std::string& name) const { return slot(name, "AdamW::step_count").step; }

NamedTensors AdamW::state_tensors() const {
  NamedTensors out;
  for (const Slot& s : slots_) {
    out.emplace_back(s.name + ".step", from_vector<int64_t>({s.step}, {}));
    out.emplace_back(s.name + ".exp_avg", s.exp_avg);
    out.emplace_back(s.name + ".exp_avg_sq", s.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const NamedTensors& state) {
  // Validate everything before writing anything, so a bad checkpoint leaves the state unchanged.
  auto find = [&](const std::string& key) -> const Tensor& {
    const Tensor* hit = nullptr;
    for (const auto& [k, t] : state)
      if (k == key) {
        REMOE_CHECK(hit == nullptr, "AdamW::load_state: key \"", key, "\" appears twice");
        hit = &t;
      }
    REMOE_CHECK(hit != nullptr, "AdamW::load_state: missing \"", key, "\"");
    REMOE_CHECK(hit->defined(), "AdamW::load_state: \"", key, "\" is undefined");
    return *hit;
  };
  std::unordered_set<std::string> expected;
  std::vector<int64_t> steps;
  for (const Slot& s : slots_) {
    const Tensor& st = find(s.name + ".step");
    REMOE_CHECK(st.numel() == 1, "AdamW::load_state: \"", s.name, ".step\" has shape ", shape_str(st.shape()),
                ", expected one element");
    double v = st.item();
    REMOE_CHECK(v >= 0 && v == std::floor(v), "AdamW::load_state: \"", s.name, ".step\" is ", v,
                ", expected a count >= 0");
    steps.push_back(static_cast<int64_t>(v));
    for (const char* moment : {".exp_avg", ".exp_avg_sq"}) {
      const Tensor& t = find(s.name + moment);
      REMOE_CHECK(t.shape() == s.param.shape(), "AdamW::load_state: \"", s.name, moment, "\" has shape ",
                  shape_str(t.shape()), ", the parameter ", shape_str(s.param.shape()));
      REMOE_CHECK(is_floating(t.dtype()), "AdamW::load_state: \"", s.name, moment, "\" has dtype ",
                  dtype_name(t.dtype()));
    }
    for (const char* suffix : {".step", ".exp_avg", ".exp_avg_sq"}) expected.insert(s.name + suffix);
  }
  for (const auto& [k, t] : state)
    REMOE_CHECK(expected.count(k), "AdamW::load_state: unknown key \"", k, "\"");
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    s.step = steps[i];
    copy_(s.exp_avg, find(s.name + ".exp_avg"));
    copy_(s.exp_avg_sq, find(s.name + ".exp_avg_sq"));
  }
}

namespace {

std::vector<Tensor> parameters_with_gradient(const std::vector<Tensor>& params) {
  // A parameter listed twice counts (and is scaled) once.
  std::vector<Tensor> with_grad;
  std::unordered_set<const TensorImpl*> seen;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined() && seen.insert(p.impl_ptr().get()).second) with_grad.push_back(p);
  return with_grad;
}

}  // namespace

double gradient_square_sum(const std::vector<Tensor>& params) {
  double sq = 0;
  for (const Tensor& p : parameters_with_gradient(params)) sq += sum_squares(p.grad());
  return sq;
}

void clip_gradients_to(const std::vector<Tensor>& params, double norm, double max_norm) {
  REMOE_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  if (!std::isfinite(norm)) return;
  const double coef = max_norm / (norm + 1e-6);  // torch's clip_coef, eps 1e-6
  if (coef >= 1.0) return;
  NoGradGuard guard;
  for (const Tensor& p : parameters_with_gradient(params)) p.set_grad(mul(p.grad(), coef));
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  REMOE_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  const double norm = std::sqrt(gradient_square_sum(params));
  clip_gradients_to(params, norm, max_norm);
  return norm;
}

}  // namespace remoe
