// CPU kernels of the index family (embedding, index_select/add, gather/scatter_add, topk,
// argsort, bincount, masked_select). The op file (ops/index.cpp) checks shapes, dtypes and index
// ranges before calling them: kernels assume every index is in range (they never throw inside a
// parallel region). Index tensors are i32 or i64 and, unless stated, contiguous.
//
// "Along dim" kernels view a contiguous tensor as [outer, n, inner]: outer is the product of the
// axes before dim, n the size of dim, inner the product of the axes after it.
#pragma once
#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace remoe::cpu {

// The smallest and largest entry of the contiguous integer tensor `index` ({0, -1} when empty).
struct IndexBounds {
  int64_t min = 0, max = -1;
};
IndexBounds index_bounds(const Tensor& index);
// The first entry (row-major) of the contiguous integer tensor `index` outside [0, n), if any.
std::optional<int64_t> first_out_of_range(const Tensor& index, int64_t n);

// out[o, i, j] = x[o, index[i], j]: x contiguous, index any shape (read flat, m = numel entries),
// out contiguous with outer·m·inner elements. Any dtype (a copy).
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);

// out[o, index[i], j] += src[o, i, j]: out contiguous [outer, n, inner], src contiguous
// [outer, m, inner], index m entries. Repeated indices accumulate. Numeric dtypes.
void index_add_(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);

// out[p] = x[p with coordinate dim replaced by index[p]] for every position p of index's shape
// (torch.gather): x and index may be strided; out contiguous with index's shape. Any dtype.
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);

// out[p with coordinate dim replaced by index[p]] += src[p] for every position p of index's shape
// (torch.scatter_add): out contiguous, index and src may be strided. Numeric dtypes.
void scatter_add_(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);

// The k largest (or smallest) entries along dim, sorted, ties to the lower index (NaN counts as
// larger than every number, as in torch). x contiguous; values (x's dtype) and indices (i64)
// contiguous with dim of size k. Numeric dtypes.
void topk(const Tensor& x, int64_t k, int64_t dim, bool largest, const Tensor& values, const Tensor& indices);

// A stable argsort along dim (NaN sorts as the largest value): x contiguous, out i64 contiguous
// with x's shape. Numeric dtypes.
void argsort(const Tensor& x, int64_t dim, bool descending, const Tensor& out);

// out[v] = number of entries equal to v in the contiguous, non-negative integer tensor x; out is
// i64, contiguous, longer than the largest value.
void bincount(const Tensor& x, const Tensor& out);

// The row-major positions (i64, 1-D) of the non-zero entries of the u8 tensor mask (any strides).
Tensor nonzero_positions(const Tensor& mask);

}  // namespace remoe::cpu
