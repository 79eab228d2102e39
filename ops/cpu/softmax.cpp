#include "ops/cpu/softmax.h"

// GCC 12 reports a false "may be used uninitialized" inside Eigen's AVX-512 packet math
// (_mm256_undefined_pd in avx512fintrin.h); the warning is about the intrinsic, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/strided.h"

namespace remoe::cpu {
namespace {

// Eigen arrays give vectorised exp / max / sum over a row (its exp is a SIMD polynomial, ~1 ulp).
template <class T>
using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
using CMap = Eigen::Map<const Arr<T>>;
template <class T>
using MMap = Eigen::Map<Arr<T>>;

template <class T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// A row is processed in blocks small enough to stay in L1 between a block's max and its exp-sum,
// so the row is read from memory once (online softmax at block granularity).
constexpr int64_t kBlock = 1024;
// The strided (inner > 1) path handles w columns together (vectors of w maxima and sums) and reads
// their [n, w] slab three times: w is chosen so that the slab stays in L2 (at most kSlabBytes),
// between kMinCols (a few cache lines per row, for the prefetcher) and kMaxCols.
constexpr int64_t kSlabBytes = 256 * 1024;
constexpr int64_t kMinCols = 64, kMaxCols = 256;

// Running maximum m and s = Σ exp(x − m) of a row. A block whose max exceeds m rescales s by
// exp(m_old − m_new) (Milakov & Gimelshein's online normaliser, per block instead of per element).
// Blocks that are entirely −inf add nothing and are skipped (their exp(−inf − m) would be NaN
// while m is still −inf). An all −inf row gives m = −inf, s = 0: log_softmax NaN, as in PyTorch.
template <class T>
void row_stats(const T* x, int64_t n, T& m_out, T& s_out) {
  T m = kNegInf<T>, s = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    CMap<T> blk(x + b, std::min(kBlock, n - b));
    T bm = blk.maxCoeff();
    if (bm == kNegInf<T>) continue;
    if (bm > m) {
      s *= std::exp(m - bm);  // 0 while m is −inf
      m = bm;
    }
    s += (blk - m).exp().sum();
  }
  m_out = m;
  s_out = s;
}

// Eigen's exp clamps its argument, so exp(−inf) comes out as ~1e−39 (f32) rather than 0; masked
// logits (−inf) must get probability exactly 0 (also in an all −inf row, whose softmax is thus 0
// rather than NaN). A plain loop so that the compiler vectorises it.
template <class T>
void zero_where_neg_inf(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == kNegInf<T>) y[i] = T(0);
}

// softmax / log_softmax of one contiguous row.
template <class T>
void softmax_row(const T* x, T* y, int64_t n, bool log, std::vector<T>& block_max) {
  if (log) {
    T m, s;
    row_stats(x, n, m, s);
    // log p = (x − m) − log s: x − m is exact near the max, unlike x − logsumexp for large |x|.
    MMap<T>(y, n) = (CMap<T>(x, n) - m) - std::log(s);
    return;
  }
  // One exp per element: y = exp(x − m_b) with the running max m_b current at block b, then a
  // second (cache-resident) pass rescales each block by exp(m_b − m) / s.
  T m = kNegInf<T>, s = 0;
  block_max.clear();
  for (int64_t b = 0; b < n; b += kBlock) {
    int64_t len = std::min(kBlock, n - b);
    CMap<T> blk(x + b, len);
    MMap<T> out(y + b, len);
    T bm = blk.maxCoeff();
    if (bm > m) {
      s *= std::exp(m - bm);
      m = bm;
    }
    if (m == kNegInf<T>) {
      out.setZero();  // everything so far is −inf: probability 0 (the scale below is 0 or NaN)
    } else {
      out = (blk - m).exp();
      s += out.sum();
    }
    block_max.push_back(m);
  }
  for (int64_t b = 0, k = 0; b < n; b += kBlock, ++k) {
    T scale = block_max[k] == kNegInf<T> && m != kNegInf<T> ? T(0) : std::exp(block_max[k] - m) / s;
    MMap<T>(y + b, std::min(kBlock, n - b)) *= scale;
  }
  zero_where_neg_inf(x, y, n);
}

