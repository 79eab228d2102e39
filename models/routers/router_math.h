// Small pieces the router files share.
#pragma once
#include "ops/ops.h"

namespace remoe::router_math {

// Router math runs in at least f32 (the paper's fp32 router); f64 stays f64 (gradient checks).
inline DType router_dtype(const Tensor& logits) { return logits.dtype() == DType::f64 ? DType::f64 : DType::f32; }

// [T·k] i64: 0,…,0, 1,…,1, …: the token of each entry of a row-major [T, k] table.
inline Tensor repeat_rows(int64_t T, int64_t k) {
  Tensor ids = arange(0, static_cast<double>(T), 1, {DType::i64});
  return reshape(contiguous(expand(reshape(ids, {T, 1}), {T, k})), {T * k});
}

}  // namespace remoe::router_math
