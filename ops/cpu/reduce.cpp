#include "ops/cpu/reduce.h"

#include "core/strided.h"

namespace remoe::cpu {

void sum(const Tensor& x, const std::vector<bool>& reduce, const Tensor& out) {
  dispatch_numeric(x.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Accumulate in double for floats (exact enough for gradchecks and long sums), in the type otherwise.
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const Shape& sh = x.shape();
    const int nd = static_cast<int>(sh.size());
    // Fast path: reduce only the innermost contiguous run of axes (e.g. sum over the last axis).
    int first_reduced_tail = nd;
    while (first_reduced_tail > 0 && reduce[first_reduced_tail - 1]) --first_reduced_tail;
    bool tail_only = true;
    for (int i = 0; i < first_reduced_tail; ++i) tail_only &= !reduce[i];
    if (tail_only) {
      int64_t inner = 1;
      for (int i = first_reduced_tail; i < nd; ++i) inner *= sh[i];
      int64_t rows = inner == 0 ? 0 : x.numel() / inner;
      if (inner == 0) {
        for (int64_t r = 0; r < out.numel(); ++r) op[r] = T(0);
        return;
      }
#pragma omp parallel for if (x.numel() >= kParallelGrain && rows > 1)
      for (int64_t r = 0; r < rows; ++r) {
        Acc acc = 0;
        const T* row = xp + r * inner;
        for (int64_t i = 0; i < inner; ++i) acc += static_cast<Acc>(row[i]);
        op[r] = static_cast<T>(acc);
      }
      return;
    }
    // General path: accumulate into a double buffer indexed like out (strides 0 on reduced axes).
    std::vector<Acc> acc(static_cast<size_t>(out.numel()), Acc(0));
    Shape ostr = contiguous_strides(out.shape());
    for (int i = 0; i < nd; ++i)
      if (reduce[i]) ostr[i] = 0;
    Acc* ap = acc.data();
    // Serial: different input elements write the same output slot.
    Shape xs = x.strides();
    const int64_t n = x.numel();
    std::vector<int64_t> idx(nd, 0);
    int64_t o = 0;
    for (int64_t lin = 0; lin < n; ++lin) {
      ap[o] += static_cast<Acc>(xp[lin]);
      for (int d = nd - 1; d >= 0; --d) {
        o += ostr[d];
        if (++idx[d] < sh[d]) break;
        o -= idx[d] * ostr[d];
        idx[d] = 0;
      }
    }
    for (int64_t i = 0; i < out.numel(); ++i) op[i] = static_cast<T>(acc[i]);
  });
}

}  // namespace remoe::cpu
