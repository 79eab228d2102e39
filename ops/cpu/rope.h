// CPU kernel of the rotary embedding (non-interleaved halves, as LLaMA/HF rotate_half, Megatron).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace remoe::cpu {

// cos and sin of angle (pos_offset + t)·base^(−2i/D) for t < T, i < D/2, row-major [T, D/2],
// computed in double (the caller casts).
void rope_tables(int64_t T, int64_t D, double base, int64_t pos_offset, std::vector<double>& cos_t,
                 std::vector<double>& sin_t);

// x, out [B, T, H, D] contiguous, same floating dtype, D even. Rotates each pair (x[i], x[i + D/2])
// by +angle, or by −angle when `inverse` (the backward pass: the transpose of a rotation).
void rope(const Tensor& x, double base, int64_t pos_offset, bool inverse, const Tensor& out);

}  // namespace remoe::cpu
