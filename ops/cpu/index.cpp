#include "ops/cpu/index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "core/strided.h"

namespace remoe::cpu {
namespace {

struct Split {
  int64_t outer = 1, n = 1, inner = 1;
};

// [outer, n, inner] view of a contiguous tensor of shape s around axis dim.
Split split_at(const Shape& s, int64_t dim) {
  Split p;
  for (int64_t a = 0; a < static_cast<int64_t>(s.size()); ++a) {
    if (a < dim) p.outer *= s[a];
    else if (a == dim) p.n = s[a];
    else p.inner *= s[a];
  }
  return p;
}

// Calls f(const I* data) with I the index tensor's element type (i32 or i64).
template <class F>
void with_index(const Tensor& index, F&& f) {
  switch (index.dtype()) {
    case DType::i32: f(index.data<int32_t>()); return;
    case DType::i64: f(index.data<int64_t>()); return;
    default: fail("index kernel: index dtype ", dtype_name(index.dtype()), " is not i32 or i64");
  }
}

// a > b with NaN larger than every number (torch's order for topk and sort); NaNs tie.
template <class T>
inline bool greater_nan(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

}  // namespace

IndexBounds index_bounds(const Tensor& index) {
  IndexBounds b;
  with_index(index, [&](const auto* p) {
    const int64_t m = index.numel();
    if (m == 0) return;
    int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
#pragma omp parallel for reduction(min : lo) reduction(max : hi) if (m >= kParallelGrain)
    for (int64_t i = 0; i < m; ++i) {
      lo = std::min(lo, static_cast<int64_t>(p[i]));
      hi = std::max(hi, static_cast<int64_t>(p[i]));
    }
    b = {lo, hi};
  });
  return b;
}

std::optional<int64_t> first_out_of_range(const Tensor& index, int64_t n) {
  // The parallel bounds first (the common case: everything in range); the serial search for the
  // first offender runs only on failure.
  const IndexBounds b = index_bounds(index);
  if (b.min > b.max || (b.min >= 0 && b.max < n)) return std::nullopt;
  std::optional<int64_t> bad;
  with_index(index, [&](const auto* p) {
    for (int64_t i = 0, m = index.numel(); i < m; ++i) {
      if (p[i] < 0 || p[i] >= n) {
        bad = static_cast<int64_t>(p[i]);
        return;
      }
    }
  });
  return bad;
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Split s = split_at(x.shape(), dim);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    with_index(index, [&](const auto* ip) {
      const int64_t m = index.numel(), rows = s.outer * m;
      // Every output row is written once: no conflicts.
#pragma omp parallel for if (rows * s.inner >= kParallelGrain && rows > 1)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t o = r / m, i = r % m;
        std::copy_n(xp + (o * s.n + static_cast<int64_t>(ip[i])) * s.inner, s.inner, op + r * s.inner);
      }
    });
  });
}

void index_add_(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  dispatch_numeric(out.dtype(), "index_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Split s = split_at(out.shape(), dim);
    T* op = out.data<T>();
    const T* sp = src.data<T>();
    with_index(index, [&](const auto* ip) {
      const int64_t m = index.numel();
      // Index entries may repeat, so the loop over them stays serial within a task; tasks split the
      // axes that no two entries share (outer, and inner in blocks of kBlock columns), so no two
      // threads ever write the same element. Embedding backward ([V, D] += [N, D] rows) splits D.
      constexpr int64_t kBlock = 64;
      const int64_t nb = (s.inner + kBlock - 1) / kBlock, tasks = s.outer * nb;
#pragma omp parallel for if (tasks > 1 && s.outer * m * s.inner >= kParallelGrain)
      for (int64_t t = 0; t < tasks; ++t) {
        const int64_t o = t / nb, j0 = (t % nb) * kBlock, len = std::min(kBlock, s.inner - j0);
        for (int64_t i = 0; i < m; ++i) {
          T* dst = op + (o * s.n + static_cast<int64_t>(ip[i])) * s.inner + j0;
          const T* from = sp + (o * m + i) * s.inner + j0;
          for (int64_t j = 0; j < len; ++j) dst[j] = static_cast<T>(dst[j] + from[j]);
        }
      }
    });
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const int64_t xd = x.strides()[dim];
    Shape xs = x.strides();
    xs[dim] = 0;  // the coordinate along dim comes from the index, not the loop
    with_index(index, [&](const auto* ip) {
      // Each output element is written once: for_each_strided may split it over threads.
      for_each_strided<3>(index.shape(), {out.strides(), index.strides(), xs}, [&](const std::array<int64_t, 3>& o) {
        op[o[0]] = xp[o[2] + static_cast<int64_t>(ip[o[1]]) * xd];
      });
    });
  });
}

void scatter_add_(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  dispatch_numeric(out.dtype(), "scatter_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* op = out.data<T>();
    const T* sp = src.data<T>();
    const int64_t od = out.strides()[dim];
    // Two source elements collide only if they share every coordinate except `dim`. Moving dim to
    // the innermost position makes each row of for_each_strided (the unit it hands to one thread)
    // the full run along dim of one fixed set of other coordinates, so rows never collide and the
    // accumulation within a row is serial.
    Shape sh, si, ss, so;
    for (int64_t a = 0; a < index.dim(); ++a) {
      if (a == dim) continue;
      sh.push_back(index.shape()[a]);
      si.push_back(index.strides()[a]);
      ss.push_back(src.strides()[a]);
      so.push_back(out.strides()[a]);
    }
    sh.push_back(index.shape()[dim]);
    si.push_back(index.strides()[dim]);
    ss.push_back(src.strides()[dim]);
    so.push_back(0);
    with_index(index, [&](const auto* ip) {
      for_each_strided<3>(sh, {si, ss, so}, [&](const std::array<int64_t, 3>& o) {
        T& dst = op[o[2] + static_cast<int64_t>(ip[o[0]]) * od];
        dst = static_cast<T>(dst + sp[o[1]]);
      });
    });
  });
}

