#include "ops/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/random.h"
#include "ops/ops.h"

namespace remoe {
namespace {

// s(x) = Σ f(x)·r, evaluated without recording a graph.
double project(const TensorFn& f, const std::vector<Tensor>& inputs, const Tensor& r) {
  NoGradGuard guard;
  Tensor y = f(inputs);
  return sum(mul(cast(y, DType::f64), r)).item();
}

}  // namespace

std::string gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, GradcheckOptions opt) {
  for (const Tensor& x : inputs) {
    if (!x.requires_grad()) continue;
    REMOE_CHECK(x.dtype() == DType::f64 && x.device().is_cpu() && x.is_contiguous() && x.is_leaf(),
                "gradcheck: inputs that require grad must be contiguous f64 CPU leaves");
  }
  Tensor y0;
  {
    NoGradGuard guard;
    y0 = f(inputs);
  }
  // The projections: unit vectors (full Jacobian) for small outputs, random ones otherwise.
  std::vector<Tensor> rs;
  if (y0.numel() <= opt.full_jacobian_max_outputs) {
    for (int64_t j = 0; j < y0.numel(); ++j) {
      std::vector<double> e(static_cast<size_t>(y0.numel()), 0.0);
      e[static_cast<size_t>(j)] = 1.0;
      rs.push_back(from_vector(e, y0.shape()));
    }
  } else {
    Generator gen(opt.seed);
    for (int p = 0; p < opt.projections; ++p) rs.push_back(randn(y0.shape(), gen, {DType::f64}));
  }

  std::ostringstream worst;
  double worst_excess = 0;
  for (size_t ri = 0; ri < rs.size(); ++ri) {
    const Tensor& r = rs[ri];
    std::vector<Tensor> wrt;
    std::vector<size_t> wrt_index;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].requires_grad()) {
        wrt.push_back(inputs[i]);
        wrt_index.push_back(i);
      }
    Tensor s = sum(mul(cast(f(inputs), DType::f64), r));
    std::vector<Tensor> analytic = grad(s, wrt);
    for (size_t w = 0; w < wrt.size(); ++w) {
      const Tensor& x = wrt[w];
      Tensor ga = analytic[w].defined() ? analytic[w].to(DType::f64) : zeros(x.shape(), {DType::f64});
      std::vector<double> gav = ga.to_vector<double>();
      double* xp = x.data<double>();
      for (int64_t k = 0; k < x.numel(); ++k) {
        double orig = xp[k];
        xp[k] = orig + opt.eps;
        double plus = project(f, inputs, r);
        xp[k] = orig - opt.eps;
        double minus = project(f, inputs, r);
        xp[k] = orig;
        double numeric = (plus - minus) / (2 * opt.eps);
        double err = std::abs(numeric - gav[k]);
        double excess = err - (opt.atol + opt.rtol * std::abs(numeric));
        if (!(excess <= worst_excess)) {  // also catches NaN
          worst_excess = std::isnan(excess) ? INFINITY : excess;
          worst.str("");
          worst << "gradcheck: input " << wrt_index[w] << " " << shape_str(x.shape()) << " element " << k
                << " (projection " << ri << "): analytic " << gav[k] << " vs numeric " << numeric;
        }
      }
    }
  }
  return worst_excess > 0 ? worst.str() : "";
}

}  // namespace remoe