// softmax / log_softmax over the middle axis of one [n, inner] slab, for columns [j0, j0 + w):
// vectors of w running maxima and sums, the slab read row by row (contiguous in j).
template <class T>
void softmax_cols(const T* x, T* y, int64_t n, int64_t inner, int64_t j0, int64_t w, bool log) {
  Arr<T> m = Arr<T>::Constant(w, kNegInf<T>), s = Arr<T>::Zero(w);
  for (int64_t k = 0; k < n; ++k) m = m.max(CMap<T>(x + k * inner + j0, w));
  if (log) {
    for (int64_t k = 0; k < n; ++k) s += (CMap<T>(x + k * inner + j0, w) - m).exp();
    Arr<T> log_s = s.log();
    for (int64_t k = 0; k < n; ++k) MMap<T>(y + k * inner + j0, w) = (CMap<T>(x + k * inner + j0, w) - m) - log_s;
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    MMap<T> out(y + k * inner + j0, w);
    out = (CMap<T>(x + k * inner + j0, w) - m).exp();
    s += out;
  }
  Arr<T> inv = s.inverse();
  for (int64_t k = 0; k < n; ++k) {
    MMap<T>(y + k * inner + j0, w) *= inv;
    zero_where_neg_inf(x + k * inner + j0, y + k * inner + j0, w);
  }
}

}  // namespace

void softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, const Tensor& out) {
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    const int64_t work = outer * n * inner;
    if (work == 0) return;
    if (inner == 1) {
#pragma omp parallel if (work >= kParallelGrain && outer > 1)
      {
        std::vector<T> block_max;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < outer; ++r) softmax_row(xp + r * n, yp + r * n, n, log, block_max);
      }
      return;
    }
    // Strided axis: tasks are (slab, column chunk) pairs so that even outer == 1 parallelises.
    const int64_t fit = kSlabBytes / (n * static_cast<int64_t>(sizeof(T))) / kMinCols * kMinCols;
    const int64_t cols = std::clamp<int64_t>(fit, kMinCols, kMaxCols);
    const int64_t chunks = (inner + cols - 1) / cols;
#pragma omp parallel for schedule(static) if (work >= kParallelGrain && outer * chunks > 1)
    for (int64_t t = 0; t < outer * chunks; ++t) {
      int64_t o = t / chunks, j0 = (t % chunks) * cols;
      softmax_cols(xp + o * n * inner, yp + o * n * inner, n, inner, j0, std::min(cols, inner - j0), log);
    }
  });
}

double cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& stats,
                             int64_t* count) {
  return dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    const int64_t N = logits.shape()[0], V = logits.shape()[1];
    const T* xp = logits.data<T>();
    const int64_t* tp = targets.data<int64_t>();
    T* sp = stats.data<T>();
    // Per-row losses summed afterwards in row order: the result does not depend on the threads.
    std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
#pragma omp parallel for schedule(static) if (N * V >= kParallelGrain && N > 1)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t t = tp[i];
      if (t == ignore_index) {
        sp[2 * i] = sp[2 * i + 1] = T(0);
        continue;
      }
      const T* row = xp + i * V;
      T m, s;
      row_stats(row, V, m, s);
      sp[2 * i] = m;
      sp[2 * i + 1] = std::log(s);
      // −log p[t] = (m − x[t]) + log s, in double.
      row_loss[static_cast<size_t>(i)] =
          (static_cast<double>(m) - static_cast<double>(row[t])) + static_cast<double>(sp[2 * i + 1]);
    }
    double total = 0;
    int64_t c = 0;
    for (int64_t i = 0; i < N; ++i) {
      if (tp[i] == ignore_index) continue;
      total += row_loss[static_cast<size_t>(i)];
      ++c;
    }
    *count = c;
    return total;
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& stats,
                            double scale, const Tensor& grad) {
  dispatch_float(logits.dtype(), "cross_entropy backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t N = logits.shape()[0], V = logits.shape()[1];
    const T* xp = logits.data<T>();
    const int64_t* tp = targets.data<int64_t>();
    const T* sp = stats.data<T>();
    T* gp = grad.data<T>();
    const T sc = static_cast<T>(scale);
#pragma omp parallel for schedule(static) if (N * V >= kParallelGrain && N > 1)
    for (int64_t i = 0; i < N; ++i) {
      MMap<T> g(gp + i * V, V);
      const int64_t t = tp[i];
      if (t == ignore_index) {
        g.setZero();
        continue;
      }
      // d loss / d logits = (softmax − onehot(t)) · scale, softmax = exp((x − m) − log s).
      g = ((CMap<T>(xp + i * V, V) - sp[2 * i]) - sp[2 * i + 1]).exp() * sc;
      g[t] -= sc;
    }
  });
}

}  // namespace remoe::cpu