namespace {

// topk along dim for one element type and direction (a template argument, so the comparison in
// the inner loop does not branch on it).
template <class T, bool Largest>
void topk_impl(const Tensor& x, int64_t k, int64_t dim, const Tensor& values, const Tensor& indices) {
  const Split s = split_at(x.shape(), dim);
  const T* xp = x.data<T>();
  T* vp = values.data<T>();
  int64_t* ip = indices.data<int64_t>();
  const int64_t rows = s.outer * s.inner;
  // Small k (MoE routing: k of a few dozen experts) keeps a sorted buffer of k and inserts into it,
  // O(n·k) with no allocation per row; larger k partial_sorts a permutation, O(n log k).
  constexpr int64_t kInsertionMaxK = 8;
#pragma omp parallel if (rows > 1 && rows * s.n >= kParallelGrain)
  {
    std::vector<int64_t> perm(static_cast<size_t>(k <= kInsertionMaxK ? k : s.n));
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = r / s.inner, j = r % s.inner;
      const T* row = xp + o * s.n * s.inner + j;  // element t at row[t * inner]
      // A strict total order (value first, then the lower index), so the selection is unique:
      // ties go to the lower index.
      auto before = [&](int64_t a, int64_t b) {
        const T va = row[a * s.inner], vb = row[b * s.inner];
        const bool ab = Largest ? greater_nan(va, vb) : greater_nan(vb, va);
        const bool ba = Largest ? greater_nan(vb, va) : greater_nan(va, vb);
        return ab || (!ba && a < b);
      };
      if (k <= kInsertionMaxK) {
        int64_t count = 0;
        for (int64_t t = 0; t < s.n; ++t) {
          if (count == k && (k == 0 || !before(t, perm[k - 1]))) continue;
          int64_t p = count < k ? count++ : k - 1;  // the slot t enters at, then moves up from
          while (p > 0 && before(t, perm[p - 1])) {
            perm[p] = perm[p - 1];
            --p;
          }
          perm[p] = t;
        }
      } else {
        std::iota(perm.begin(), perm.end(), int64_t(0));
        std::partial_sort(perm.begin(), perm.begin() + k, perm.end(), before);
      }
      for (int64_t t = 0; t < k; ++t) {
        const int64_t at = (o * k + t) * s.inner + j;
        vp[at] = row[perm[t] * s.inner];
        ip[at] = perm[t];
      }
    }
  }
}

}  // namespace

void topk(const Tensor& x, int64_t k, int64_t dim, bool largest, const Tensor& values, const Tensor& indices) {
  dispatch_numeric(x.dtype(), "topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (largest) topk_impl<T, true>(x, k, dim, values, indices);
    else topk_impl<T, false>(x, k, dim, values, indices);
  });
}

void argsort(const Tensor& x, int64_t dim, bool descending, const Tensor& out) {
  dispatch_numeric(x.dtype(), "argsort", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Split s = split_at(x.shape(), dim);
    const T* xp = x.data<T>();
    int64_t* op = out.data<int64_t>();
    const int64_t rows = s.outer * s.inner;
#pragma omp parallel if (rows > 1 && rows * s.n >= kParallelGrain)
    {
      std::vector<int64_t> perm(static_cast<size_t>(s.n));
#pragma omp for
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t o = r / s.inner, j = r % s.inner;
        const T* row = xp + o * s.n * s.inner + j;
        std::iota(perm.begin(), perm.end(), int64_t(0));
        // stable_sort keeps equal keys in index order, for both directions.
        std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
          const T va = row[a * s.inner], vb = row[b * s.inner];
          return descending ? greater_nan(va, vb) : greater_nan(vb, va);
        });
        for (int64_t t = 0; t < s.n; ++t) op[(o * s.n + t) * s.inner + j] = perm[t];
      }
    }
  });
}

void bincount(const Tensor& x, const Tensor& out) {
  int64_t* op = out.data<int64_t>();
  std::fill_n(op, out.numel(), int64_t(0));
  // Serial: the counts are a histogram, every entry may hit the same bin.
  with_index(x, [&](const auto* p) {
    for (int64_t i = 0, m = x.numel(); i < m; ++i) ++op[static_cast<int64_t>(p[i])];
  });
}

Tensor nonzero_positions(const Tensor& mask) {
  Tensor m = contiguous_data(mask);
  const uint8_t* mp = m.data<uint8_t>();
  const int64_t n = m.numel();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += mp[i] != 0;
  Tensor pos = empty({count}, {DType::i64, m.device()});
  int64_t* pp = pos.data<int64_t>();
  for (int64_t i = 0, c = 0; i < n; ++i)
    if (mp[i] != 0) pp[c++] = i;
  return pos;
}

}  // namespace remoe::cpu
