// The public op API. Every op is a free function: it checks its arguments (errors name the op and
// the shapes), computes the output with the device's kernel, and, when an input requires a
// gradient, records an autograd node whose backward rule is written with these same ops.
//
// Layout conventions used by the transformer ops: activations are [B, T, H, D] (batch, time,
// heads, head dim); a linear layer's weight is [in, out] so that y = matmul(x, W).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "core/tensor.h"

namespace remoe {

// ---------------- elementwise (ops/elementwise.cpp) ----------------
// Binary ops broadcast NumPy-style; both operands must have the same dtype and device.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a^b; d/db = a^b·log(a) (a > 0 where b needs a gradient)
// Scalar forms: the scalar is converted to the tensor's dtype.
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor rdiv(double s, const Tensor& a);  // s / a
Tensor pow(const Tensor& a, double exponent);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor silu(const Tensor& a);   // a·sigmoid(a)
Tensor relu(const Tensor& a);   // gradient 0 at a == 0
Tensor abs(const Tensor& a);
Tensor square(const Tensor& a);
// SwiGLU's gating, fused: silu(gate) * up (one pass forward, one pass backward).
Tensor swiglu(const Tensor& gate, const Tensor& up);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return div(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(double s, const Tensor& a) { return rdiv(s, a); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// Comparisons: not differentiable; the result is u8 (1 where true) with the broadcast shape.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);
// cond (u8) ? a : b, broadcasting all three; differentiable in a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// A differentiable dtype conversion between floating types (gradient converted back).
Tensor cast(const Tensor& x, DType dtype);
// A differentiable copy into fresh contiguous storage.
Tensor clone(const Tensor& x);

// ---------------- reductions (ops/reduce.cpp) ----------------
// `dims` empty means all axes; negative axes count from the end.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Max along one axis; the gradient goes to the first maximal element.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // i64, first maximal index
// Sums x down to `shape` (the inverse of broadcasting `shape` to x.shape()): undoes broadcasting
// in backward rules.
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---------------- matmul (ops/matmul.cpp) ----------------
// a [..., M, K] @ b [..., K, N] -> [..., M, N]; the batch axes broadcast; 2-D @ 2-D is a GEMM.
Tensor matmul(const Tensor& a, const Tensor& b);

// What the GEMMs of f32 matmuls compute in, process-wide (PyTorch: set_float32_matmul_precision):
// f32, or bf16 = both inputs rounded to bfloat16, products summed in f32 (oneDNN on CPUs with
// AVX512-BF16; train.precision = bf16). Tensors, weights, optimizer state and every other op stay
// f32 (the fused attention kernel included); f64 matmuls are never affected. Setting bf16 where
// bf16_matmul_supported() is false is an error naming what is missing.
enum class MatmulPrecision { f32, bf16 };
void set_matmul_precision(MatmulPrecision precision);
MatmulPrecision matmul_precision();
bool bf16_matmul_supported(std::string* why = nullptr);

// ---------------- shape and views (ops/shape.cpp) ----------------
// Views share storage with their input where the layout allows (reshape of a non-contiguous
// tensor copies). One axis of `shape` may be -1.
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
// Elements [start, end) of axis `dim` in steps of `step` (> 0); start/end are clamped like Python's.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);  // drops the axis
Tensor expand(const Tensor& x, const Shape& shape);          // broadcast view (stride 0)
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& x);  // differentiable; x itself when already contiguous
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);

// ---------------- softmax family (ops/softmax.cpp) ----------------
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// Fused softmax cross-entropy: logits [N, V], targets [N] (i64). Mean of -log p[target] over the
// rows whose target != ignore_index (0 when every row is ignored).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

// ---------------- transformer ops (ops/norm.cpp, ops/rope.cpp, ops/attention.cpp) ----------------
// RMSNorm over the last axis: x / sqrt(mean(x²) + eps) * weight. Fused kernel and backward.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-5);
// Rotary embedding on x [B, T, H, D] (D even) at positions pos_offset + t, non-interleaved halves:
// (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin) with angle (pos)·base^(−2i/D), i < D/2.
Tensor rope(const Tensor& x, double base = 10000.0, int64_t pos_offset = 0);
// Causal scaled-dot-product attention with grouped-query heads: q [B, T, Hq, D], k and v
// [B, T, Hkv, D] with Hq a multiple of Hkv (query head h reads kv head h / (Hq/Hkv));
// scale 1/sqrt(D). Output [B, T, Hq, D]. Fused streaming kernel (online softmax) and backward.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true);
// The experts of a dropless MoE layer (ops/grouped_swiglu.cpp): x [N, d] holds the rows of
// expert e contiguously (group_rows[e] of them, in order); each group goes through its SwiGLU
// FFN (silu(x·Wg_e) ∘ (x·Wu_e))·Wd_e with Wg_e, Wu_e [d, w] and Wd_e [w, d]. Output [N, d]. One
// fused node: the groups' GEMMs read and write blocks of shared buffers. Experts with no rows do
// no work and get no gradient.
Tensor grouped_swiglu(const Tensor& x, const std::vector<int64_t>& group_rows, const std::vector<Tensor>& w_gate,
                      const std::vector<Tensor>& w_up, const std::vector<Tensor>& w_down);

// The composed versions of the fused ops, built from basic ops only: the test oracle and the
// reference a reader can check against the paper's formulas.
namespace composed {
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-5);
Tensor rope(const Tensor& x, double base = 10000.0, int64_t pos_offset = 0);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true);
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
Tensor swiglu(const Tensor& gate, const Tensor& up);
Tensor grouped_swiglu(const Tensor& x, const std::vector<int64_t>& group_rows, const std::vector<Tensor>& w_gate,
                      const std::vector<Tensor>& w_up, const std::vector<Tensor>& w_down);
}  // namespace composed

// ---------------- embedding and index ops (ops/index.cpp) ----------------
// weight [V, D], ids integer (any shape) -> [..., D]; ids out of [0, V) are an error.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// Rows (entries along `dim`) of x picked by the 1-D integer `index`.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j] = x[index[i][j]][j] for dim 0 (torch.gather); index has x's rank.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// A copy of x with src added at `index` along dim (torch.scatter_add); differentiable in x, src.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// A copy of x with src's entries along dim added at positions index (1-D) (torch.index_add).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
struct TopK {
  Tensor values;   // differentiable
  Tensor indices;  // i64
};
// The k largest (or smallest) along dim, sorted; ties go to the lower index.
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
// A stable argsort along dim (i64), ascending unless descending.
Tensor argsort(const Tensor& keys, int64_t dim = -1, bool descending = false);
// Counts of each value of a 1-D non-negative integer tensor; length max(minlength, max+1). i64.
Tensor bincount(const Tensor& x, int64_t minlength = 0);
// The elements of x where mask (u8, broadcast to x) is set, as a 1-D tensor; differentiable in x.
Tensor masked_select(const Tensor& x, const Tensor& mask);

}  // namespace remoe
