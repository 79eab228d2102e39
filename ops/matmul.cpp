// matmul: checks, the batched-GEMM kernel (ops/cpu/matmul), and the backward rule
//   ga = g @ bᵀ,  gb = aᵀ @ g,
// each summed back over the batch axes its operand was broadcast along. The transposes are views,
// which the kernel reads in place (as column-major matrices), so backward copies nothing.
#include "ops/common.h"
#include "ops/cpu/matmul.h"
#include "ops/ops.h"

namespace remoe {
namespace {

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// The output shape of a @ b, after checking every argument (messages name matmul and both shapes).
Shape matmul_shape(const Tensor& a, const Tensor& b) {
  REMOE_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul needs at least 2-D operands, got shapes ", shape_str(a.shape()),
              " and ", shape_str(b.shape()));
  check_same_dtype("matmul", a, b);
  REMOE_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::f64, "matmul: dtype ", dtype_name(a.dtype()),
              " is not supported (f32 and f64 are), shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              "; convert with to(DType::f32)");
  const int64_t k = a.size(-1);
  REMOE_CHECK(b.size(-2) == k, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " do not chain: a has ", k, " columns but b has ", b.size(-2), " rows");
  const Shape ba = batch_of(a), bb = batch_of(b);
  const size_t rank = std::max(ba.size(), bb.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {  // right-aligned NumPy broadcasting of the batch axes
    int64_t da = i + ba.size() >= rank ? ba[i + ba.size() - rank] : 1;
    int64_t db = i + bb.size() >= rank ? bb[i + bb.size() - rank] : 1;
    REMOE_CHECK(da == db || da == 1 || db == 1, "matmul: shapes ", shape_str(a.shape()), " and ",
                shape_str(b.shape()), " have batch axes ", shape_str(ba), " and ", shape_str(bb),
                " that do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  out.push_back(a.size(-2));
  out.push_back(b.size(-1));
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Device dev = common_device("matmul", {a, b});
  Shape out_shape = matmul_shape(a, b);
  require_cpu("matmul", dev);
  Tensor out = empty(out_shape, {a.dtype(), dev});  // no zero-fill: the GEMM overwrites it
  cpu::matmul(a, b, out);
  return record("matmul", out, {a, b}, [a, b](const Tensor& g, const std::vector<bool>& need) -> std::vector<Tensor> {
    Tensor ga, gb;
    if (need[0]) ga = sum_to(matmul(g, transpose(b, -1, -2)), a.shape());
    if (need[1]) {
      if (a.dim() > 2 && shape_numel(batch_of(b)) == 1) {
        // b is one matrix shared by every batch (a linear layer): Σ_batches aᵢᵀ gᵢ is a single GEMM
        // over all rows, (B·T)×K transposed @ (B·T)×N, instead of B GEMMs and a sum.
        const int64_t k = a.size(-1), n = b.size(-1);
        gb = reshape(matmul(transpose(reshape(a, {-1, k}), 0, 1), reshape(g, {-1, n})), b.shape());
      } else {
        gb = sum_to(matmul(transpose(a, -1, -2), g), b.shape());
      }
    }
    return {ga, gb};
  });
}

}  // namespace remoe
