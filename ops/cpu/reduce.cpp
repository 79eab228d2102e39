#include "ops/cpu/reduce.h"

#include <algorithm>
#include <type_traits>

#include "core/strided.h"

namespace remoe::cpu {
namespace {

// Elements per task of a parallel sum. The task grid depends only on the shape, so the order of
// the additions (hence the rounding) is the same for any number of threads.
constexpr int64_t kSumBlock = 16384;
// Columns handled together when the reduced axis is not the innermost one (max).
constexpr int64_t kCols = 256;
// A strided sum adds whole rows of up to kSumCols columns (long contiguous reads, accumulators in
// L1/L2), kb >= kStridedTaskElems / columns rows per task.
constexpr int64_t kSumCols = 4096;
constexpr int64_t kStridedTaskElems = 262144;
// Independent accumulators of a contiguous run: the lanes vectorise without reassociating any
// one sum (so no -ffast-math is needed) and hide the latency of the adds.
constexpr int kLanes = 16;

template <class Acc, class T>
Acc sum_run(const T* p, int64_t n) {
  Acc lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += static_cast<Acc>(p[i + k]);
  Acc acc = 0;
  for (; i < n; ++i) acc += static_cast<Acc>(p[i]);
  for (int k = 0; k < kLanes; ++k) acc += lane[k];
  return acc;
}

// out[o, j] = Σ_k x[o, k, j] for x viewed as [outer, n, inner] (n >= 1).
template <class T, class Acc>
void sum_3d(const T* xp, T* op, int64_t outer, int64_t n, int64_t inner) {
  const int64_t work = outer * n * inner;
  if (inner == 1) {
    // Rows longer than a block are split into blocks (partial sums added in block order), so
    // that one long row (a full reduction) still uses every thread.
    const int64_t nb = (n + kSumBlock - 1) / kSumBlock;
    if (nb == 1) {
#pragma omp parallel for schedule(static) if (work >= kParallelGrain && outer > 1)
      for (int64_t o = 0; o < outer; ++o) op[o] = static_cast<T>(sum_run<Acc>(xp + o * n, n));
      return;
    }
    std::vector<Acc> part(static_cast<size_t>(outer * nb));
#pragma omp parallel for schedule(static) if (work >= kParallelGrain)
    for (int64_t t = 0; t < outer * nb; ++t) {
      int64_t o = t / nb, k0 = (t % nb) * kSumBlock;
      part[t] = sum_run<Acc>(xp + o * n + k0, std::min(kSumBlock, n - k0));
    }
    for (int64_t o = 0; o < outer; ++o) {
      Acc a = 0;
      for (int64_t b = 0; b < nb; ++b) a += part[o * nb + b];
      op[o] = static_cast<T>(a);
    }
    return;
  }
  // The reduced axis is strided: each task adds kb rows of a column chunk into w accumulators
  // (independent lanes, contiguous in j: vectorised), then the partials are added in row order.
  const int64_t W = std::min(inner, kSumCols);
  const int64_t chunks = (inner + kSumCols - 1) / kSumCols;
  const int64_t kb = std::max<int64_t>(1, (kStridedTaskElems + W - 1) / W);
  const int64_t nb = (n + kb - 1) / kb;
  const int64_t tasks = outer * chunks * nb;
  std::vector<Acc> part(static_cast<size_t>(tasks * W));
#pragma omp parallel for schedule(static) if (work >= kParallelGrain && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t b = t % nb, c = (t / nb) % chunks, o = t / (nb * chunks);
    int64_t j0 = c * kSumCols, w = std::min(kSumCols, inner - j0);
    Acc* acc = part.data() + t * W;
    std::fill(acc, acc + w, Acc(0));
    for (int64_t k = b * kb; k < std::min(n, (b + 1) * kb); ++k) {
      const T* row = xp + (o * n + k) * inner + j0;
      for (int64_t j = 0; j < w; ++j) acc[j] += static_cast<Acc>(row[j]);
    }
  }
  // Adds each chunk's partials into its first one, row block by row block (contiguous, vectorised).
#pragma omp parallel for schedule(static) if (outer * inner * nb >= kParallelGrain && outer * chunks > 1)
  for (int64_t oc = 0; oc < outer * chunks; ++oc) {
    int64_t o = oc / chunks, j0 = (oc % chunks) * kSumCols, w = std::min(kSumCols, inner - j0);
    Acc* first = part.data() + oc * nb * W;
    for (int64_t b = 1; b < nb; ++b) {
      const Acc* p = first + b * W;
      for (int64_t j = 0; j < w; ++j) first[j] += p[j];
    }
    for (int64_t j = 0; j < w; ++j) op[o * inner + j0 + j] = static_cast<T>(first[j]);
  }
}

// Any set of reduced axes, serially: one pass over x adding into an accumulator indexed like out.
template <class T, class Acc>
void sum_general(const Tensor& x, const std::vector<bool>& reduce, const T* xp, T* op, int64_t out_numel) {
  const Shape& sh = x.shape();
  const int nd = static_cast<int>(sh.size());
  Shape kept = sh;
  for (int i = 0; i < nd; ++i)
    if (reduce[i]) kept[i] = 1;
  Shape ostr = contiguous_strides(kept);
  for (int i = 0; i < nd; ++i)
    if (reduce[i]) ostr[i] = 0;
  std::vector<Acc> acc(static_cast<size_t>(out_numel), Acc(0));
  std::vector<int64_t> idx(nd, 0);
  int64_t o = 0;
  for (int64_t lin = 0; lin < x.numel(); ++lin) {
    acc[o] += static_cast<Acc>(xp[lin]);
    for (int d = nd - 1; d >= 0; --d) {
      o += ostr[d];
      if (++idx[d] < sh[d]) break;
      o -= idx[d] * ostr[d];
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < out_numel; ++i) op[i] = static_cast<T>(acc[i]);
}

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    return v != v;
  } else {
    (void)v;
    return false;
  }
}

