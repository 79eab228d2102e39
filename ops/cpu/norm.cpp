#include "ops/cpu/norm.h"

#include <cmath>
#include <vector>

#include "core/strided.h"

namespace remoe::cpu {

void rms_norm_forward(const Tensor& x, const Tensor& w, double eps, const Tensor& out, const Tensor& rstd) {
  dispatch_float(x.dtype(), "rms_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t D = w.numel();
    const int64_t rows = D == 0 ? 0 : x.numel() / D;
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    T* op = out.data<T>();
    T* rp = rstd.data<T>();
    // One pass over the row for the mean square (accumulated in double: f32 rows of a few
    // thousand elements would otherwise lose digits), one to write the output.
#pragma omp parallel for if (rows * D >= kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * D;
      T* orow = op + r * D;
      double ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * double(xr[i]);
      const T rs = static_cast<T>(1.0 / std::sqrt(ss / double(D) + eps));
      rp[r] = rs;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) orow[i] = xr[i] * rs * wp[i];
    }
  });
}

void rms_norm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& g, const Tensor& gx,
                       const Tensor& gw) {
  dispatch_float(x.dtype(), "rms_norm backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t D = w.numel();
    const int64_t rows = D == 0 ? 0 : x.numel() / D;
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    const T* rp = rstd.data<T>();
    const T* gp = g.data<T>();
    T* gxp = gx.defined() ? gx.data<T>() : nullptr;
    T* gwp = gw.defined() ? gw.data<T>() : nullptr;
    const bool parallel = rows * D >= kParallelGrain && rows > 1;
    int nthreads = 1;
#ifdef _OPENMP
    if (parallel) nthreads = omp_get_max_threads();
#endif
    // gw is a sum over rows: each thread accumulates its own rows into its own partial (no
    // races), and the partials are added in thread order afterwards (deterministic for a given
    // thread count). Partials are double so that f32 sums over many rows stay accurate.
    std::vector<double> partial(gwp ? size_t(nthreads) * size_t(D) : 0, 0.0);
#pragma omp parallel num_threads(nthreads) if (parallel)
    {
      int tid = 0;
#ifdef _OPENMP
      tid = omp_get_thread_num();
#endif
      double* pw = gwp ? partial.data() + size_t(tid) * size_t(D) : nullptr;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = xp + r * D;
        const T* gr = gp + r * D;
        const double rs = double(rp[r]);
        if (gxp) {
          // mean over the row of (w·g)·x̂; then gx = rstd·(w·g − x̂·that mean).
          double dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < D; ++i) dot += double(wp[i]) * double(gr[i]) * double(xr[i]);
          // rstd·x̂·mean(w·g·x̂) = x·rstd³·mean(w·g·x) = k·x; the elementwise part runs in T
          // (full SIMD width), the row reduction in double.
          const T rs_t = static_cast<T>(rs), k = static_cast<T>(rs * rs * rs * dot / double(D));
          T* gxr = gxp + r * D;
#pragma omp simd
          for (int64_t i = 0; i < D; ++i) gxr[i] = rs_t * (wp[i] * gr[i]) - k * xr[i];
        }
        if (pw) {
          const T rs_t = static_cast<T>(rs);
#pragma omp simd
          for (int64_t i = 0; i < D; ++i) pw[i] += double(gr[i] * xr[i] * rs_t);
        }
      }
    }
    if (gwp) {
      for (int64_t i = 0; i < D; ++i) {
        double s = 0;
        for (int t = 0; t < nthreads; ++t) s += partial[size_t(t) * size_t(D) + size_t(i)];
        gwp[i] = static_cast<T>(s);
      }
    }
  });
}

}  // namespace remoe::cpu
