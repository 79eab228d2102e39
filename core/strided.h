// The loop behind every strided CPU kernel: visits each element of `shape` in row-major order and
// hands the callback the element offset of every operand (strides in elements; a stride of 0 is a
// broadcast dimension). Large loops are split over OpenMP threads by rows of the innermost axis.
#pragma once
#include <array>
#include <vector>

#include "core/shape.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace remoe {

// Work below this many elements runs on one thread: thread start-up costs more than it saves.
constexpr int64_t kParallelGrain = 32768;

template <size_t K, class F>
void for_each_strided(const Shape& shape, const std::array<Shape, K>& strides, F&& f) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const int nd = static_cast<int>(shape.size());
  if (nd == 0) {
    std::array<int64_t, K> off{};
    f(off);
    return;
  }
  const int64_t inner = shape[nd - 1];
  const int64_t rows = n / inner;
  auto run_rows = [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> idx(nd, 0);
    std::array<int64_t, K> base{};
    int64_t r = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = r % shape[d];
      r /= shape[d];
      for (size_t k = 0; k < K; ++k) base[k] += idx[d] * strides[k][d];
    }
    std::array<int64_t, K> step;
    for (size_t k = 0; k < K; ++k) step[k] = strides[k][nd - 1];
    for (int64_t row = r0; row < r1; ++row) {
      std::array<int64_t, K> off = base;
      for (int64_t i = 0; i < inner; ++i) {
        f(off);
        for (size_t k = 0; k < K; ++k) off[k] += step[k];
      }
      for (int d = nd - 2; d >= 0; --d) {  // advance the row index with carry
        for (size_t k = 0; k < K; ++k) base[k] += strides[k][d];
        if (++idx[d] < shape[d]) break;
        for (size_t k = 0; k < K; ++k) base[k] -= idx[d] * strides[k][d];
        idx[d] = 0;
      }
    }
  };
#ifdef _OPENMP
  if (n >= kParallelGrain && rows > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
      if (r0 < r1) run_rows(r0, r1);
    }
    return;
  }
#endif
  run_rows(0, rows);
}

}  // namespace remoe
