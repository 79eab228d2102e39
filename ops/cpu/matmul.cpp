// Batched GEMM on OpenBLAS (when built with it, REMOE_WITH_OPENBLAS) or Eigen. Every matrix operand
// is read in place: a row-major matrix (column stride 1) with leading dimension = its row stride,
// and a transposed view (row stride 1) as a column-major one with leading dimension = its column
// stride (for cblas, a transposed row-major matrix), so transposes cost nothing. Both libraries
// pack their operands themselves, so either order runs at the same speed.
#include "ops/cpu/matmul.h"

// GCC 12 reports a false "may be used uninitialized" inside Eigen's AVX-512 GEMM kernel
// (_mm256_undefined_pd in avx512fintrin.h); the warning is about the intrinsic, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/strided.h"
#include "ops/cpu/gemm_bf16.h"
#include "ops/ops.h"

#ifdef REMOE_WITH_OPENBLAS
#include <cblas.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace remoe::cpu {
namespace {

// Per-GEMM work (M·N·K multiply-adds) up to which a batched product runs one whole GEMM per
// thread rather than letting Eigen split each GEMM: below ~128³ Eigen's own split is poor (its
// packing and synchronisation dominate), above it Eigen's split is as good and balances better.
constexpr int64_t kSmallGemm = int64_t(128) * 128 * 128;

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class Mat>
using ConstMap = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;

// Where the elements of one operand's matrices lie: (i, j) at i·ld + j (row-major) or i + j·ld.
struct Layout {
  bool row_major = true;
  int64_t ld = 1;
};

// The layout of a rows×cols matrix with strides (rs, cs), or false when it is neither row- nor
// column-major with non-overlapping rows/columns (e.g. a stride-0 expanded matrix, a stepped
// slice); such an operand is copied. The stride of a size-1 axis is meaningless and ignored.
bool matrix_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, Layout& l) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    l = {true, std::max<int64_t>(rows == 1 ? cols : rs, 1)};
    return true;
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    l = {false, std::max<int64_t>(cols == 1 ? rows : cs, 1)};
    return true;
  }
  return false;
}

// c (m×n, row-major, contiguous) = a (m×k) @ b (k×n), or += with `acc` (otherwise c's prior
// contents are never read). Both
// libraries parallelise one product over OpenMP's threads unless called inside a parallel region
// (Eigen checks omp_get_num_threads() > 1, OpenBLAS's OpenMP build omp_in_parallel()), so a GEMM
// never nests threads.
template <class T>
void eigen_gemm(const T* a, Layout la, const T* b, Layout lb, T* c, int64_t m, int64_t k, int64_t n, bool acc) {
  Eigen::Map<RowMat<T>> C(c, m, n);
  auto product = [&](const auto& A, const auto& B) {
    if (acc) {
      C.noalias() += A * B;
    } else {
      C.noalias() = A * B;
    }
  };
  auto with_lhs = [&](const auto& A) {
    if (lb.row_major) {
      product(A, ConstMap<RowMat<T>>(b, k, n, Eigen::OuterStride<>(lb.ld)));
    } else {
      product(A, ConstMap<ColMat<T>>(b, k, n, Eigen::OuterStride<>(lb.ld)));
    }
  };
  if (la.row_major) {
    with_lhs(ConstMap<RowMat<T>>(a, m, k, Eigen::OuterStride<>(la.ld)));
  } else {
    with_lhs(ConstMap<ColMat<T>>(a, m, k, Eigen::OuterStride<>(la.ld)));
  }
}

template <class T>
void gemm(const T* a, Layout la, const T* b, Layout lb, T* c, int64_t m, int64_t k, int64_t n, bool acc) {
  if constexpr (std::is_same_v<T, float>) {
    if (matmul_precision() == MatmulPrecision::bf16)
      return gemm_bf16(a, la.row_major, la.ld, b, lb.row_major, lb.ld, c, m, k, n, acc);
  }
#ifdef REMOE_WITH_OPENBLAS
  constexpr int64_t kMaxBlas = std::numeric_limits<blasint>::max();
  if (std::max({m, n, k, la.ld, lb.ld}) > kMaxBlas) return eigen_gemm(a, la, b, lb, c, m, k, n, acc);  // 32-bit ints
  // A column-major operand is the transpose of a row-major one with the same leading dimension.
  const auto ta = la.row_major ? CblasNoTrans : CblasTrans, tb = lb.row_major ? CblasNoTrans : CblasTrans;
  const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
  const auto lda = static_cast<blasint>(la.ld), ldb = static_cast<blasint>(lb.ld), ldc = static_cast<blasint>(n);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, acc ? 1.0f : 0.0f, c, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, a, lda, b, ldb, acc ? 1.0 : 0.0, c, ldc);
  }
#else
  eigen_gemm(a, la, b, lb, c, m, k, n, acc);
#endif
}

// t's strides for out's batch axes (right-aligned; 0 where t is missing the axis or broadcasts it).
Shape batch_strides(const Tensor& t, const Shape& batch) {
  Shape st(batch.size(), 0);
  const int64_t tb = t.dim() - 2;  // t's batch rank
  const size_t lead = batch.size() - static_cast<size_t>(tb);
  for (int64_t i = 0; i < tb; ++i)
    if (t.shape()[i] != 1) st[lead + i] = t.strides()[i];
  return st;
}

