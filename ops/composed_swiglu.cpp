// SwiGLU's gating composed from basic ops: silu(gate) · up (the oracle for the fused swiglu).
#include "ops/ops.h"

namespace remoe::composed {

Tensor swiglu(const Tensor& gate, const Tensor& up) { return mul(silu(gate), up); }

}  // namespace remoe::composed
