#include "ops/cpu/rope.h"

#include <cmath>

#include "core/strided.h"

namespace remoe::cpu {

void rope_tables(int64_t T, int64_t D, double base, int64_t pos_offset, std::vector<double>& cos_t,
                 std::vector<double>& sin_t) {
  const int64_t half = D / 2;
  cos_t.resize(size_t(T * half));
  sin_t.resize(size_t(T * half));
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(base, -2.0 * double(i) / double(D));
  for (int64_t t = 0; t < T; ++t) {
    const double pos = double(pos_offset + t);
    for (int64_t i = 0; i < half; ++i) {
      const double a = pos * inv_freq[size_t(i)];
      cos_t[size_t(t * half + i)] = std::cos(a);
      sin_t[size_t(t * half + i)] = std::sin(a);
    }
  }
}

void rope(const Tensor& x, double base, int64_t pos_offset, bool inverse, const Tensor& out) {
  dispatch_float(x.dtype(), "rope", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Shape& s = x.shape();
    const int64_t B = s[0], Tn = s[1], H = s[2], D = s[3], half = D / 2;
    // The tables cost T·D/2 sin/cos, 1/(2·B·H) of the rotation itself; cast once to T.
    std::vector<double> cd, sd;
    rope_tables(Tn, D, base, pos_offset, cd, sd);
    std::vector<T> ct(cd.size()), st(sd.size());
    const double sign = inverse ? -1.0 : 1.0;  // rotation by −angle: sin(−a) = −sin(a)
    for (size_t i = 0; i < cd.size(); ++i) {
      ct[i] = static_cast<T>(cd[i]);
      st[i] = static_cast<T>(sign * sd[i]);
    }
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const int64_t rows = B * Tn;  // one (b, t): H heads of D values sharing the position t
#pragma omp parallel for if (x.numel() >= kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t t = r % Tn;
      const T* c = ct.data() + t * half;
      const T* sn = st.data() + t * half;
      for (int64_t h = 0; h < H; ++h) {
        const T* xr = xp + (r * H + h) * D;
        T* orow = op + (r * H + h) * D;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const T x1 = xr[i], x2 = xr[i + half];
          orow[i] = x1 * c[i] - x2 * sn[i];
          orow[i + half] = x2 * c[i] + x1 * sn[i];
        }
      }
    }
  });
}

}  // namespace remoe::cpu