// Whether v replaces the best value so far: strictly larger (so the first maximum stays), or the
// first NaN.
template <class T>
bool beats(T v, T best) {
  return v > best || (is_nan(v) && !is_nan(best));
}

}  // namespace

void sum(const Tensor& x, const std::vector<bool>& reduce, const Tensor& out) {
  dispatch_numeric(x.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Accumulate in double for floats (exact enough for gradchecks and long sums), in the type otherwise.
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    if (x.numel() == 0) {
      std::fill(op, op + out.numel(), T(0));
      return;
    }
    // Coalesce the axes: size-1 axes do not matter, and neighbours with the same flag merge. At
    // most one reduced group left means x is [outer, n, inner] with the middle axis reduced.
    const Shape& sh = x.shape();
    Shape sizes;
    std::vector<bool> red;
    for (size_t i = 0; i < sh.size(); ++i) {
      if (sh[i] == 1) continue;
      if (!sizes.empty() && red.back() == reduce[i]) {
        sizes.back() *= sh[i];
      } else {
        sizes.push_back(sh[i]);
        red.push_back(reduce[i]);
      }
    }
    if (std::count(red.begin(), red.end(), true) > 1) {
      sum_general<T, Acc>(x, reduce, xp, op, out.numel());
      return;
    }
    int64_t outer = 1, n = 1, inner = 1;
    bool seen = false;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (red[i]) {
        n = sizes[i];
        seen = true;
      } else {
        (seen ? inner : outer) *= sizes[i];
      }
    }
    sum_3d<T, Acc>(xp, op, outer, n, inner);
  });
}

void max(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& values, const Tensor& indices) {
  dispatch_numeric(x.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    T* vp = values.data<T>();
    int64_t* ip = indices.data<int64_t>();
    const int64_t work = outer * n * inner;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (work >= kParallelGrain && outer > 1)
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = xp + o * n;
        T best = row[0];
        int64_t bi = 0;
        for (int64_t k = 1; k < n; ++k)
          if (beats(row[k], best)) {
            best = row[k];
            bi = k;
          }
        vp[o] = best;
        ip[o] = bi;
      }
      return;
    }
    // Strided axis: a chunk of columns keeps its running maxima in the outputs themselves.
    const int64_t chunks = (inner + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (work >= kParallelGrain && outer * chunks > 1)
    for (int64_t t = 0; t < outer * chunks; ++t) {
      int64_t o = t / chunks, j0 = (t % chunks) * kCols, w = std::min(kCols, inner - j0);
      const T* slab = xp + o * n * inner + j0;
      T* best = vp + o * inner + j0;
      int64_t* bi = ip + o * inner + j0;
      for (int64_t j = 0; j < w; ++j) {
        best[j] = slab[j];
        bi[j] = 0;
      }
      for (int64_t k = 1; k < n; ++k) {
        const T* row = slab + k * inner;
        for (int64_t j = 0; j < w; ++j)
          if (beats(row[j], best[j])) {
            best[j] = row[j];
            bi[j] = k;
          }
      }
    }
  });
}

}  // namespace remoe::cpu
