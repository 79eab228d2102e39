// Rotary position embedding on x [B, T, H, D], non-interleaved halves: the pair (x[i], x[i+D/2])
// at position p = pos_offset + t is rotated by angle p·base^(−2i/D), i < D/2 (LLaMA/HF
// rotate_half, Megatron). The rotation is orthogonal, so the backward pass is the same kernel
// rotating by −angle.
#include "ops/common.h"
#include "ops/cpu/rope.h"
#include "ops/ops.h"

namespace remoe {
namespace {

void check_rope_args(const char* op, const Tensor& x, double base) {
  common_device(op, {x});
  REMOE_CHECK(x.dim() == 4, op, ": x must be [B, T, H, D], got shape ", shape_str(x.shape()));
  REMOE_CHECK(x.size(3) % 2 == 0, op, ": the head dim D must be even, got x shape ", shape_str(x.shape()));
  check_floating(op, x);
  REMOE_CHECK(base > 0, op, ": base must be > 0, got ", base);
}

// Rotation by +angle (inverse = false) or −angle; each one's gradient is the other.
Tensor rope_rotate(const Tensor& x, double base, int64_t pos_offset, bool inverse) {
  const char* op = inverse ? "rope backward" : "rope";
  require_cpu(op, x.device());
  Tensor out = empty(x.shape(), {x.dtype(), x.device()});
  cpu::rope(contiguous_data(x), base, pos_offset, inverse, out);
  return record(op, out, {x}, [base, pos_offset, inverse](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {rope_rotate(g, base, pos_offset, !inverse)};
  });
}

}  // namespace

Tensor rope(const Tensor& x, double base, int64_t pos_offset) {
  check_rope_args("rope", x, base);
  return rope_rotate(x, base, pos_offset, false);
}

namespace composed {

Tensor rope(const Tensor& x, double base, int64_t pos_offset) {
  check_rope_args("composed::rope", x, base);
  const int64_t T = x.size(1), D = x.size(3), half = D / 2;
  std::vector<double> cd, sd;
  cpu::rope_tables(T, D, base, pos_offset, cd, sd);
  // Tables [T, 1, D/2] broadcast against the halves [B, T, H, D/2].
  Tensor c = from_vector(cd, {T, 1, half}, x.device()).to(x.dtype());
  Tensor s = from_vector(sd, {T, 1, half}, x.device()).to(x.dtype());
  Tensor x1 = slice(x, 3, 0, half), x2 = slice(x, 3, half, D);
  return cat({sub(mul(x1, c), mul(x2, s)), add(mul(x2, c), mul(x1, s))}, 3);
}

}  // namespace composed
}  // namespace remoe