// The element offset of every batch (row-major order) given per-axis strides.
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& strides) {
  const int64_t nb = shape_numel(batch);
  std::vector<int64_t> off(nb, 0);
  std::vector<int64_t> idx(batch.size(), 0);
  int64_t cur = 0;
  for (int64_t i = 0; i < nb; ++i) {
    off[i] = cur;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {  // advance with carry
      cur += strides[d];
      if (++idx[d] < batch[d]) break;
      cur -= idx[d] * strides[d];
      idx[d] = 0;
    }
  }
  return off;
}

// When a's batch axes and its row axis together form one evenly strided run of rows, returns that
// row stride (the whole batch is then one tall matrix); otherwise -1.
int64_t folded_row_stride(const Shape& batch, const Shape& a_batch_strides, int64_t m, int64_t k, const Layout& la) {
  if (!la.row_major) return -1;
  int64_t stride = -1, span = 1;  // the run's row stride (-1: unknown yet) and its length in rows
  if (m > 1) {
    stride = la.ld;
    span = m;
  }
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    if (batch[d] == 1) continue;
    if (stride < 0) {
      stride = a_batch_strides[d];
    } else if (a_batch_strides[d] != stride * span) {
      return -1;
    }
    span *= batch[d];
  }
  if (stride < 0) stride = k;
  return stride >= k && stride >= 1 ? stride : -1;  // stride 0 = a broadcast over the batch
}

template <class T>
void matmul_typed(Tensor a, Tensor b, const Tensor& out, bool acc) {
  const int64_t nd = out.dim();
  const int64_t m = out.shape()[nd - 2], n = out.shape()[nd - 1], k = a.shape().back();
  T* c = out.data<T>();
  if (out.numel() == 0) return;
  if (k == 0) {  // an empty sum: zeros (nothing to add when accumulating)
    if (!acc) std::fill(c, c + out.numel(), T(0));
    return;
  }
  Layout la, lb;
  if (!matrix_layout(m, k, a.strides()[a.dim() - 2], a.strides()[a.dim() - 1], la)) {
    a = contiguous_data(a);
    matrix_layout(m, k, k, 1, la);
  }
  if (!matrix_layout(k, n, b.strides()[b.dim() - 2], b.strides()[b.dim() - 1], lb)) {
    b = contiguous_data(b);
    matrix_layout(k, n, n, 1, lb);
  }
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const Shape as = batch_strides(a, batch), bs = batch_strides(b, batch);
  const int64_t nb = shape_numel(batch);

  // b the same matrix for every batch (e.g. [B, T, D] @ [D, F]): one GEMM of (B·T)×D @ D×F when
  // a's rows are evenly strided across the batch axes. out is contiguous, so its rows are too.
  const bool b_shared = std::all_of(bs.begin(), bs.end(), [](int64_t s) { return s == 0; });
  if (b_shared) {
    const int64_t stride = folded_row_stride(batch, as, m, k, la);
    if (stride > 0) {
      gemm<T>(ap, {true, stride}, bp, lb, c, nb * m, k, n, acc);
      return;
    }
  }

  const std::vector<int64_t> aoff = batch_offsets(batch, as), boff = batch_offsets(batch, bs);
  const int64_t work = m * n * k;
  bool per_thread = false;  // one GEMM per thread (Eigen then runs single-threaded inside)
#ifdef _OPENMP
  per_thread = !omp_in_parallel() && omp_get_max_threads() > 1 && nb >= omp_get_max_threads() &&
               work <= kSmallGemm && nb * work >= kParallelGrain;
#endif
  if (per_thread) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; ++i) gemm<T>(ap + aoff[i], la, bp + boff[i], lb, c + i * m * n, m, k, n, acc);
  } else {
    for (int64_t i = 0; i < nb; ++i) gemm<T>(ap + aoff[i], la, bp + boff[i], lb, c + i * m * n, m, k, n, acc);
  }
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  dispatch_float(out.dtype(), "matmul", [&](auto tag) { matmul_typed<typename decltype(tag)::type>(a, b, out, accumulate); });
}

GemmLibrary gemm_library() {
#ifdef REMOE_WITH_OPENBLAS
  return {"openblas", openblas_get_config(), openblas_get_corename()};
#else
  return {"eigen", "", ""};
#endif
}

}  // namespace remoe::cpu

namespace remoe {
namespace {
std::atomic<MatmulPrecision> g_matmul_precision{MatmulPrecision::f32};
}  // namespace

void set_matmul_precision(MatmulPrecision p) {
  std::string why;
  REMOE_CHECK(p == MatmulPrecision::f32 || cpu::bf16_gemm_supported(&why), "set_matmul_precision(bf16): ", why);
  g_matmul_precision.store(p);
}

MatmulPrecision matmul_precision() { return g_matmul_precision.load(std::memory_order_relaxed); }

bool bf16_matmul_supported(std::string* why) { return cpu::bf16_gemm_supported(why); }

}  // namespace remoe
